import { describe, expect, it } from 'vitest';
import { MayflyError } from '../spiffe/errors.js';
import { errorFields, LogLimiter } from './log-limiter.js';
import { carriesStack, RecordingLogger } from './testing.js';

/** A clock that only moves when the test says so. */
function manualClock(start = Date.UTC(2030, 0, 1)): { now: () => Date; advance: (ms: number) => void } {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => (t += ms) };
}

describe('LogLimiter', () => {
  it('writes at most N lines per cause per interval, then one summary line when the next interval starts', () => {
    const log = new RecordingLogger();
    const clock = manualClock();
    const limiter = new LogLimiter({ logger: log, linesPerInterval: 3, intervalMs: 1000, now: clock.now });
    for (let i = 0; i < 100; i++) limiter.warn('peer-gone', { i }, 'peer went away');
    expect(log.lines.map((l) => l.fields.i)).toEqual([0, 1, 2]);

    clock.advance(999); // still the same interval
    limiter.warn('peer-gone', { i: 100 }, 'peer went away');
    expect(log.lines).toHaveLength(3);

    clock.advance(1);
    limiter.warn('peer-gone', { i: 101 }, 'peer went away');
    expect(log.lines).toHaveLength(5);
    expect(log.lines[3]).toEqual({
      level: 'warn',
      fields: { cause: 'peer-gone', suppressed: 98, intervalMs: 1000 },
      msg: 'suppressed 98 similar messages (peer-gone: more than 3 in 1000 ms)',
    });
    expect(log.lines[4]?.fields.i).toBe(101);
  });

  it('limits each cause on its own, and a quiet interval needs no summary', () => {
    const log = new RecordingLogger();
    const clock = manualClock();
    const limiter = new LogLimiter({ logger: log, linesPerInterval: 2, intervalMs: 1000, now: clock.now });
    for (let i = 0; i < 5; i++) {
      limiter.debug('a', {}, 'a');
      limiter.warn('b', {}, 'b');
    }
    expect(log.lines.map((l) => `${l.level}:${l.msg}`)).toEqual(['debug:a', 'warn:b', 'debug:a', 'warn:b']);
    clock.advance(5000);
    limiter.debug('c', {}, 'c');
    expect(log.lines).toHaveLength(5); // nothing of "a" or "b" is reported until they recur or flush()
    clock.advance(5000);
    limiter.debug('c', {}, 'c'); // c was never over its limit: no summary
    expect(log.lines.map((l) => l.msg).slice(4)).toEqual(['c', 'c']);
  });

  it('flush() reports every cause with suppressed lines, at the level they were logged at', () => {
    const log = new RecordingLogger();
    const limiter = new LogLimiter({ logger: log, linesPerInterval: 1, intervalMs: 60_000, now: manualClock().now });
    for (let i = 0; i < 4; i++) limiter.debug('reset', {}, 'reset');
    for (let i = 0; i < 3; i++) limiter.warn('cap', {}, 'over cap');
    limiter.flush();
    const summaries = log.lines.filter((l) => l.msg.startsWith('suppressed '));
    expect(summaries).toEqual([
      { level: 'debug', fields: { cause: 'reset', suppressed: 3, intervalMs: 60_000 }, msg: expect.stringMatching(/^suppressed 3 similar messages/) },
      { level: 'warn', fields: { cause: 'cap', suppressed: 2, intervalMs: 60_000 }, msg: expect.stringMatching(/^suppressed 2 similar messages/) },
    ]);
    limiter.flush(); // nothing left to report
    expect(log.lines.filter((l) => l.msg.startsWith('suppressed '))).toHaveLength(2);
    limiter.warn('cap', {}, 'over cap'); // a new interval after flush
    expect(log.lines.at(-1)?.msg).toBe('over cap');
  });

  it('a clock that goes backwards starts a new interval rather than silencing a cause for good', () => {
    const log = new RecordingLogger();
    const clock = manualClock();
    const limiter = new LogLimiter({ logger: log, linesPerInterval: 1, intervalMs: 1000, now: clock.now });
    limiter.warn('x', {}, 'x');
    limiter.warn('x', {}, 'x');
    clock.advance(-10_000);
    limiter.warn('x', {}, 'x');
    expect(log.lines.map((l) => l.msg)).toEqual(['x', expect.stringMatching(/^suppressed 1 /), 'x']);
  });

  it('refuses a config it cannot use', () => {
    const logger = new RecordingLogger();
    expect(() => new LogLimiter({ logger: {} as RecordingLogger })).toThrow(TypeError);
    expect(() => new LogLimiter({ logger, linesPerInterval: 0 })).toThrow(TypeError);
    expect(() => new LogLimiter({ logger, intervalMs: 1.5 })).toThrow(TypeError);
    expect(() => new LogLimiter({ logger, now: 5 as unknown as () => Date })).toThrow(TypeError);
  });
});

describe('errorFields', () => {
  it('keeps the message and the code, never the error object or its stack', () => {
    const f = errorFields(new MayflyError('ERR_PEER_CREDENTIALS', 'peer process 42 exited'));
    expect(f).toEqual({ error: 'peer process 42 exited', code: 'ERR_PEER_CREDENTIALS' });
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(errorFields(reset)).toEqual({ error: 'read ECONNRESET', code: 'ECONNRESET' });
    expect(errorFields('plain')).toEqual({ error: 'plain' });
    expect(carriesStack({ level: 'warn', fields: errorFields(reset), msg: '' })).toBe(false);
    expect(carriesStack({ level: 'warn', fields: { err: reset }, msg: '' })).toBe(true);
  });
});
