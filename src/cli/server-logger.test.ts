/** `logger get|set|reset`: SPIRE's spellings, refused in one line saying what to do instead. */
import { describe, expect, it } from 'vitest';
import { runProgram } from './flags.js';
import { buildServerProgram } from './server-program.js';

async function run(argv: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const program = buildServerProgram({ out: () => undefined, err: (t) => void err.push(t), env: {} });
  return { code: await runProgram(program, argv), err: err.join('') };
}

describe('mayfly-server logger', () => {
  it('says the Logger API is missing and what to do instead', async () => {
    for (const argv of [['logger', 'get'], ['logger', 'set', '-level', 'debug'], ['logger', 'reset']]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err).toMatch(/^Error: cannot .*: the Mayfly server has no Logger API; set log_level in server\.conf \(or -logLevel on run\) and restart the server\n$/);
    }
  });

  it('checks -level first', async () => {
    expect(await run(['logger', 'set', '-level', 'loud'])).toEqual({ code: 2, err: 'Error: -level must be one of panic, fatal, error, warn, info, debug, trace; got "loud"\n' });
  });
});
