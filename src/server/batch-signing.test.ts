/**
 * BatchNewX509SVID end to end with the performance paths on: CSR checks, mint and
 * verification on a worker thread (server/csr-pool) and the per-agent authorised-entry
 * cache (server/authorized-cache).
 * Proves that neither changes what an agent gets: every SVID verifies and carries the
 * entry's identity, a bad CSR fails only its own item, and entry deletion, entry creation
 * and a ban take effect on the very next call, and so does an authority rotation. Also BatchCreateEntry's one-batch write:
 * per-item outcomes in order, exactly as one create per item would give.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinTokenAttestor } from '../attestors/node/join_token/join_token.js';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { exportSpkiDer, generateKeyPair, type KeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireEntry, WireX509Svid } from './messages.js';
import { ServerMetrics } from './observability.js';
import { MayflyServer } from './server.js';
import { attestJoinTokenAgent } from './testing.js';

const TD = 'example.org';
let dir: string;
let ds: LevelDatastore;
let ca: ServerCa;
let server: MayflyServer;
let admin: ServerApiClients;
let agent: ServerApiClients;
let agentId: string;
let metrics: ServerMetrics;

/** mayfly_svids_signed_total{type="x509"} as the server's metrics show it. */
async function x509Signed(): Promise<number> {
  const m = /^mayfly_svids_signed_total\{type="x509"\} (\d+)$/m.exec(await metrics.text());
  return Number(m?.[1]);
}

type Results = { results: { status: { code: number; message: string }; svid: WireX509Svid | null }[] };

async function createEntry(path: string): Promise<WireEntry> {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry }[] }>(admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: `spiffe://${TD}${path}`, parent_id: agentId, selectors: [{ type: 'unix', value: 'uid:1' }], dns_names: ['web.example.org'] }],
  });
  expect(res.results[0]?.status.code).toBe(0);
  return res.results[0]?.entry as WireEntry;
}

function sign(params: { entry_id: string; csr: Buffer }[]): Promise<Results> {
  return unaryCall<Results>(agent.SVID, 'BatchNewX509SVID', { params });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-batch-'));
  ds = await openLevelDatastore({ path: join(dir, 'db') });
  ca = new ServerCa({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
  await ca.init();
  // The CA as `mayfly-server run` wires it (counting signatures for the metrics).
  metrics = new ServerMetrics({ processMetrics: false, datastore: ds });
  server = new MayflyServer({ trustDomain: TD, dataDir: dir, adminSocketPath: join(dir, 'admin.sock'), bindAddress: '127.0.0.1', port: 0, datastore: ds, ca: metrics.countingCa(ca), attestors: [new JoinTokenAttestor({ datastore: ds })], drainMs: 200, csrWorkers: 1 });
  await server.start();
  admin = adminSocketClients(server.adminSocketPath);
  ({ agentId, clients: agent } = await attestJoinTokenAgent({ port: server.port, admin, trustDomain: TD, bundleRoots: [...ca.getBundle().x509Authorities] }));
});

afterAll(async () => {
  agent?.close();
  admin?.close();
  await server?.stop();
  await ds?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('BatchCreateEntry (validated here, written as one datastore batch)', () => {
  it('keeps items independent and in order: invalid, duplicate in the batch, already stored', async () => {
    const stored = await createEntry('/bce/existing');
    const e = (path: string, parent = agentId) => ({ spiffe_id: `spiffe://${TD}${path}`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:7' }] });
    const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry | null }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [e('/bce/one'), e('/bce/bad', 'not a spiffe id'), e('/bce/one'), { ...e('/bce/existing'), selectors: [{ type: 'unix', value: 'uid:1' }] }, e('/bce/two')],
    });
    expect(res.results.map((r) => r.status.code)).toEqual([0, status.INVALID_ARGUMENT, status.ALREADY_EXISTS, status.ALREADY_EXISTS, 0]);
    expect(res.results[0]?.entry?.spiffe_id).toBe(`spiffe://${TD}/bce/one`);
    expect(res.results[4]?.entry?.spiffe_id).toBe(`spiffe://${TD}/bce/two`);
    expect(res.results[3]?.status.message).toContain(stored.id);
    const listed = await unaryCall<{ entries: WireEntry[] }>(admin.Entry, 'ListEntries', { filter: { by_spiffe_id: `spiffe://${TD}/bce/one` } });
    expect(listed.entries).toHaveLength(1);
  });
});

describe('BatchNewX509SVID with worker-thread CSR checks and the authorised-entry cache', () => {
  it('signs a large batch; a CSR without proof of possession fails alone', async () => {
    const e = await createEntry('/batch/web');
    const keys = Array.from({ length: 24 }, () => generateKeyPair());
    const params = keys.map((k, i) => ({ entry_id: e.id, csr: createCsr({ privateKey: k.privateKey, corruptSignature: i === 5, uri: `spiffe://${TD}/asked-for-this` }) }));
    params.push({ entry_id: 'not-mine', csr: createCsr({ privateKey: generateKeyPair().privateKey }) });
    const signedBefore = await x509Signed();
    const res = await sign(params);
    expect(res.results).toHaveLength(25);
    expect(await x509Signed()).toBe(signedBefore + 23); // every SVID minted on the pool is counted, failures are not
    res.results.forEach((r, i) => {
      if (i === 5) {
        expect(r.status.code).toBe(status.INVALID_ARGUMENT);
        expect(r.status.message).toMatch(/proof of possession/);
      } else if (i === 24) {
        expect(r.status.code).toBe(status.PERMISSION_DENIED);
      } else {
        expect(r.status.code, r.status.message).toBe(0);
        const chain = r.svid?.cert_chain as Buffer[];
        expect(verifyX509Svid(chain, ca.getBundle()).spiffeId.toString()).toBe(`spiffe://${TD}/batch/web`);
        const leaf = parseCertificate(chain[0] as Buffer);
        expect(leaf.spki.equals(exportSpkiDer((keys[i] as KeyPair).publicKey))).toBe(true);
        expect(leaf.dnsSans).toEqual(['web.example.org']);
        expect(r.svid?.serial_number).toBe(leaf.serialHex);
      }
    });
  });

  it('sees entry deletion and creation on the next call (cache invalidated by the change hub)', async () => {
    const a = await createEntry('/batch/a');
    const csr = (): Buffer => createCsr({ privateKey: generateKeyPair().privateKey });
    expect((await sign([{ entry_id: a.id, csr: csr() }])).results[0]?.status.code).toBe(0);
    const del = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchDeleteEntry', { ids: [a.id] });
    expect(del.results[0]?.status.code).toBe(0);
    expect((await sign([{ entry_id: a.id, csr: csr() }])).results[0]?.status.code).toBe(status.PERMISSION_DENIED);
    const b = await createEntry('/batch/b');
    expect((await sign([{ entry_id: b.id, csr: csr() }])).results[0]?.status.code).toBe(0);
  });

  it('signs with the newly active authority on the first call after rotation', async () => {
    const e = await createEntry('/batch/rotation');
    const params = (): { entry_id: string; csr: Buffer }[] => Array.from({ length: 12 }, () => ({ entry_id: e.id, csr: createCsr({ privateKey: generateKeyPair().privateKey }) }));
    const akiOf = (r: Results): string[] => r.results.map((x) => {
      expect(x.status.code, x.status.message).toBe(0);
      return parseCertificate((x.svid?.cert_chain as Buffer[])[0] as Buffer).authorityKeyId?.toString('hex') ?? '';
    });
    const oldId = ca.authorityState('x509').active?.id;
    expect(new Set(akiOf(await sign(params())))).toEqual(new Set([oldId]));
    await ca.prepareAuthority('x509');
    const newId = (await ca.activateAuthority('x509')).id;
    expect(newId).not.toBe(oldId);
    const after = await sign(params());
    expect(new Set(akiOf(after))).toEqual(new Set([newId]));
    for (const r of after.results) verifyX509Svid(r.svid?.cert_chain as Buffer[], ca.getBundle());
  });

  it('refuses a banned agent on the next call', async () => {
    const e = await createEntry('/batch/before-ban');
    const csr = createCsr({ privateKey: generateKeyPair().privateKey });
    expect((await sign([{ entry_id: e.id, csr }])).results[0]?.status.code).toBe(0);
    await unaryCall(admin.Agent, 'BanAgent', { id: agentId });
    const err = await sign([{ entry_id: e.id, csr }]).then(
      () => undefined,
      (x: ServiceError) => x,
    );
    expect(err?.code).toBe(status.PERMISSION_DENIED);
  });
});
