/**
 * Agent failover at unit level: one DNS name (resolved by an injected resolver) standing
 * for two servers in front of one backend (as two servers share one PostgreSQL). The
 * proof with real processes is test/crash/agent-failover.postgres.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { MayflyAgent } from './agent.js';
import { FIRST_UPDATE_TIMEOUT_MS } from './failover-client.js';
import type { AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError, type ServerClient, type ServerClientCredentials } from './server-client.js';
import { FakeServer, ManualScheduler, testEntry } from './testing.js';

const dirs: string[] = [];
const agents: MayflyAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** One server process in front of the shared backend: `down()` refuses its calls and breaks its streams. */
class Front {
  up = true;
  /** Accepts subscriptions and never answers them (a hung server, or an address that swallows connections). */
  silent = false;
  calls = 0;
  readonly #streams = new Set<(e: ServerCallError) => void>();
  constructor(readonly backend: FakeServer) {}

  get streamCount(): number {
    return this.#streams.size;
  }

  down(): void {
    this.up = false;
    for (const kill of [...this.#streams]) kill(new ServerCallError(GrpcCode.UNAVAILABLE, 'Connection dropped'));
  }

  client(creds: ServerClientCredentials): ServerClient {
    const inner = this.backend.client(creds);
    const gate = <T>(call: () => Promise<T>): Promise<T> => {
      this.calls++;
      return this.up ? call() : Promise.reject(new ServerCallError(GrpcCode.UNAVAILABLE, 'connect ECONNREFUSED'));
    };
    return {
      attest: (r) => gate(() => inner.attest(r)),
      renewAgent: (csr) => gate(() => inner.renewAgent(csr)),
      newX509Svids: (b) => gate(() => inner.newX509Svids(b)),
      newJwtSvid: (e, a) => gate(() => inner.newJwtSvid(e, a)),
      subscribe: (onUpdate, onError) => {
        this.calls++;
        if (!this.up) {
          queueMicrotask(() => onError(new ServerCallError(GrpcCode.UNAVAILABLE, 'connect ECONNREFUSED')));
          return () => {};
        }
        if (this.silent) return () => {};
        const kill = (e: ServerCallError): void => {
          this.#streams.delete(kill);
          cancel();
          onError(e);
        };
        this.#streams.add(kill);
        const cancel = inner.subscribe(onUpdate, (e) => {
          this.#streams.delete(kill);
          onError(e);
        });
        return () => {
          this.#streams.delete(kill);
          cancel();
        };
      },
      close: () => inner.close(),
    };
  }
}

function setup(opts: { firstDown?: boolean; firstSilent?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-failover-'));
  dirs.push(dir);
  const sched = new ManualScheduler();
  const backend = new FakeServer({ scheduler: sched, joinTokens: ['tok'], x509TtlSeconds: 600 });
  writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([backend.ca.certificate]));
  const fronts = new Map([['10.0.0.1:8081', new Front(backend)], ['10.0.0.2:8081', new Front(backend)]]);
  const [a, b] = [...fronts.values()] as [Front, Front];
  if (opts.firstDown === true) a.up = false;
  if (opts.firstSilent === true) a.silent = true;
  const lookups: string[] = [];
  const lines: string[] = [];
  const rec = (_f: object, m: string): void => void lines.push(m);
  const logger: AgentLogger = { debug() {}, info: rec, warn: rec, error: rec };
  const agent = new MayflyAgent({
    serverAddress: 'mayfly.test:8081',
    resolveHost: async (host) => {
      lookups.push(host);
      if (host !== 'mayfly.test') throw new Error(`getaddrinfo ENOTFOUND ${host}`);
      return ['10.0.0.1', '10.0.0.2'];
    },
    serverClientFor: (address, creds) => {
      const f = fronts.get(address);
      if (f === undefined) throw new Error(`no server at ${address}`);
      return f.client(creds);
    },
    trustDomain: 'example.org',
    dataDir: join(dir, 'data'),
    socketPath: join(dir, 'api.sock'),
    joinToken: 'tok',
    trustBundlePath: join(dir, 'roots.pem'),
    workloadAttestors: [{ name: 'unix', attest: async () => [{ type: 'unix', value: 'uid:1000' }] }],
    scheduler: sched,
    random: () => 0.5,
    logger,
  });
  agents.push(agent);
  sched.watch(agent);
  const parentId = 'spiffe://example.org/spire/agent/join_token/tok';
  const entry = (n: number) => testEntry({ entryId: `e${n}`, spiffeId: `spiffe://example.org/w${n}`, parentId });
  return { sched, backend, a, b, agent, lookups, lines, entry };
}

describe('agent failover across the addresses of one DNS name', () => {
  it('moves the entry stream to the other server when its server dies, serves its cached SVIDs meanwhile, and gets new entries from the survivor', async () => {
    const { sched, backend, a, b, agent, lookups, lines, entry } = setup();
    backend.entries = [entry(1)];
    await agent.start();
    await agent.whenReady(5000);
    await sched.settle();
    expect(lookups).toEqual(['mayfly.test']);
    expect(a.streamCount).toBe(1);
    expect(b.streamCount).toBe(0);
    expect(agent.serverAddress).toBe('10.0.0.1:8081');
    expect(await agent.metrics.text()).toMatch(/^mayfly_agent_server\{address="10\.0\.0\.1:8081"\} 1$/m);
    const held = agent.cache!.svidFor('e1')!;
    expect(held.spiffeId).toBe('spiffe://example.org/w1');

    a.down();
    // Before any timer ran: the cached SVID is still served, and it is valid now.
    expect(agent.cache!.svidFor('e1')).toBe(held);
    expect(parseCertificate(held.certChain[0] as Buffer).notAfter.getTime()).toBeGreaterThan(sched.now().getTime());
    expect(agent.state).toBe('ready');
    // The retry on the other server is not a backoff: it is due within the failover delay.
    expect(agent.sync!.state).toBe('backoff');
    expect(sched.nextTimer!.getTime() - sched.now().getTime()).toBeLessThan(200);
    await sched.advanceAndSettle(200);
    expect(b.streamCount).toBe(1);
    expect(agent.sync!.state).toBe('streaming');
    expect(agent.serverAddress).toBe('10.0.0.2:8081');
    expect(await agent.metrics.text()).toMatch(/^mayfly_agent_server\{address="10\.0\.0\.2:8081"\} 1$/m);
    expect(lines).toContain('server 10.0.0.1:8081 unreachable; moving to server 10.0.0.2:8081');
    expect(lines).toContain('authorised-entry stream moved to server 10.0.0.2:8081');
    expect(agent.healthy).toBe(true);

    // An entry created while the first server is gone reaches the agent through the survivor.
    const callsOnA = a.calls;
    backend.setEntries([entry(1), entry(2)]);
    await sched.settle();
    expect(agent.cache!.svidFor('e2')?.spiffeId).toBe('spiffe://example.org/w2');
    expect(a.calls).toBe(callsOnA); // signed by the survivor, not first tried on the dead one

    // The first comes back and the second dies: the agent moves back.
    a.up = true;
    b.down();
    await sched.advanceAndSettle(200);
    expect(a.streamCount).toBe(1);
    expect(agent.serverAddress).toBe('10.0.0.1:8081');
    backend.setEntries([entry(1), entry(2), entry(3)]);
    await sched.settle();
    expect(agent.cache!.svidFor('e3')?.spiffeId).toBe('spiffe://example.org/w3');
  });

  it('backs off once every server failed in a row, resolving the name again for each round, and keeps serving', async () => {
    const { sched, backend, a, b, agent, lookups, entry } = setup();
    backend.entries = [entry(1)];
    await agent.start();
    await agent.whenReady(5000);
    await sched.settle();
    a.down();
    b.up = false;
    await sched.advanceAndSettle(200); // the quick retry on the second server fails too
    expect(agent.sync!.state).toBe('backoff');
    expect(sched.nextTimer!.getTime() - sched.now().getTime()).toBeGreaterThanOrEqual(500); // the 1 s backoff (jittered), not the failover delay
    const attemptsBefore = a.calls + b.calls;
    for (let i = 0; i < 12; i++) await sched.advanceAndSettle(5_000); // one minute
    const attempts = a.calls + b.calls - attemptsBefore;
    expect(attempts).toBeGreaterThan(2);
    expect(attempts).toBeLessThanOrEqual(16); // each backoff step (1 s doubling to 30 s) tries both once
    expect(lookups.length).toBeGreaterThan(2);
    expect(agent.cache!.svidFor('e1')?.spiffeId).toBe('spiffe://example.org/w1');

    b.up = true;
    for (let i = 0; i < 10 && b.streamCount === 0; i++) await sched.advanceAndSettle(5_000);
    expect(b.streamCount).toBe(1);
    expect(agent.sync!.state).toBe('streaming');
  });

  it('attests through the second address when the first does not answer', async () => {
    const { sched, backend, a, b, agent, entry } = setup({ firstDown: true });
    backend.entries = [entry(1)];
    await agent.start();
    await agent.whenReady(5000);
    await sched.settle();
    expect(backend.attestations).toEqual(['join_token']);
    expect(a.calls).toBeGreaterThan(0);
    expect(b.streamCount).toBe(1);
    expect(agent.cache!.svidFor('e1')?.spiffeId).toBe('spiffe://example.org/w1');
  });

  it('gives up on a server that accepts the stream but sends nothing, after the first-update timeout, and streams from the other', async () => {
    const { sched, backend, a, b, agent, lines, entry } = setup({ firstSilent: true });
    backend.entries = [entry(1)];
    await agent.start();
    await sched.settle();
    expect(agent.ready).toBe(false);
    expect(b.streamCount).toBe(0);
    await sched.advanceAndSettle(FIRST_UPDATE_TIMEOUT_MS);
    await sched.advanceAndSettle(200);
    expect(b.streamCount).toBe(1);
    expect(agent.ready).toBe(true);
    expect(agent.serverAddress).toBe('10.0.0.2:8081');
    expect(lines).toContain('server 10.0.0.1:8081 unreachable; moving to server 10.0.0.2:8081');
    expect(a.calls).toBeGreaterThan(0);
  });
});
