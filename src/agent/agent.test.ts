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

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

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
    server.entries = [testEntry({ entryId: 'e', spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/spire/agent/join_token/tok' })];
    await agent.start();
    await agent.whenReady(5000);
    expect(agent.state).toBe('ready');
    await agent.cache?.settled();
    expect(agent.cache?.svidFor('e')?.spiffeId).toBe('spiffe://example.org/w');
    const first = agent.agentSvid!;

    sched.advance(300_000); // half of 600 s: the agent SVID renews
    await tick();
    expect(server.renewals).toHaveLength(1);
    const renewed = agent.agentSvid!;
    expect(renewed.serialHex).not.toBe(first.serialHex);
    const last = server.clientCredentials.at(-1);
    expect(last?.mode === 'agent' && last.certChain[0]?.equals(renewed.certChain[0] as Buffer)).toBe(true);
    expect(agent.sync?.state).toBe('streaming');

    // The server goes away for longer than the agent SVID lives.
    server.setAvailable(false);
    for (let i = 0; i < 60 && fatal.length === 0; i++) {
      sched.advance(30_000);
      await tick();
    }
    expect(agent.state).toBe('failed');
    expect(fatal[0]?.code).toBe('ERR_AGENT_SVID_EXPIRED');
    expect(fatal[0]?.message).toMatch(/^agent SVID expired at .*; re-attest with a new join token/);
  });
});
