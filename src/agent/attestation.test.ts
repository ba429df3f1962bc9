import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TrustDomain } from '../spiffe/id.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { AgentIdentity } from './attestation.js';
import type { AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError, type ServerClient } from './server-client.js';
import { AgentStateStore } from './store.js';
import { EntrySync } from './sync.js';
import { FakeServer, ManualScheduler } from './testing.js';

const td = TrustDomain.parse('example.org');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function recorder(): { logger: AgentLogger; lines: string[] } {
  const lines: string[] = [];
  const rec = (lvl: string) => (_f: object, m: string): void => void lines.push(`${lvl}: ${m}`);
  return { lines, logger: { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') } };
}

function setup(opts: { tokens?: string[]; agentTtl?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-id-'));
  dirs.push(dir);
  const sched = new ManualScheduler();
  const server = new FakeServer({ scheduler: sched, joinTokens: opts.tokens ?? ['tok-1'], agentTtlSeconds: opts.agentTtl ?? 3600 });
  const bundlePath = join(dir, 'roots.pem');
  writeFileSync(bundlePath, pemEncodeCertificates([server.ca.certificate]));
  const rec = recorder();
  // Every identity made is watched: sched.settle() waits for its renewals and attestations.
  const make = (extra: { joinToken?: string; insecureBootstrap?: boolean; trustBundlePath?: string } = {}) => {
    const id = new AgentIdentity({
      trustDomain: td,
      store: new AgentStateStore({ dataDir: join(dir, 'data') }),
      connect: (c) => server.client(c),
      scheduler: sched,
      logger: rec.logger,
      random: () => 0.5,
      ...extra,
    });
    sched.watch(id);
    return id;
  };
  return { dir, sched, server, bundlePath, make, rec };
}

describe('AgentIdentity', () => {
  it('attests with a join token, verifying the server with the trust bundle, and stores SVID, key and bundle privately', async () => {
    const { dir, server, bundlePath, make } = setup();
    const id = make({ joinToken: 'tok-1', trustBundlePath: bundlePath });
    const svid = await id.init();
    expect(svid.spiffeId).toBe('spiffe://example.org/spire/agent/join_token/tok-1');
    expect(server.clientCredentials[0]).toMatchObject({ mode: 'bootstrap' });
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
    for (const f of ['agent-svid.pem', 'agent-key.pem', 'bundle.pem']) expect(statSync(join(dir, 'data', f)).mode & 0o777).toBe(0o600);
    expect(id.credentials()).toMatchObject({ mode: 'agent' });
  });

  it('restarts from the stored SVID without a token and without calling the server', async () => {
    const { server, bundlePath, make } = setup();
    const first = await make({ joinToken: 'tok-1', trustBundlePath: bundlePath }).init();
    const n = server.clientCredentials.length;
    const again = await make().init();
    expect(again.serialHex).toBe(first.serialHex);
    expect(server.clientCredentials.length).toBe(n);
  });

  it('refuses to attest without a way to authenticate the server, and warns loudly with insecureBootstrap', async () => {
    const { make, server, rec } = setup();
    await expect(make({ joinToken: 'tok-1' }).init()).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    await make({ joinToken: 'tok-1', insecureBootstrap: true }).init();
    expect(server.clientCredentials.at(-1)).toEqual({ mode: 'insecure-bootstrap' });
    expect(rec.lines.some((l) => l.startsWith('warn: INSECURE BOOTSTRAP'))).toBe(true);
  });

  it('renews at half-life with a fresh key and persists the new SVID', async () => {
    const { sched, server, bundlePath, make } = setup();
    const id = make({ joinToken: 'tok-1', trustBundlePath: bundlePath });
    const first = await id.init();
    const renewed: string[] = [];
    id.startRenewal({ onRenewed: (s) => renewed.push(s.serialHex), onExpired: () => {} });
    sched.set(new Date(first.notBefore.getTime() + (first.notAfter.getTime() - first.notBefore.getTime()) / 2 - 1000));
    expect(server.renewals).toHaveLength(0);
    await sched.advanceAndSettle(1000);
    expect(server.renewals).toHaveLength(1);
    expect(renewed).toHaveLength(1);
    expect(id.svid.serialHex).not.toBe(first.serialHex);
    expect(id.svid.privateKey.equals(first.privateKey)).toBe(false);
    expect((await make().init()).serialHex).toBe(id.svid.serialHex);
    id.stop();
  });

  it('reports an agent SVID that expired while the server was away, plainly', async () => {
    const { sched, server, bundlePath, make, rec } = setup({ agentTtl: 600 });
    const id = make({ joinToken: 'tok-1', trustBundlePath: bundlePath });
    const svid = await id.init();
    server.setAvailable(false);
    const fatal: Error[] = [];
    id.startRenewal({ onRenewed: () => {}, onExpired: (e) => fatal.push(e) });
    for (let i = 0; i < 40 && fatal.length === 0; i++) await sched.advanceAndSettle(30_000);
    expect(fatal[0]?.message).toBe(`agent SVID expired at ${svid.notAfter.toISOString()}; re-attest with a new join token (start the agent with --join-token)`);
    expect(rec.lines).toContain(`error: ${fatal[0]?.message}`);
    // And on restart, without a (new) token, the agent refuses to start with the same words.
    await expect(make().init()).rejects.toMatchObject({ code: 'ERR_AGENT_SVID_EXPIRED', message: fatal[0]?.message });
  });
});

describe('EntrySync', () => {
  it('reconnects with growing, jittered backoff (1 s … 30 s) while the server is away, and resets after an update', async () => {
    const sched = new ManualScheduler();
    const server = new FakeServer({ scheduler: sched });
    const updates: number[] = [];
    let client: ServerClient | undefined;
    const sync = new EntrySync({
      connect: () => (client = server.client({ mode: 'agent', roots: [], certChain: [], privateKey: server.ca.key.privateKey })),
      onUpdate: (u) => updates.push(u.sequence),
      scheduler: sched,
      random: () => 0.999,
    });
    sync.start();
    await sched.settle(); // the first update arrives on a microtask
    expect(sync.state).toBe('streaming');
    expect(updates).toHaveLength(1);
    server.setAvailable(false);
    expect(sync.state).toBe('backoff');
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = sched.now().getTime();
      const next = sched.nextTimer;
      if (next === undefined) throw new Error('no retry scheduled');
      delays.push(next.getTime() - before);
      await sched.setAndSettle(next);
    }
    const caps = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
    delays.forEach((d, i) => {
      const cap = caps[i] as number;
      expect(d).toBeLessThanOrEqual(cap);
      expect(d).toBeGreaterThanOrEqual(Math.max(1000, cap / 2));
      expect(d).toBeGreaterThan(cap * 0.99); // random() = 0.999 puts it at the top of [cap/2, cap]
    });
    server.setAvailable(true);
    await sched.setAndSettle(sched.nextTimer as Date);
    expect(sync.state).toBe('streaming');
    server.setEntries([]);
    expect(updates.length).toBeGreaterThanOrEqual(3);
    expect(client).toBeDefined();
    // An update resets the backoff: the next loss waits ~1 s again.
    server.setAvailable(false);
    expect((sched.nextTimer as Date).getTime() - sched.now().getTime()).toBe(1000);
    sync.stop();
    expect(sched.pendingTimers).toBe(0);
    expect(new ServerCallError(GrpcCode.UNAVAILABLE, 'x').code).toBe('ERR_AGENT_SERVER_CALL');
  });
});

describe('AgentIdentity with a re-attestable node attestor (k8s_psat-like)', () => {
  const PATH = '/spire/agent/k8s_psat/demo/node-uid-1';
  function psatSetup(opts: { agentTtl?: number } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-psat-'));
    dirs.push(dir);
    const sched = new ManualScheduler();
    const state = { accept: true, evidence: 0 };
    const server = new FakeServer({
      scheduler: sched,
      agentTtlSeconds: opts.agentTtl ?? 600,
      nodeAttestation: (type, payload) => (state.accept && type === 'k8s_psat' && payload.toString().startsWith('projected-token-') ? PATH : undefined),
    });
    const bundlePath = join(dir, 'roots.pem');
    writeFileSync(bundlePath, pemEncodeCertificates([server.ca.certificate]));
    // Fresh evidence for every call, as K8sPsatAgentAttestor re-reads the rotated token.
    const nodeAttestor = { attestationData: async () => ({ type: 'k8s_psat', payload: Buffer.from(`projected-token-${++state.evidence}`) }) };
    const rec = recorder();
    const make = () => {
      const id = new AgentIdentity({
        trustDomain: td,
        store: new AgentStateStore({ dataDir: join(dir, 'data') }),
        connect: (c) => server.client(c),
        scheduler: sched,
        logger: rec.logger,
        random: () => 0.5,
        nodeAttestor,
        trustBundlePath: bundlePath,
      });
      sched.watch(id);
      return id;
    };
    return { sched, server, state, make, rec };
  }

  it('attests with the attestor\'s evidence, and attests again (not fatal) when the SVID expired while the server was away', async () => {
    const { sched, server, make, rec } = psatSetup();
    const id = make();
    expect(id.canReattest).toBe(true);
    const first = await id.init();
    expect(first.spiffeId).toBe(`spiffe://example.org${PATH}`);
    expect(server.attestations).toEqual(['k8s_psat']);

    server.setAvailable(false);
    const fatal: Error[] = [];
    const renewed: string[] = [];
    id.startRenewal({ onRenewed: (s) => renewed.push(s.serialHex), onExpired: (e) => fatal.push(e) });
    await sched.setAndSettle(new Date(first.notAfter.getTime() + 60_000)); // well past expiry, server still away
    await sched.advanceAndSettle(30_000); // the renewal retry finds the SVID expired
    expect(fatal).toEqual([]);
    expect(rec.lines.some((l) => /^warn: agent SVID expired at .* attesting again$/.test(l))).toBe(true);

    server.setAvailable(true);
    for (let i = 0; i < 20 && renewed.length === 0; i++) await sched.advanceAndSettle(30_000);
    expect(server.attestations).toEqual(['k8s_psat', 'k8s_psat']);
    expect(renewed).toEqual([id.svid.serialHex]);
    expect(id.svid.serialHex).not.toBe(first.serialHex);
    expect(id.svid.notAfter.getTime()).toBeGreaterThan(sched.now().getTime());
    expect(fatal).toEqual([]);
    // The renewal cycle continues from the new SVID (a renewal is armed at its half-life).
    expect(sched.nextTimer!.getTime()).toBeLessThan(id.svid.notAfter.getTime());
    id.stop();
  });

  it('attests again at start when the stored SVID has expired, instead of refusing to start', async () => {
    const { sched, server, make } = psatSetup();
    const first = await make().init();
    sched.set(new Date(first.notAfter.getTime() + 1000));
    const again = await make().init();
    expect(server.attestations).toEqual(['k8s_psat', 'k8s_psat']);
    expect(again.serialHex).not.toBe(first.serialHex);
    expect(again.notAfter.getTime()).toBeGreaterThan(sched.now().getTime());
  });

  it('attests again when a renewal is refused as UNAUTHENTICATED (evicted), and keeps retrying with backoff while attestation fails', async () => {
    const { sched, server, state, make } = psatSetup({ agentTtl: 3600 });
    const id = make();
    const first = await id.init();
    const renewed: string[] = [];
    id.startRenewal({ onRenewed: (s) => renewed.push(s.serialHex), onExpired: () => {} });
    server.evict(first.spiffeId);
    state.accept = false;
    await sched.setAndSettle(new Date((first.notBefore.getTime() + first.notAfter.getTime()) / 2)); // half-life: renewal → UNAUTHENTICATED → attest (refused)
    const tried = state.evidence;
    expect(tried).toBe(2);
    expect(renewed).toEqual([]);
    // A retry is scheduled, not a tight loop: nothing more happens until the clock moves.
    await sched.settle();
    expect(state.evidence).toBe(tried);
    state.accept = true;
    for (let i = 0; i < 20 && renewed.length === 0; i++) await sched.advanceAndSettle(5_000);
    expect(renewed).toHaveLength(1);
    expect(server.evicted.size).toBe(0);
    expect(id.svid.serialHex).not.toBe(first.serialHex);
    id.stop();
  });

  it('refuses joinToken and nodeAttestor together; a join token attests once: spent when the server answered, kept when it was unreachable', async () => {
    const { make, bundlePath, server } = setup({ tokens: ['tok-1'] });
    const id = make({ joinToken: 'tok-1', trustBundlePath: bundlePath });
    expect(id.canReattest).toBe(true);
    await id.init();
    expect(id.canReattest).toBe(false);
    // A used token refused by the server is spent too.
    const used = setup({ tokens: [] });
    const refusedId = used.make({ joinToken: 'tok-1', trustBundlePath: used.bundlePath });
    await expect(refusedId.init()).rejects.toMatchObject({ grpcCode: GrpcCode.PERMISSION_DENIED });
    expect(refusedId.canReattest).toBe(false);
    // Unreachable: the server never judged the token, so it stays usable.
    expect(server.available).toBe(true);
    const away = setup({ tokens: ['tok-2'] });
    away.server.available = false;
    const awayId = away.make({ joinToken: 'tok-2', trustBundlePath: away.bundlePath });
    await expect(awayId.init()).rejects.toMatchObject({ grpcCode: GrpcCode.UNAVAILABLE });
    expect(awayId.canReattest).toBe(true);
    expect(
      () =>
        new AgentIdentity({
          trustDomain: td,
          store: new AgentStateStore({ dataDir: '/nonexistent' }),
          connect: () => {
            throw new Error('unused');
          },
          scheduler: new ManualScheduler(),
          joinToken: 't',
          nodeAttestor: { attestationData: async () => ({ type: 'x', payload: Buffer.alloc(0) }) },
        }),
    ).toThrow(TypeError);
  });
});
