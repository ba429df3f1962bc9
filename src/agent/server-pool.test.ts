import { describe, expect, it } from 'vitest';
import { FailoverServerClient } from './failover-client.js';
import type { AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError, type ServerClient } from './server-client.js';
import { serverTargets } from './server-connection.js';
import { joinHostPort, ServerPool, splitHostPort } from './server-pool.js';
import { ManualScheduler } from './testing.js';

function recorder(): { logger: AgentLogger; lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (_f: object, m: string) => void lines.push(`${level} ${m}`);
  return { logger: { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') }, lines };
}

/** A resolver answering from a table that a test can change, counting lookups per name. */
function table(answers: Record<string, string[]>): { resolve: (h: string) => Promise<string[]>; lookups: string[]; answers: Record<string, string[]> } {
  const lookups: string[] = [];
  return {
    answers,
    lookups,
    resolve: async (h) => {
      lookups.push(h);
      const a = answers[h];
      if (a === undefined) throw new Error(`getaddrinfo ENOTFOUND ${h}`);
      return a;
    },
  };
}

describe('server addresses', () => {
  it('splits host:port (IPv6 bracketed) and refuses what is not one', () => {
    expect(splitHostPort('mayfly.internal:8081')).toEqual({ host: 'mayfly.internal', port: 8081 });
    expect(splitHostPort('10.0.0.1:1')).toEqual({ host: '10.0.0.1', port: 1 });
    expect(splitHostPort('[fd00::1]:8081')).toEqual({ host: 'fd00::1', port: 8081 });
    for (const bad of ['mayfly.internal', 'host:0', 'host:65536', 'fd00::1:8081', '[nothex]:1', ':8081', 'a b:1']) {
      expect(() => splitHostPort(bad), bad).toThrow(TypeError);
    }
    expect(joinHostPort('fd00::1', 8081)).toBe('[fd00::1]:8081');
    expect(joinHostPort('10.0.0.1', 8081)).toBe('10.0.0.1:8081');
  });

  it('takes serverAddress or serverAddresses, not both, not neither', () => {
    expect(serverTargets({ serverAddress: 'a:1' })).toEqual(['a:1']);
    expect(serverTargets({ serverAddresses: ['a:1', 'b:2'] })).toEqual(['a:1', 'b:2']);
    expect(() => serverTargets({ serverAddress: 'a:1', serverAddresses: ['b:2'] })).toThrow(/not both/);
    expect(() => serverTargets({})).toThrow(/required/);
    expect(() => serverTargets({ serverAddresses: [] })).toThrow(/non-empty/);
    expect(() => serverTargets({ serverAddresses: ['a:1', 'b'] })).toThrow(/"b" is not host:port/);
  });
});

describe('ServerPool', () => {
  it('uses every address a DNS name resolves to, in order, after the targets before it; IP literals are not looked up', async () => {
    const dns = table({ 'mayfly.test': ['10.0.0.1', '10.0.0.2', 'fd00::3'], 'other.test': ['10.0.0.2'] });
    const pool = new ServerPool({ targets: ['192.0.2.9:9000', 'mayfly.test:8081', 'other.test:8081'], resolve: dns.resolve });
    expect(pool.address).toBeUndefined();
    expect(await pool.current()).toBe('192.0.2.9:9000');
    expect(pool.endpoints).toEqual(['192.0.2.9:9000', '10.0.0.1:8081', '10.0.0.2:8081', '[fd00::3]:8081']);
    expect(dns.lookups).toEqual(['mayfly.test', 'other.test']);
  });

  it('moves to the next endpoint on a failure of the current one, once however many calls fail together; after a full round it resolves again', async () => {
    const dns = table({ 'mayfly.test': ['10.0.0.1', '10.0.0.2'] });
    const { logger, lines } = recorder();
    const pool = new ServerPool({ targets: ['mayfly.test:8081'], resolve: dns.resolve, logger });
    const a = await pool.current();
    expect(a).toBe('10.0.0.1:8081');
    expect(pool.hasAlternative()).toBe(false);
    pool.failed(a, 'connection refused');
    pool.failed(a, 'connection refused'); // a second call that failed on the same endpoint
    expect(await pool.current()).toBe('10.0.0.2:8081');
    expect(pool.hasAlternative()).toBe(true);
    expect(lines).toContain('warn server 10.0.0.1:8081 unreachable; moving to server 10.0.0.2:8081');

    // The second fails too: the round is over (back off), and the name is resolved again.
    dns.answers['mayfly.test'] = ['10.0.0.2', '10.0.0.3'];
    pool.failed('10.0.0.2:8081', 'connection refused');
    expect(pool.hasAlternative()).toBe(false);
    expect(lines).toContain('warn no server answered; trying them all again after a backoff');
    expect(await pool.current()).toBe('10.0.0.2:8081'); // round-robin position kept
    expect(pool.endpoints).toEqual(['10.0.0.2:8081', '10.0.0.3:8081']);
    expect(dns.lookups).toEqual(['mayfly.test', 'mayfly.test']);

    // A success ends a round: the next failure starts a new one with an alternative.
    pool.failed('10.0.0.2:8081', 'connection refused');
    expect(pool.hasAlternative()).toBe(true);
    pool.succeeded('10.0.0.3:8081');
    expect(pool.hasAlternative()).toBe(false);
  });

  it('uses the targets that resolve when others do not, and fails UNAVAILABLE naming them when none does', async () => {
    const dns = table({ 'good.test': ['10.0.0.7'] });
    const { logger, lines } = recorder();
    const pool = new ServerPool({ targets: ['gone.test:8081', 'good.test:8081'], resolve: dns.resolve, logger });
    expect(await pool.current()).toBe('10.0.0.7:8081');
    expect(lines).toContain('warn some server addresses could not be resolved; using the others');

    const none = new ServerPool({ targets: ['gone.test:8081'], resolve: dns.resolve });
    const err = await none.current().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerCallError);
    expect((err as ServerCallError).grpcCode).toBe(GrpcCode.UNAVAILABLE);
    expect((err as Error).message).toMatch(/no server address could be resolved \(gone\.test: getaddrinfo ENOTFOUND gone\.test\)/);
  });

  it('records which endpoint the stream is on and logs when it moves', () => {
    const { logger, lines } = recorder();
    const pool = new ServerPool({ targets: ['10.0.0.1:1', '10.0.0.2:1'], logger });
    pool.streaming('10.0.0.1:1');
    expect(pool.streamingOn).toBe('10.0.0.1:1');
    pool.streamEnded('10.0.0.1:1');
    expect(pool.streamingOn).toBeUndefined();
    pool.streaming('10.0.0.2:1');
    expect(lines).toEqual(['info authorised-entry stream moved to server 10.0.0.2:1']);
  });
});

describe('FailoverServerClient', () => {
  /** A client per endpoint whose calls fail with `codes[address]`. */
  function endpoints(codes: Record<string, number>): { clientFor: (a: string) => ServerClient; calls: string[] } {
    const calls: string[] = [];
    const clientFor = (address: string): ServerClient => {
      const answer = async (): Promise<never> => {
        calls.push(address);
        throw new ServerCallError(codes[address] ?? GrpcCode.UNAVAILABLE, `refused by ${address}`);
      };
      return { attest: answer, renewAgent: answer, newX509Svids: answer, newJwtSvid: answer, subscribe: () => () => {}, close: () => {} };
    };
    return { clientFor, calls };
  }

  it('tries a call once on each server until one answers; an answer (even a refusal) is not retried elsewhere', async () => {
    const pool = new ServerPool({ targets: ['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1'] });
    const { clientFor, calls } = endpoints({ '10.0.0.1:1': GrpcCode.UNAVAILABLE, '10.0.0.2:1': GrpcCode.PERMISSION_DENIED });
    const client = new FailoverServerClient({ pool, clientFor, credentials: { mode: 'insecure-bootstrap' }, scheduler: new ManualScheduler() });
    const err = (await client.renewAgent(Buffer.alloc(0)).catch((e: unknown) => e)) as ServerCallError;
    expect(err.grpcCode).toBe(GrpcCode.PERMISSION_DENIED);
    expect(calls).toEqual(['10.0.0.1:1', '10.0.0.2:1']);
    expect(pool.address).toBe('10.0.0.2:1');
  });

  it('fails with the last error once every server was unreachable, each tried once', async () => {
    const pool = new ServerPool({ targets: ['10.0.0.1:1', '10.0.0.2:1'] });
    const { clientFor, calls } = endpoints({ '10.0.0.1:1': GrpcCode.UNAVAILABLE, '10.0.0.2:1': GrpcCode.DEADLINE_EXCEEDED });
    const client = new FailoverServerClient({ pool, clientFor, credentials: { mode: 'insecure-bootstrap' }, scheduler: new ManualScheduler() });
    const err = (await client.newJwtSvid('e', ['aud']).catch((e: unknown) => e)) as ServerCallError;
    expect(err.grpcCode).toBe(GrpcCode.DEADLINE_EXCEEDED);
    expect(calls).toEqual(['10.0.0.1:1', '10.0.0.2:1']);
    expect(pool.hasAlternative()).toBe(false);
  });
});
