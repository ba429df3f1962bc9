/**
 * MayflyAgent refuses a Workload API socket directory another user could have planted
 * (issue 16, finding 3) before it attests or stores anything; real directories, the
 * fake server from agent/testing.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from '../securefs/testing.js';
import { isMayflyError } from '../spiffe/errors.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { MayflyAgent } from './agent.js';
import { FakeServer, ManualScheduler, testEntry } from './testing.js';

const dirs = tempDirs('mayfly-agent-sockdir-');
const agents: MayflyAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
  dirs.cleanup();
});

function agentWith(dir: string, socketPath: string): { agent: MayflyAgent; server: FakeServer } {
  const sched = new ManualScheduler();
  const server = new FakeServer({ scheduler: sched, joinTokens: ['tok'] });
  server.entries = [testEntry({ entryId: 'e', spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/spire/agent/join_token/tok' })];
  writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([server.ca.certificate]));
  const agent = new MayflyAgent({
    serverAddress: 'unused:1',
    trustDomain: 'example.org',
    dataDir: join(dir, 'data'),
    socketPath,
    joinToken: 'tok',
    trustBundlePath: join(dir, 'roots.pem'),
    workloadAttestors: [{ name: 'unix', attest: async () => [] }],
    scheduler: sched,
    random: () => 0.5,
    serverClientFactory: (c) => server.client(c),
  });
  agents.push(agent);
  return { agent, server };
}

describe('MayflyAgent.start: the Workload API socket directory', () => {
  it.skipIf(!asRoot)('refuses one another user created first, before attesting or writing its state', async () => {
    const dir = dirs.make();
    const planted = join(dir, 'mayfly-agent', 'public');
    mkdirSync(planted, { recursive: true });
    chmodSync(planted, 0o777);
    giveToOtherUser(planted);
    const { agent, server } = agentWith(dir, join(planted, 'api.sock'));
    const err = await agent.start().catch((e: unknown) => e as Error);
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect((err as Error).message).toContain(`directory ${planted} is owned by uid ${OTHER_UID} (expected 0 (root)); remove it or choose another socket path`);
    expect(server.attestations).toEqual([]);
    expect(existsSync(join(dir, 'data'))).toBe(false);
    expect(readdirSync(planted)).toEqual([]);
    expect(agent.state).toBe('stopped');
  });

  it('creates a missing one 0755 whatever the umask, and serves there', async () => {
    const dir = dirs.make();
    const socketPath = join(dir, 'run', 'mayfly', 'agent', 'public', 'api.sock');
    const { agent } = agentWith(dir, socketPath);
    const old = process.umask(0o077);
    try {
      await agent.start();
    } finally {
      process.umask(old);
    }
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    expect(modeOf(join(dir, 'run', 'mayfly', 'agent', 'public'))).toBe(0o755);
    expect(modeOf(join(dir, 'data'))).toBe(0o700);
  });
});
