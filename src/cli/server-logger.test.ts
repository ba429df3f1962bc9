/**
 * `mayfly-server logger get|set|reset` against a real server: a ServerRunner (admin socket,
 * agent API on TCP) whose pino logger writes into the test, started at `warn`. Whether the
 * level really changed is read from what the server logs: `agent attested` is an info line,
 * so it appears only while the level lets info through.
 */
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from '../securefs/testing.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { resolveServerConfig } from '../server/config.js';
import { createServerLogger } from '../server/observability.js';
import { ServerRunner } from '../server/runner.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { runProgram } from './flags.js';
import { buildServerProgram } from './server-program.js';

const TD = 'example.org';
const dirs = tempDirs('mayfly-cli-logger-');

describe('mayfly-server logger against a running server', () => {
  const lines: { level: string; msg: string; from?: string; to?: string }[] = [];
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let socketPath: string;

  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const program = await buildServerProgram({ out: (t) => void (out += t), err: (t) => void (err += t), env: {} });
    return { code: await runProgram(program, [...argv, '-socketPath', socketPath]), out, err };
  };

  /** Attests a new agent with a join token; true when the server logged `agent attested` for it. */
  const attestLogged = async (): Promise<boolean> => {
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const bundleRoots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
    const anon = tcpClients({ address: `127.0.0.1:${runner.server!.port}`, trustDomain: TD, bundleRoots });
    const before = lines.length;
    try {
      await unaryCall(anon.Agent, 'AttestAgent', { attestation_data: { type: 'join_token', payload: Buffer.from(token.value) }, csr: createCsr({ privateKey: generateKeyPair().privateKey }) });
    } finally {
      anon.close();
    }
    return lines.slice(before).some((l) => l.msg === 'agent attested');
  };

  beforeAll(async () => {
    const base = dirs.make();
    socketPath = join(base, 'private', 'api.sock');
    const settings = resolveServerConfig(undefined, { dataDir: join(base, 'data'), socketPath, bindPort: 0, trustDomain: TD, logLevel: 'warn' });
    settings.bindAddress = '127.0.0.1';
    settings.metrics.enabled = false;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as (typeof lines)[number]);
        done();
      },
    });
    runner = new ServerRunner({ settings, logger: createServerLogger(settings.logLevel, sink), drainMs: 200 });
    await runner.start();
    admin = adminSocketClients(socketPath);
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await runner?.stop();
    dirs.cleanup();
  }, 60_000);

  it('get prints the current and launch levels as SPIRE does, in pretty and json', async () => {
    expect(await run(['logger', 'get'])).toEqual({ code: 0, out: 'Logger Level : warn\nLaunch Level : warn\n\n', err: '' });
    const json = await run(['logger', 'get', '-output', 'json']);
    expect(JSON.parse(json.out)).toEqual({ current_level: 'WARN', launch_level: 'WARN' });
    expect(await attestLogged()).toBe(false);
  });

  it('set changes the level of the running server at once', async () => {
    expect(await run(['logger', 'set', '-level', 'DEBUG'])).toEqual({ code: 0, out: 'Logger Level : debug\nLaunch Level : warn\n\n', err: '' });
    expect(lines.at(-1)).toMatchObject({ level: 'info', msg: 'log level changed through the Logger API', from: 'warn', to: 'debug' });
    expect(await attestLogged()).toBe(true);
    expect(JSON.parse((await run(['logger', 'get', '-output', 'json'])).out)).toEqual({ current_level: 'DEBUG', launch_level: 'WARN' });
    expect((await run(['logger', 'set', '-level', 'error'])).out).toBe('Logger Level : error\nLaunch Level : warn\n\n');
    expect(lines.at(-1)).toMatchObject({ level: 'info', from: 'debug', to: 'error' });
    expect(await attestLogged()).toBe(false);
  });

  it('reset goes back to the configured level', async () => {
    await run(['logger', 'set', '-level', 'info']);
    expect(await attestLogged()).toBe(true);
    expect(await run(['logger', 'reset', '-output', 'json'])).toMatchObject({ code: 0, err: '' });
    expect(JSON.parse((await run(['logger', 'get', '-output', 'json'])).out)).toEqual({ current_level: 'WARN', launch_level: 'WARN' });
    expect(lines.at(-1)).toMatchObject({ msg: 'log level reset to the launch level through the Logger API', from: 'info', to: 'warn' });
    expect(await attestLogged()).toBe(false);
  });

  it('checks -level before calling, and requires it', async () => {
    expect(await run(['logger', 'set', '-level', 'loud'])).toEqual({ code: 2, out: '', err: 'Error: -level must be one of panic, fatal, error, warn, info, debug, trace; got "loud"\n' });
    expect(await run(['logger', 'set'])).toEqual({ code: 2, out: '', err: 'Error: -level is required: one of panic, fatal, error, warn, info, debug, trace\n' });
  });

  it('the server refuses a level outside SPIRE\'s with INVALID_ARGUMENT, and callers that are not admins', async () => {
    const err = await unaryCall(admin.Logger, 'SetLogLevel', { new_level: 'UNSPECIFIED' }).catch((e: unknown) => e as { code: number; details: string });
    expect(err).toMatchObject({ code: 3, details: expect.stringContaining('new_level must be one of PANIC, FATAL, ERROR, WARN, INFO, DEBUG, TRACE') });
    const bundleRoots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
    const anon = tcpClients({ address: `127.0.0.1:${runner.server!.port}`, trustDomain: TD, bundleRoots });
    try {
      const refused = await unaryCall(anon.Logger, 'SetLogLevel', { new_level: 'DEBUG' }).catch((e: unknown) => e as { code: number });
      expect([7, 16]).toContain((refused as { code: number }).code);
    } finally {
      anon.close();
    }
    expect(JSON.parse((await run(['logger', 'get', '-output', 'json'])).out)).toEqual({ current_level: 'WARN', launch_level: 'WARN' });
  });
});
