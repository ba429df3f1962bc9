import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createServerLogger } from '../server/observability.js';
import { createLogger } from './logger.js';

function firstLine(make: (out: PassThrough) => { info(fields: object, msg: string): void; debug(fields: object, msg: string): void }): Record<string, unknown> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const log = make(out);
  log.debug({ hidden: true }, 'below the level');
  log.info({ socketPath: '/tmp/s' }, 'agent started');
  const lines = text.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

describe('createLogger (the agent binary logs through it)', () => {
  it('writes the same JSON line shape as the server logger', () => {
    const agent = firstLine((out) => createLogger('info', out));
    const server = firstLine((out) => createServerLogger('info', out));
    expect(Object.keys(agent).sort()).toEqual(Object.keys(server).sort());
    expect(agent).toMatchObject({ level: 'info', pid: process.pid, socketPath: '/tmp/s', msg: 'agent started' });
    expect(agent.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});
