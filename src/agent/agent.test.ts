import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MayflyError } from '../spiffe/errors.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { MayflyAgent } from './agent.js';
import { FakeServer, ManualScheduler, testEntry } from './testing.js';

const dirs: string[] = [];
const agents: MayflyAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('MayflyAgent (fake server, manual clock)', () => {
  it('swaps to the renewed agent SVID for every server call, and fails plainly once it expires unrenewed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-unit-'));
    dirs.push(dir);
    const sched = new ManualScheduler();
    const server = new FakeServer({ scheduler: sched, joinTokens: ['tok'], agentTtlSeconds: 600 });
    writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([server.ca.certificate]));
    const fatal: MayflyError[] = [];
    const agent = new MayflyAgent({
      serverAddress: 'unused:1',
      trustDomain: 'example.org',
      dataDir: join(dir, 'data'),
      socketPath: join(dir, 'api.sock'),
      joinToken: 'tok',
      trustBundlePath: join(dir, 'roots.pem'),
      workloadAttestors: [{ name: 'unix', attest: async () => [{ type: 'unix', value: 'uid:1000' }] }],
      scheduler: sched,
      random: () => 0.5,
      serverClientFactory: (c) => server.client(c),
      onFatal: (e) => fatal.push(e),
    });
    agents.push(agent);
    sched.watch(agent);
    server.entries = [testEntry({ entryId: 'e', spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/spire/agent/join_token/tok' })];
    await agent.start();
    await agent.whenReady(5000);
    expect(agent.state).toBe('ready');
    await agent.cache?.settled();
    expect(agent.cache?.svidFor('e')?.spiffeId).toBe('spiffe://example.org/w');
    const first = agent.agentSvid!;

    await sched.advanceAndSettle(300_000); // half of 600 s: the agent SVID renews
    expect(server.renewals).toHaveLength(1);
    const renewed = agent.agentSvid!;
    expect(renewed.serialHex).not.toBe(first.serialHex);
    const last = server.clientCredentials.at(-1);
    expect(last?.mode === 'agent' && last.certChain[0]?.equals(renewed.certChain[0] as Buffer)).toBe(true);
    expect(agent.sync?.state).toBe('streaming');

    // The server goes away for longer than the agent SVID lives.
    server.setAvailable(false);
    for (let i = 0; i < 60 && fatal.length === 0; i++) await sched.advanceAndSettle(30_000);
    expect(agent.state).toBe('failed');
    expect(fatal[0]?.code).toBe('ERR_AGENT_SVID_EXPIRED');
    expect(fatal[0]?.message).toMatch(/^agent SVID expired at .*; re-attest with a new join token/);
  });

  it('with a re-attestable node attestor: attests again after an eviction and reopens the stream with the new SVID; retries are spaced while the server refuses', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-unit-'));
    dirs.push(dir);
    const sched = new ManualScheduler();
    const agentPath = '/spire/agent/k8s_psat/demo/node-uid-1';
    const state = { accept: true, evidence: 0 };
    const server = new FakeServer({ scheduler: sched, agentTtlSeconds: 3600, nodeAttestation: (type) => (state.accept && type === 'k8s_psat' ? agentPath : undefined) });
    writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([server.ca.certificate]));
    const fatal: MayflyError[] = [];
    const agent = new MayflyAgent({
      serverAddress: 'unused:1',
      trustDomain: 'example.org',
      dataDir: join(dir, 'data'),
      socketPath: join(dir, 'api.sock'),
      nodeAttestor: { attestationData: async () => ({ type: 'k8s_psat', payload: Buffer.from(`token-${++state.evidence}`) }) },
      trustBundlePath: join(dir, 'roots.pem'),
      workloadAttestors: [{ name: 'unix', attest: async () => [{ type: 'unix', value: 'uid:1000' }] }],
      scheduler: sched,
      random: () => 0.5,
      serverClientFactory: (c) => server.client(c),
      onFatal: (e) => fatal.push(e),
    });
    agents.push(agent);
    sched.watch(agent);
    server.entries = [testEntry({ entryId: 'e', spiffeId: 'spiffe://example.org/w', parentId: `spiffe://example.org${agentPath}` })];
    await agent.start();
    await agent.whenReady(5000);
    const first = agent.agentSvid!;
    expect(first.spiffeId).toBe(`spiffe://example.org${agentPath}`);
    expect(server.attestations).toEqual(['k8s_psat']);

    // Evicted: the stream ends UNAUTHENTICATED; the agent attests again at once and resubscribes with the new SVID.
    server.evict(first.spiffeId);
    await sched.settle();
    expect(server.attestations).toEqual(['k8s_psat', 'k8s_psat']);
    const second = agent.agentSvid!;
    expect(second.serialHex).not.toBe(first.serialHex);
    expect(server.streamCount).toBe(1);
    const last = server.clientCredentials.at(-1);
    expect(last?.mode === 'agent' && last.certChain[0]?.equals(second.certChain[0] as Buffer)).toBe(true);
    expect(agent.state).toBe('ready');

    // Evicted again, and this time the server refuses the evidence: attempts follow a
    // backoff (not one per stream retry), and the agent keeps serving meanwhile.
    state.accept = false;
    const before = state.evidence;
    server.evict(second.spiffeId);
    await sched.settle();
    expect(state.evidence).toBe(before + 1);
    for (let i = 0; i < 12; i++) await sched.advanceAndSettle(5_000); // one minute in all
    const attempts = state.evidence - before;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThanOrEqual(8); // 1 s doubling to 30 s, not one per stream retry
    expect(agent.state).toBe('ready');
    expect(fatal).toEqual([]);

    state.accept = true;
    for (let i = 0; i < 20 && server.streamCount === 0; i++) await sched.advanceAndSettle(5_000);
    expect(server.attestations).toHaveLength(3);
    expect(server.streamCount).toBe(1);
    expect(agent.agentSvid?.serialHex).not.toBe(second.serialHex);
  });
});
