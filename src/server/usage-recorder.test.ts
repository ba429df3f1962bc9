/**
 * Entry usage records (issue 11) end to end: a real server on a real LevelDB store, an
 * attested agent getting X509- and JWT-SVIDs; the recorder writes batches off the
 * issuance path (nothing is written until a flush), merges them, survives a reopen, and
 * keeps what a failing store refused for the next flush.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinTokenAttestor } from '../attestors/node/join_token/join_token.js';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import type { EntryUsageDelta } from '../datastore/datastore.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireEntry } from './messages.js';
import { MayflyServer } from './server.js';
import { attestJoinTokenAgent } from './testing.js';
import { EntryUsageRecorder } from './usage-recorder.js';

const TD = 'example.org';
let dir: string;
let ds: LevelDatastore;
let server: MayflyServer;
let admin: ServerApiClients;
let agent: ServerApiClients;
let agentId: string;
let clock = new Date('2026-06-01T00:00:00Z');
let usage: EntryUsageRecorder;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-usage-'));
  ds = await openLevelDatastore({ path: join(dir, 'db') });
  const ca = new ServerCa({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
  await ca.init();
  // A long interval: the test flushes by hand, so it sees that issuance writes nothing itself.
  usage = new EntryUsageRecorder({ store: ds, now: () => clock, flushIntervalMs: 3_600_000 });
  server = new MayflyServer({ trustDomain: TD, dataDir: dir, adminSocketPath: join(dir, 'admin.sock'), bindAddress: '127.0.0.1', port: 0, datastore: ds, ca, attestors: [new JoinTokenAttestor({ datastore: ds })], drainMs: 200, csrWorkers: 0, usage });
  await server.start();
  admin = adminSocketClients(server.adminSocketPath);
  ({ agentId, clients: agent } = await attestJoinTokenAgent({ port: server.port, admin, trustDomain: TD, bundleRoots: [...ca.getBundle().x509Authorities] }));
});

afterAll(async () => {
  agent?.close();
  admin?.close();
  await server?.stop();
  await usage?.close();
  await ds?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function createEntry(path: string): Promise<WireEntry> {
  const res = await unaryCall<{ results: { status: { code: number }; entry: WireEntry }[] }>(admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: `spiffe://${TD}${path}`, parent_id: agentId, selectors: [{ type: 'unix', value: 'uid:1' }] }],
  });
  expect(res.results[0]?.status.code).toBe(0);
  return res.results[0]!.entry;
}

describe('entry usage records', () => {
  it('counts issuances per entry with first/last time and the agent, written only at flush, merged across flushes', async () => {
    const web = await createEntry('/usage/web');
    const never = await createEntry('/usage/never');
    const sign = (n: number): Promise<unknown> =>
      unaryCall(agent.SVID, 'BatchNewX509SVID', { params: Array.from({ length: n }, () => ({ entry_id: web.id, csr: createCsr({ privateKey: generateKeyPair().privateKey }) })) });
    await sign(3);
    expect(await ds.listEntryUsage()).toEqual([]); // off the issuance path: nothing written yet
    expect(usage.pendingEntries).toBe(1);
    await usage.flush();
    clock = new Date(clock.getTime() + 3600_000);
    await sign(1);
    await unaryCall(agent.SVID, 'NewJWTSVID', { entry_id: web.id, audience: ['db'] });
    await usage.flush();
    const t0 = Date.parse('2026-06-01T00:00:00Z') / 1000;
    const u = (await ds.listEntryUsage()).find((x) => x.entryId === web.id);
    expect(u).toEqual({ entryId: web.id, firstIssuedAt: t0, lastIssuedAt: t0 + 3600, issuanceCount: 5, agents: [agentId], agentCount: 1, lastDeliveredAt: 0 });
    expect((await ds.listEntryUsage()).some((x) => x.entryId === never.id)).toBe(false);
  });

  it('records a reported Workload API delivery against the entries of that SPIFFE ID', async () => {
    const e = await createEntry('/usage/delivered');
    const res = await unaryCall<{ recorded: number; refused: number }>(agent.AgentSync, 'ReportDeliveries', {
      deliveries: [
        { kind: 'x509', spiffe_id: `spiffe://${TD}/usage/delivered`, serial: '0a', expires_at: 2_000_000_000, delivered_at: 1_800_000_000_123, pid: 1, uid: 1, gid: 1, selectors: [] },
        { kind: 'x509', spiffe_id: `spiffe://${TD}/not-mine`, serial: '0b', expires_at: 2_000_000_000, delivered_at: 1_900_000_000_000, pid: 1, uid: 1, gid: 1, selectors: [] },
      ],
    });
    expect(res.refused).toBe(1);
    await usage.flush();
    expect((await ds.listEntryUsage()).find((x) => x.entryId === e.id)).toMatchObject({ lastDeliveredAt: 1_800_000_000, issuanceCount: 0 });
  });

  it('keeps what a failing store refused and writes it at the next flush', async () => {
    const written: EntryUsageDelta[][] = [];
    let fail = true;
    const r = new EntryUsageRecorder({
      store: {
        recordEntryUsage: async (d) => {
          if (fail) throw new Error('disk full');
          written.push([...d]);
        },
      },
      now: () => new Date(10_000),
      logger: { warn: () => undefined },
    });
    r.issued('e1', 'a1');
    await r.flush();
    r.issued('e1', 'a2');
    fail = false;
    await r.close();
    expect(written).toEqual([[{ entryId: 'e1', firstIssuedAt: 10, lastIssuedAt: 10, issuanceCount: 2, agents: ['a1', 'a2'] }]]);
  });
});
