import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { logDestination, openLogFile, textLine } from './log-destination.js';

const dir = mkdtempSync(join(tmpdir(), 'mayfly-logdest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function flushed(s: NodeJS.WritableStream): Promise<void> {
  await new Promise<void>((r) => s.end(r));
}

describe('log destination', () => {
  it('text format writes logrus-style lines with the level by name', () => {
    expect(textLine('{"level":"info","time":"2026-01-01T00:00:00.000Z","pid":7,"msg":"agent started","caller_pid":9}')).toBe(
      'time=2026-01-01T00:00:00.000Z level=info msg="agent started" pid=7 caller_pid=9',
    );
  });

  it('log_file appends JSON lines (text when asked) to a 0600 file', async () => {
    const file = join(dir, 'a.log');
    const d1 = logDestination({ file });
    createLogger('info', d1).info({ a: 1 }, 'first');
    await flushed(d1);
    const d2 = logDestination({ file, format: 'text' });
    createLogger('info', d2).warn({}, 'second');
    await new Promise((r) => setTimeout(r, 50));
    await flushed(d2);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'info', msg: 'first', a: 1 });
    expect(lines[1]).toMatch(/^time=\S+ level=warn msg="second" pid=\d+$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('refuses a log_file that is a symlink', () => {
    const link = join(dir, 'link.log');
    symlinkSync(join(dir, 'target'), link);
    expect(() => openLogFile(link)).toThrow(/ELOOP/);
  });
});
