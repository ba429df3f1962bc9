/**
 * Regression tests for review findings in the server API: the server's own ID in the entry
 * graph, reserved SPIFFE IDs in entries, push streams outliving their agent SVID, stream
 * caps per agent, concurrent renewals, and a second server taking over the admin socket.
 * Real LevelDB, real CA, real TLS; the server's clock is skewable to make SVIDs expire.
 */
import { spawn } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinTokenAttestor, joinTokenSelector } from '../attestors/node/join_token/join_token.js';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { validateEntry } from '../registration/entry.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireEntry, WireX509Svid } from './messages.js';
import { MayflyServer } from './server.js';

const TD = 'hardening.test';
const SERVER_ID = `spiffe://${TD}/spire/server`;
const MAX_STREAMS = 2;

let dir: string;
let ds: LevelDatastore;
let ca: ServerCa;
let server: MayflyServer;
let admin: ServerApiClients;
/** Seconds the server's clock runs ahead of the real one. */
let skewSeconds = 0;
const opened: ServerApiClients[] = [];

function track(c: ServerApiClients): ServerApiClients {
  opened.push(c);
  return c;
}

function clientsFor(svid?: { certChain: Buffer[]; privateKey: KeyObject }): ServerApiClients {
  const roots = [...ca.getBundle().x509Authorities];
  return track(tcpClients({ address: `127.0.0.1:${server.port}`, trustDomain: TD, bundleRoots: roots, ...(svid ? { svid } : {}) }));
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return status.OK;
  } catch (err) {
    return (err as ServiceError).code;
  }
}

interface Agent {
  id: string;
  clients: ServerApiClients;
}

async function newToken(agentId = ''): Promise<string> {
  return (await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600, agent_id: agentId })).value;
}

async function attest(token?: string): Promise<Agent> {
  const tok = token ?? (await newToken());
  const key = generateKeyPair('ec-p256');
  const res = await unaryCall<{ svid: WireX509Svid }>(clientsFor().Agent, 'AttestAgent', {
    attestation_data: { type: 'join_token', payload: Buffer.from(tok) },
    csr: createCsr({ privateKey: key.privateKey }),
  });
  return { id: res.svid.spiffe_id, clients: clientsFor({ certChain: res.svid.cert_chain, privateKey: key.privateKey }) };
}

type ItemResult = { status: { code: number; message: string } };

async function createEntries(entries: Partial<WireEntry>[]): Promise<(ItemResult & { entry: WireEntry | null })[]> {
  return (await unaryCall<{ results: (ItemResult & { entry: WireEntry | null })[] }>(admin.Entry, 'BatchCreateEntry', { entries })).results;
}

async function createEntry(e: Partial<WireEntry>): Promise<WireEntry> {
  const [r] = await createEntries([e]);
  expect(r?.status.code, r?.status.message).toBe(0);
  return r?.entry as WireEntry;
}

async function newX509Code(a: Agent, entryId: string): Promise<number> {
  const res = await unaryCall<{ results: ItemResult[] }>(a.clients.SVID, 'BatchNewX509SVID', {
    params: [{ entry_id: entryId, csr: createCsr({ privateKey: generateKeyPair().privateKey }) }],
  });
  return res.results[0]?.status.code ?? -1;
}

interface Update {
  entries: WireEntry[];
  sequence: number;
}

/** An authorised-entry stream with its updates and how it ended. */
class Stream {
  readonly updates: Update[] = [];
  readonly ended: Promise<number>;
  #wake: (() => void)[] = [];
  #endCode: number | undefined;
  readonly #s: ClientReadableStream<Update>;

  constructor(c: ServerApiClients) {
    this.#s = (c.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<Update> }).SubscribeAuthorizedEntries({});
    this.#s.on('data', (u: Update) => {
      this.updates.push(u);
      this.#notify();
    });
    this.ended = new Promise<number>((resolve) => {
      const end = (code: number): void => {
        if (this.#endCode !== undefined) return;
        this.#endCode = code;
        resolve(code);
        this.#notify();
      };
      this.#s.on('error', (err: ServiceError) => end(err.code));
      this.#s.on('end', () => end(status.OK));
    });
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  /** Waits until `pred` holds or the stream ended; true when `pred` held. */
  async until(pred: () => boolean): Promise<boolean> {
    while (!pred()) {
      if (this.#endCode !== undefined) return false;
      await new Promise<void>((r) => this.#wake.push(r));
    }
    return true;
  }

  /** Waits for the first update; false when the stream ended first. */
  opened(): Promise<boolean> {
    return this.until(() => this.updates.length > 0);
  }

  has(entryId: string): boolean {
    return this.updates.some((u) => u.entries.some((e) => e.id === entryId));
  }

  cancel(): void {
    this.#s.cancel();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-hardening-'));
  ds = await openLevelDatastore({ path: join(dir, 'db') });
  ca = new ServerCa({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
  await ca.init();
  server = new MayflyServer({
    trustDomain: TD,
    dataDir: dir,
    adminSocketPath: join(dir, 'run', 'admin.sock'),
    bindAddress: '127.0.0.1',
    port: 0,
    datastore: ds,
    ca,
    attestors: [new JoinTokenAttestor({ datastore: ds })],
    now: () => new Date(Date.now() + skewSeconds * 1000),
    limits: { maxSyncStreamsPerAgent: MAX_STREAMS },
    drainMs: 500,
    csrWorkers: 0,
  });
  await server.start();
  admin = track(adminSocketClients(server.adminSocketPath));
});

afterAll(async () => {
  for (const c of opened) c.close();
  await server.stop();
  await ds.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the server ID in the entry graph', () => {
  it('is never followed as a parent: entries or aliases naming it do not hand out node-alias children', async () => {
    // The node alias `spiffe://td/cluster/red` and a workload under it belong to agent b only.
    const alias = `spiffe://${TD}/cluster/red`;
    const b = await attest(await newToken(alias));
    const child = await createEntry({ spiffe_id: `spiffe://${TD}/red-wl`, parent_id: alias, selectors: [{ type: 'unix', value: 'uid:7' }] });
    expect(await newX509Code(b, child.id)).toBe(0);

    // Agent a owns an entry named with the server's ID, and agent c belongs to an alias
    // named with it: both written straight to the datastore, as if stored before the API
    // refused them.
    const a = await attest();
    const serverNamed = await ds.createEntry(validateEntry({ spiffeId: SERVER_ID, parentId: a.id, selectors: [{ type: 'unix', value: 'uid:0' }] }, { trustDomain: TD }));
    const tokenC = await newToken();
    await ds.createEntry(validateEntry({ spiffeId: SERVER_ID, parentId: SERVER_ID, selectors: [joinTokenSelector(tokenC)] }, { trustDomain: TD }));
    const c = await attest(tokenC);
    server.hub.publish({ kind: 'entries' });

    expect(await newX509Code(a, child.id)).toBe(status.PERMISSION_DENIED);
    expect(await newX509Code(c, child.id)).toBe(status.PERMISSION_DENIED);
    // Nor may the agent hold the server's identity itself.
    expect(await newX509Code(a, serverNamed.entryId)).toBe(status.PERMISSION_DENIED);
    expect(await newX509Code(b, child.id)).toBe(0);

    const s = new Stream(a.clients);
    expect(await s.opened()).toBe(true);
    expect(s.updates[0]?.entries.map((e) => e.spiffe_id)).toEqual([]);
    s.cancel();
  });
});

describe('reserved SPIFFE IDs', () => {
  it('entries and node aliases may not take the server ID or a /spire path; ordinary aliases still work', async () => {
    const before = (await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count;
    const parent = `spiffe://${TD}/spire/agent/join_token/x`;
    const sel = [{ type: 'unix', value: 'uid:1' }];
    const refused = await createEntries([
      { spiffe_id: SERVER_ID, parent_id: parent, selectors: sel },
      { spiffe_id: `spiffe://${TD}/spire/agent/join_token/other`, parent_id: parent, selectors: sel },
      { spiffe_id: `spiffe://${TD}/spire/agent`, parent_id: parent, selectors: sel },
      { spiffe_id: `spiffe://${TD}/spire`, parent_id: SERVER_ID, selectors: sel },
    ]);
    expect(refused.map((r) => r.status.code)).toEqual(Array(4).fill(status.INVALID_ARGUMENT));
    for (const r of refused) expect(r.status.message).toMatch(/reserved/);
    expect((await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count).toBe(before);

    // An operator-chosen alias under the server, and a workload ID that merely contains "spire".
    const alias = await createEntry({ spiffe_id: `spiffe://${TD}/host1`, parent_id: SERVER_ID, selectors: [{ type: 'join_token', value: 'sha256:00' }] });
    const wl = await createEntry({ spiffe_id: `spiffe://${TD}/spire-ui/spire`, parent_id: parent, selectors: sel });
    const upd = await unaryCall<{ results: ItemResult[] }>(admin.Entry, 'BatchUpdateEntry', {
      entries: [{ ...wl, spiffe_id: `spiffe://${TD}/spire/agent/join_token/x`, revision: 0 }],
    });
    expect(upd.results[0]?.status.code).toBe(status.INVALID_ARGUMENT);
    expect(upd.results[0]?.status.message).toMatch(/reserved/);

    expect(await codeOf(unaryCall(admin.Agent, 'CreateJoinToken', { ttl: 60, agent_id: SERVER_ID }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(unaryCall(admin.Agent, 'CreateJoinToken', { ttl: 60, agent_id: `spiffe://${TD}/spire/agent/join_token/x` }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(unaryCall(admin.Agent, 'CreateJoinToken', { ttl: 60, agent_id: `spiffe://${TD}/host2` }))).toBe(status.OK);
    await unaryCall(admin.Entry, 'BatchDeleteEntry', { ids: [alias.id, wl.id] });
  });
});

describe('push streams follow their agent SVID', () => {
  it('a stream opened with an SVID that a renewal superseded ends with PERMISSION_DENIED; the new SVID subscribes', async () => {
    const a = await attest();
    const s = new Stream(a.clients);
    expect(await s.opened()).toBe(true);
    const key = generateKeyPair();
    const renewed = await unaryCall<{ svid: WireX509Svid }>(a.clients.Agent, 'RenewAgent', { csr: createCsr({ privateKey: key.privateKey }) });
    const e = await createEntry({ spiffe_id: `spiffe://${TD}/after-renewal`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:3' }] });
    expect(await s.until(() => s.has(e.id))).toBe(false);
    expect(await s.ended).toBe(status.PERMISSION_DENIED);

    const fresh = new Stream(clientsFor({ certChain: renewed.svid.cert_chain, privateKey: key.privateKey }));
    expect(await fresh.until(() => fresh.has(e.id))).toBe(true);
    fresh.cancel();
  });

  it('a stream whose SVID has expired on the server clock ends with UNAUTHENTICATED at the next change', async () => {
    const a = await attest();
    const s = new Stream(a.clients);
    expect(await s.opened()).toBe(true);
    skewSeconds = 2 * 3600; // past the agent SVID's one-hour lifetime
    try {
      const e = await createEntry({ spiffe_id: `spiffe://${TD}/after-expiry`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:4' }] });
      expect(await s.until(() => s.has(e.id))).toBe(false);
      expect(await s.ended).toBe(status.UNAUTHENTICATED);
    } finally {
      skewSeconds = 0;
    }
  });

  it(`an agent holds at most ${MAX_STREAMS} streams (RESOURCE_EXHAUSTED beyond); closing one frees a slot`, async () => {
    const a = await attest();
    const streams = Array.from({ length: MAX_STREAMS }, () => new Stream(a.clients));
    for (const s of streams) expect(await s.opened()).toBe(true);
    const extra = new Stream(a.clients);
    expect(await extra.opened()).toBe(false);
    expect(await extra.ended).toBe(status.RESOURCE_EXHAUSTED);

    // Other agents are not affected.
    const b = await attest();
    const other = new Stream(b.clients);
    expect(await other.opened()).toBe(true);
    other.cancel();

    // The slot is freed once the server sees the cancellation (asynchronously).
    streams[0]?.cancel();
    let again: Stream | undefined;
    for (let attempt = 0; attempt < 50 && again === undefined; attempt++) {
      const s = new Stream(a.clients);
      if (await s.opened()) again = s;
      else {
        expect(await s.ended).toBe(status.RESOURCE_EXHAUSTED);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(again).toBeDefined();
    again?.cancel();
    for (const s of streams.slice(1)) s.cancel();
  });
});

describe('agent renewal', () => {
  it('concurrent RenewAgent calls: one wins and its SVID is the recorded one; the others are refused', async () => {
    const a = await attest();
    const keys = Array.from({ length: 4 }, () => generateKeyPair());
    const results = await Promise.allSettled(
      keys.map((k) => unaryCall<{ svid: WireX509Svid }>(a.clients.Agent, 'RenewAgent', { csr: createCsr({ privateKey: k.privateKey }) })),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ svid: r.value.svid, key: keys[i] as ReturnType<typeof generateKeyPair> }] : []));
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as ServiceError).code] : []));
    expect(won).toHaveLength(1);
    expect(lost).toEqual(Array(3).fill(status.PERMISSION_DENIED));
    const w = won[0] as (typeof won)[number];
    expect((await ds.getAgent(a.id))?.serialNumber).toBe(w.svid.serial_number);
    const c = clientsFor({ certChain: w.svid.cert_chain, privateKey: w.key.privateKey });
    expect(await codeOf(unaryCall(c.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.OK);
  });
});

describe('admin socket ownership', () => {
  it('a second server on the same admin socket path fails to start and leaves the first one serving', async () => {
    const second = new MayflyServer({
      trustDomain: TD,
      dataDir: dir,
      adminSocketPath: server.adminSocketPath,
      bindAddress: '127.0.0.1',
      port: 0,
      datastore: ds,
      ca,
      attestors: [new JoinTokenAttestor({ datastore: ds })],
      drainMs: 100,
      csrWorkers: 0,
    });
    await expect(second.start()).rejects.toThrow(`another server is already listening on ${server.adminSocketPath}`);
    await second.stop();
    expect(statSync(server.adminSocketPath).isSocket()).toBe(true);
    const fresh = track(adminSocketClients(server.adminSocketPath));
    expect((await unaryCall<{ status: string }>(fresh.Health, 'Check', {})).status).toBe('SERVING');
  });

  it('a stale socket file (its process gone) is replaced', async () => {
    const own = mkdtempSync(join(tmpdir(), 'mayfly-stale-'));
    const path = join(own, 'admin.sock');
    // A process that binds the path and is then killed leaves the socket file behind.
    const child = spawn(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", path], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(statSync(path).isSocket()).toBe(true);

    const srv = new MayflyServer({ trustDomain: TD, dataDir: own, adminSocketPath: path, bindAddress: '127.0.0.1', port: 0, datastore: ds, ca, attestors: [new JoinTokenAttestor({ datastore: ds })], drainMs: 100, csrWorkers: 0 });
    await srv.start();
    const c = adminSocketClients(path);
    expect((await unaryCall<{ status: string }>(c.Health, 'Check', {})).status).toBe('SERVING');
    c.close();
    await srv.stop();
    expect(() => statSync(path)).toThrow();
    rmSync(own, { recursive: true, force: true });
  });
});
