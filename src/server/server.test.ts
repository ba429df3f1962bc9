import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinTokenAttestor } from '../attestors/node/join_token/join_token.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { TrustDomain } from '../spiffe/id.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireBundle, WireEntry, WireX509Svid } from './messages.js';
import { MayflyServer } from './server.js';
import { startTestServer } from './testing.js';

const TD = 'example.org';
const td = TrustDomain.parse(TD);

let dir: string;
let ds: LevelDatastore;
let ca: ServerCa;
let server: MayflyServer;
let admin: ServerApiClients;
/** Seconds the server's clock runs ahead of the real one (to make SVIDs look expired). */
let skewSeconds = 0;
const opened: ServerApiClients[] = [];

function track(c: ServerApiClients): ServerApiClients {
  opened.push(c);
  return c;
}

function roots(): Buffer[] {
  return [...ca.getBundle().x509Authorities];
}

function anonymous(): ServerApiClients {
  return track(tcpClients({ address: `127.0.0.1:${server.port}`, trustDomain: TD, bundleRoots: roots() }));
}

function withSvid(certChain: Buffer[], privateKey: KeyObject): ServerApiClients {
  return track(tcpClients({ address: `127.0.0.1:${server.port}`, trustDomain: TD, bundleRoots: roots(), svid: { certChain, privateKey } }));
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
  svid: WireX509Svid;
  key: KeyObject;
  clients: ServerApiClients;
}

async function newToken(ttl = 600, agentId = ''): Promise<string> {
  const t = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl, agent_id: agentId });
  return t.value;
}

async function attest(token?: string): Promise<Agent> {
  const tok = token ?? (await newToken());
  const key = generateKeyPair('ec-p256');
  const res = await unaryCall<{ svid: WireX509Svid; bundle: WireBundle }>(anonymous().Agent, 'AttestAgent', {
    attestation_data: { type: 'join_token', payload: Buffer.from(tok) },
    csr: createCsr({ privateKey: key.privateKey }),
  });
  return { id: res.svid.spiffe_id, svid: res.svid, key: key.privateKey, clients: withSvid(res.svid.cert_chain, key.privateKey) };
}

async function createEntries(entries: Partial<WireEntry>[], via: ServerApiClients = admin) {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry | null }[] }>(via.Entry, 'BatchCreateEntry', { entries });
  return res.results;
}

async function createEntry(e: Partial<WireEntry>): Promise<WireEntry> {
  const [r] = await createEntries([e]);
  expect(r?.status.code, r?.status.message).toBe(0);
  return r?.entry as WireEntry;
}

function csr(opts: Parameters<typeof createCsr>[0] = { privateKey: generateKeyPair().privateKey }): Buffer {
  return createCsr(opts);
}

async function newX509(a: Agent, entryId: string, req = csr()) {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; svid: WireX509Svid | null }[] }>(a.clients.SVID, 'BatchNewX509SVID', {
    params: [{ entry_id: entryId, csr: req }],
  });
  return res.results[0] as { status: { code: number; message: string }; svid: WireX509Svid | null };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-server-'));
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
    drainMs: 500,
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

describe('admin socket', () => {
  it('is a socket with mode 0770 and serves entry CRUD with revisions', async () => {
    const st = statSync(server.adminSocketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o770);

    const before = (await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count;
    const e = await createEntry({ spiffe_id: `spiffe://${TD}/crud`, parent_id: `spiffe://${TD}/spire/agent/x`, selectors: [{ type: 'unix', value: 'uid:1' }] });
    expect(e.id).not.toBe('');
    expect(e.revision).toBe(0);
    const got = await unaryCall<WireEntry>(admin.Entry, 'GetEntry', { id: e.id });
    expect(got.spiffe_id).toBe(`spiffe://${TD}/crud`);
    const list = await unaryCall<{ entries: WireEntry[] }>(admin.Entry, 'ListEntries', { filter: { by_spiffe_id: `spiffe://${TD}/crud` } });
    expect(list.entries.map((x) => x.id)).toEqual([e.id]);
    const bySel = await unaryCall<{ entries: WireEntry[] }>(admin.Entry, 'ListEntries', {
      filter: { by_selectors: { selectors: [{ type: 'unix', value: 'uid:1' }], match: 'MATCH_EXACT' } },
    });
    expect(bySel.entries.map((x) => x.id)).toContain(e.id);

    const upd = await unaryCall<{ results: { status: { code: number }; entry: WireEntry }[] }>(admin.Entry, 'BatchUpdateEntry', {
      entries: [{ ...got, hint: 'v2', revision: 0 }],
    });
    expect(upd.results[0]?.status.code).toBe(0);
    expect(upd.results[0]?.entry.revision).toBe(1);
    const stale = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchUpdateEntry', { entries: [{ ...got, hint: 'v3', revision: 0 }] });
    expect(stale.results[0]?.status.code).toBe(status.FAILED_PRECONDITION);

    expect((await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count).toBe(before + 1);
    const del = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchDeleteEntry', { ids: [e.id, e.id] });
    expect(del.results.map((r) => r.status.code)).toEqual([0, status.NOT_FOUND]);
    expect(await codeOf(unaryCall(admin.Entry, 'GetEntry', { id: e.id }))).toBe(status.NOT_FOUND);
  });

  it('refuses agent-only RPCs', async () => {
    expect(await codeOf(unaryCall(admin.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(admin.Agent, 'RenewAgent', { csr: csr() }))).toBe(status.PERMISSION_DENIED);
  });

  it('answers health, bundle and local authority state', async () => {
    expect((await unaryCall<{ status: string }>(admin.Health, 'Check', {})).status).toBe('SERVING');
    const b = await unaryCall<WireBundle>(anonymous().Bundle, 'GetBundle', {});
    expect(b.trust_domain).toBe(TD);
    expect(b.x509_authorities.map((x) => x.toString('hex'))).toEqual(roots().map((x) => x.toString('hex')));
    const st = await unaryCall<{ active: { authority_id: string } | null }>(admin.LocalAuthority, 'GetX509AuthorityState', {});
    expect(st.active?.authority_id).toMatch(/^[0-9a-f]+$/);
    expect(await codeOf(unaryCall(admin.LocalAuthority, 'TaintX509Authority', { authority_id: 'nope' }))).not.toBe(status.OK);
  });
});

describe('input bounds', () => {
  it('rejects malformed SPIFFE IDs and selectors with INVALID_ARGUMENT and stores nothing', async () => {
    const before = (await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count;
    const parent = `spiffe://${TD}/spire/agent/x`;
    const results = await createEntries([
      { spiffe_id: `spiffe://${TD}/a/%2e%2e/admin`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:1' }] },
      { spiffe_id: `spiffe://other.org/w`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:1' }] },
      { spiffe_id: `spiffe://${TD}/w`, parent_id: parent, selectors: [{ type: 'Unix', value: 'uid:1' }] },
      { spiffe_id: `spiffe://${TD}/w`, parent_id: parent, selectors: [{ type: 'unix', value: 'a\nb' }] },
      { spiffe_id: `spiffe://${TD}/w`, parent_id: parent, selectors: [] },
    ]);
    expect(results.map((r) => r.status.code)).toEqual(Array(5).fill(status.INVALID_ARGUMENT));
    expect(await codeOf(unaryCall(admin.Entry, 'ListEntries', { filter: { by_parent_id: 'spiffe://EXAMPLE.org/x' } }))).toBe(status.INVALID_ARGUMENT);
    expect(
      await codeOf(unaryCall(admin.Entry, 'ListEntries', { filter: { by_selectors: { selectors: [{ type: '', value: 'x' }], match: 'MATCH_ANY' } } })),
    ).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(unaryCall(admin.Agent, 'GetAgent', { id: 'not a spiffe id' }))).toBe(status.INVALID_ARGUMENT);
    expect((await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count).toBe(before);
  });

  it('refuses oversized entries, batches and messages, and stores none of them', async () => {
    const before = (await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count;
    const parent = `spiffe://${TD}/spire/agent/x`;
    const many = Array.from({ length: 10_000 }, (_, i) => ({ type: 'unix', value: `uid:${i}` }));
    const [r1] = await createEntries([{ spiffe_id: `spiffe://${TD}/big`, parent_id: parent, selectors: many }]);
    expect(r1?.status.code).toBe(status.INVALID_ARGUMENT);
    const [r2] = await createEntries([{ spiffe_id: `spiffe://${TD}/big`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:1' }], hint: 'x'.repeat(1024 * 1024) }]);
    expect(r2?.status.code).toBe(status.INVALID_ARGUMENT);
    const [r3] = await createEntries([{ spiffe_id: `spiffe://${TD}/big`, parent_id: parent, selectors: [{ type: 'unix', value: 'v'.repeat(1024 * 1024) }] }]);
    expect(r3?.status.code).toBe(status.INVALID_ARGUMENT);
    // Over the 4 MiB receive limit: refused by gRPC before any handler runs.
    const huge = createEntries([{ spiffe_id: `spiffe://${TD}/big`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:1' }], hint: 'x'.repeat(5 * 1024 * 1024) }]);
    expect(await codeOf(huge)).toBe(status.RESOURCE_EXHAUSTED);
    const batch = Array.from({ length: 501 }, (_, i) => ({ spiffe_id: `spiffe://${TD}/b${i}`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:1' }] }));
    expect(await codeOf(createEntries(batch))).toBe(status.RESOURCE_EXHAUSTED);
    expect((await unaryCall<{ count: number }>(admin.Entry, 'CountEntries', {})).count).toBe(before);
  });

  it('bounds page sizes and pages through entries', async () => {
    expect(await codeOf(unaryCall(admin.Entry, 'ListEntries', { page_size: 1001 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(unaryCall(admin.Entry, 'ListEntries', { page_size: -1 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(unaryCall(admin.Agent, 'ListAgents', { page_size: 5000 }))).toBe(status.INVALID_ARGUMENT);
    const parent = `spiffe://${TD}/spire/agent/pager`;
    await createEntries(Array.from({ length: 5 }, (_, i) => ({ spiffe_id: `spiffe://${TD}/p${i}`, parent_id: parent, selectors: [{ type: 'unix', value: 'uid:1' }] })));
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await unaryCall<{ entries: WireEntry[]; next_page_token: string }>(admin.Entry, 'ListEntries', { filter: { by_parent_id: parent }, page_size: 2, page_token: token });
      expect(page.entries.length).toBeLessThanOrEqual(2);
      seen.push(...page.entries.map((e) => e.spiffe_id));
      token = page.next_page_token;
      pages++;
    } while (token !== '' && pages < 10);
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `spiffe://${TD}/p${i}`));
    expect(pages).toBeGreaterThanOrEqual(3);
  });
});

describe('agent attestation with a join token over mTLS', () => {
  it('issues an agent SVID whose ID does not contain the token, and records the agent', async () => {
    const token = await newToken();
    const a = await attest(token);
    expect(a.id).toMatch(new RegExp(`^spiffe://${TD.replace('.', '\\.')}/spire/agent/join_token/[0-9a-f-]{36}$`));
    expect(a.id).not.toContain(token);
    const leaf = parseCertificate(a.svid.cert_chain[0] as Buffer);
    expect(leaf.uriSans).toEqual([a.id]);
    expect(verifyX509Svid(a.svid.cert_chain, { trustDomain: td, x509Authorities: roots() }).spiffeId.toString()).toBe(a.id);
    const rec = await ds.getAgent(a.id);
    expect(rec?.serialNumber).toBe(leaf.serialHex);
    expect(rec?.attestationType).toBe('join_token');
    expect(JSON.stringify(rec)).not.toContain(token);
    // The agent SVID works for agent RPCs.
    const jwtEntry = await createEntry({ spiffe_id: `spiffe://${TD}/jwt-wl`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:7' }] });
    const jwt = await unaryCall<{ svid: { token: string; spiffe_id: string } }>(a.clients.SVID, 'NewJWTSVID', { entry_id: jwtEntry.id, audience: ['db'] });
    expect(jwt.svid.spiffe_id).toBe(`spiffe://${TD}/jwt-wl`);
    expect(jwt.svid.token.split('.')).toHaveLength(3);
  });

  it('rejects a replayed token, and of 20 concurrent uses exactly one wins', async () => {
    const token = await newToken();
    await attest(token);
    expect(await codeOf(attest(token))).toBe(status.PERMISSION_DENIED);
    const shared = await newToken();
    const codes = await Promise.all(Array.from({ length: 20 }, () => codeOf(attest(shared))));
    expect(codes.filter((c) => c === status.OK)).toHaveLength(1);
    expect(codes.filter((c) => c === status.PERMISSION_DENIED)).toHaveLength(19);
  });

  it('refuses unknown tokens, unknown attestors and a bad CSR without burning the token', async () => {
    expect(await codeOf(attest('no-such-token'))).toBe(status.PERMISSION_DENIED);
    const token = await newToken();
    const bad = unaryCall(anonymous().Agent, 'AttestAgent', {
      attestation_data: { type: 'join_token', payload: Buffer.from(token) },
      csr: csr({ privateKey: generateKeyPair().privateKey, corruptSignature: true }),
    });
    expect(await codeOf(bad)).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(unaryCall(anonymous().Agent, 'AttestAgent', { attestation_data: { type: 'aws_iid', payload: Buffer.from('x') }, csr: csr() }))).toBe(status.INVALID_ARGUMENT);
    // The token survived the bad CSR.
    await attest(token);
  });

  it('renews an agent SVID; the superseded SVID is refused', async () => {
    const a = await attest();
    const key = generateKeyPair();
    const res = await unaryCall<{ svid: WireX509Svid }>(a.clients.Agent, 'RenewAgent', { csr: createCsr({ privateKey: key.privateKey }) });
    expect(res.svid.spiffe_id).toBe(a.id);
    const renewed = withSvid(res.svid.cert_chain, key.privateKey);
    expect((await unaryCall<{ results: unknown[] }>(renewed.SVID, 'BatchNewX509SVID', { params: [] })).results).toEqual([]);
    expect(await codeOf(unaryCall(a.clients.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.PERMISSION_DENIED);
  });
});

describe('agent standing', () => {
  it('a banned agent gets nothing from any RPC', async () => {
    const a = await attest();
    const e = await createEntry({ spiffe_id: `spiffe://${TD}/banned-wl`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:1' }] });
    expect((await newX509(a, e.id)).status.code).toBe(0);
    await unaryCall(admin.Agent, 'BanAgent', { id: a.id });
    expect(await codeOf(unaryCall(a.clients.SVID, 'BatchNewX509SVID', { params: [{ entry_id: e.id, csr: csr() }] }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(a.clients.SVID, 'NewJWTSVID', { entry_id: e.id, audience: ['x'] }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(a.clients.Agent, 'RenewAgent', { csr: csr() }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(a.clients.Entry, 'ListEntries', {}))).toBe(status.PERMISSION_DENIED);
    const stream = a.clients.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<unknown> };
    const s = stream.SubscribeAuthorizedEntries({});
    const code = await new Promise<number>((resolve) => {
      s.on('data', () => undefined);
      s.on('error', (err: ServiceError) => resolve(err.code));
      s.on('end', () => resolve(status.OK));
    });
    expect(code).toBe(status.PERMISSION_DENIED);
    expect((await ds.getAgent(a.id))?.banned).toBe(true);
  });

  it('an evicted agent is UNAUTHENTICATED until it attests again with a new token', async () => {
    const a = await attest();
    await unaryCall(admin.Agent, 'DeleteAgent', { id: a.id });
    expect(await codeOf(unaryCall(a.clients.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.UNAUTHENTICATED);
    const again = await attest();
    expect(again.id).not.toBe(a.id);
    expect(await codeOf(unaryCall(again.clients.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.OK);
  });

  it('an agent SVID the server clock sees as expired is UNAUTHENTICATED', async () => {
    const a = await attest();
    skewSeconds = 2 * 3600;
    try {
      expect(await codeOf(unaryCall(a.clients.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.UNAUTHENTICATED);
    } finally {
      skewSeconds = 0;
    }
    expect(await codeOf(unaryCall(a.clients.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.OK);
  });

  it('a certificate from another CA is UNAUTHENTICATED', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const otherCa = new ServerCa({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
    await otherCa.init();
    const forged = otherCa.signX509Svid({ spiffeId: `spiffe://${TD}/spire/agent/join_token/x`, publicKey: privateKey }).certificates;
    const c = withSvid(forged, privateKey);
    expect(await codeOf(unaryCall(c.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.UNAUTHENTICATED);
  });
});

describe('signing for agents', () => {
  it('only entries authorised for the calling agent; identity from the entry, never from the CSR', async () => {
    const a = await attest();
    const b = await attest();
    const mine = await createEntry({ spiffe_id: `spiffe://${TD}/mine`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:1' }], dns_names: ['mine.local'], x509_svid_ttl: 600 });
    const theirs = await createEntry({ spiffe_id: `spiffe://${TD}/theirs`, parent_id: b.id, selectors: [{ type: 'unix', value: 'uid:1' }] });
    const nested = await createEntry({ spiffe_id: `spiffe://${TD}/nested`, parent_id: `spiffe://${TD}/mine`, selectors: [{ type: 'unix', value: 'uid:2' }] });

    expect((await newX509(a, theirs.id)).status.code).toBe(status.PERMISSION_DENIED);
    expect((await newX509(a, 'no-such-entry')).status.code).toBe(status.PERMISSION_DENIED);
    expect((await newX509(a, nested.id)).status.code).toBe(0);

    const leafKey = generateKeyPair();
    const hostile = createCsr({ privateKey: leafKey.privateKey, uri: `spiffe://${TD}/admin`, dnsNames: ['evil.example'], requestCa: true });
    const r = await newX509(a, mine.id, hostile);
    expect(r.status.code).toBe(0);
    const chain = r.svid?.cert_chain as Buffer[];
    const leaf = parseCertificate(chain[0] as Buffer);
    expect(leaf.uriSans).toEqual([`spiffe://${TD}/mine`]);
    expect(leaf.dnsSans).toEqual(['mine.local']);
    expect(leaf.isCA).toBe(false);
    expect(leaf.keyUsage?.keyCertSign).toBe(false);
    expect(Math.round((leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 1000)).toBeLessThanOrEqual(610);
    expect(verifyX509Svid(chain, { trustDomain: td, x509Authorities: roots() }).spiffeId.toString()).toBe(`spiffe://${TD}/mine`);
    expect(await codeOf(unaryCall(a.clients.SVID, 'NewJWTSVID', { entry_id: theirs.id, audience: ['x'] }))).toBe(status.PERMISSION_DENIED);
  });

  it('rejects weak keys and CSRs without proof of possession', async () => {
    const a = await attest();
    const e = await createEntry({ spiffe_id: `spiffe://${TD}/keys`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:1' }] });
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect((await newX509(a, e.id, createCsr({ privateKey: weak }))).status.code).toBe(status.INVALID_ARGUMENT);
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    expect((await newX509(a, e.id, createCsr({ privateKey: p521 }))).status.code).toBe(status.INVALID_ARGUMENT);
    expect((await newX509(a, e.id, createCsr({ privateKey: generateKeyPair().privateKey, corruptSignature: true }))).status.code).toBe(status.INVALID_ARGUMENT);
    expect((await newX509(a, e.id, Buffer.from('not a csr'))).status.code).toBe(status.INVALID_ARGUMENT);
    const rsa = generateKeyPair('rsa-2048').privateKey;
    expect((await newX509(a, e.id, createCsr({ privateKey: rsa }))).status.code).toBe(0);
    expect(await codeOf(unaryCall(a.clients.SVID, 'BatchNewX509SVID', { params: Array.from({ length: 501 }, () => ({ entry_id: e.id, csr: Buffer.alloc(1) })) }))).toBe(
      status.RESOURCE_EXHAUSTED,
    );
  });

  it('node-alias entries made with CreateJoinToken(agent_id) authorise their children', async () => {
    const alias = `spiffe://${TD}/cluster/blue`;
    const token = await newToken(600, alias);
    const a = await attest(token);
    const child = await createEntry({ spiffe_id: `spiffe://${TD}/blue-wl`, parent_id: alias, selectors: [{ type: 'unix', value: 'uid:5' }] });
    expect((await newX509(a, child.id)).status.code).toBe(0);
    const other = await attest();
    expect((await newX509(other, child.id)).status.code).toBe(status.PERMISSION_DENIED);
  });
});

describe('admin rights over TCP', () => {
  it('needs an SVID of an admin entry; other SVIDs are refused', async () => {
    const k1 = generateKeyPair();
    const minted = await unaryCall<{ svid: WireX509Svid }>(admin.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: k1.privateKey }), spiffe_id: `spiffe://${TD}/ops`, ttl: 300 });
    const ops = withSvid(minted.svid.cert_chain, k1.privateKey);
    expect(await codeOf(unaryCall(ops.Entry, 'CountEntries', {}))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(anonymous().Entry, 'CountEntries', {}))).toBe(status.UNAUTHENTICATED);
    const a = await attest();
    expect(await codeOf(unaryCall(a.clients.Entry, 'CountEntries', {}))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(a.clients.Agent, 'CreateJoinToken', { ttl: 60 }))).toBe(status.PERMISSION_DENIED);
    // A workload SVID is not an agent either.
    expect(await codeOf(unaryCall(ops.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.PERMISSION_DENIED);

    await createEntry({ spiffe_id: `spiffe://${TD}/ops`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:0' }], admin: true });
    expect(await codeOf(unaryCall(ops.Entry, 'CountEntries', {}))).toBe(status.OK);
    // Federation relationships are managed on the admin socket only, even by admins.
    expect(await codeOf(unaryCall(ops.TrustDomain, 'ListFederationRelationships', {}))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(unaryCall(admin.TrustDomain, 'ListFederationRelationships', {}))).toBe(status.OK);
  });

  it('manages federated bundles', async () => {
    const other = new ServerCa({ trustDomain: 'partner.org', keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
    await other.init();
    const wire = { trust_domain: 'partner.org', x509_authorities: [...other.getBundle().x509Authorities], jwt_authorities: [], refresh_hint: 60, sequence_number: 3 };
    const set = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Bundle, 'BatchSetFederatedBundle', {
      bundles: [wire, { ...wire, trust_domain: TD }, { ...wire, trust_domain: 'bad.org', x509_authorities: [Buffer.from('junk')] }],
    });
    expect(set.results.map((r) => r.status.code)).toEqual([0, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT]);
    const got = await unaryCall<WireBundle>(admin.Bundle, 'GetFederatedBundle', { trust_domain: 'partner.org' });
    expect(got.x509_authorities[0]?.equals(wire.x509_authorities[0] as Buffer)).toBe(true);
    const list = await unaryCall<{ bundles: WireBundle[] }>(admin.Bundle, 'ListFederatedBundles', {});
    expect(list.bundles.map((b) => b.trust_domain)).toEqual(['partner.org']);
    const del = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Bundle, 'BatchDeleteFederatedBundle', { trust_domains: ['partner.org', 'partner.org'] });
    expect(del.results.map((r) => r.status.code)).toEqual([0, status.NOT_FOUND]);
  });
});

describe('authorised-entry push stream', () => {
  it('delivers an entry created after subscribing, then ends with PERMISSION_DENIED on ban', async () => {
    const a = await attest();
    const sync = a.clients.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<{ entries: WireEntry[]; sequence: number; bundle: WireBundle }> };
    const s = sync.SubscribeAuthorizedEntries({});
    const updates: { entries: WireEntry[]; sequence: number; bundle: WireBundle }[] = [];
    const waiters: (() => void)[] = [];
    s.on('data', (u) => {
      updates.push(u);
      for (const w of waiters.splice(0)) w();
    });
    const ended = new Promise<number>((resolve) => {
      s.on('error', (err: ServiceError) => resolve(err.code));
      s.on('end', () => resolve(status.OK));
    });
    const next = async (pred: () => boolean): Promise<void> => {
      while (!pred()) await new Promise<void>((r) => waiters.push(r));
    };
    await next(() => updates.length >= 1);
    expect(updates[0]?.entries).toEqual([]);
    expect(updates[0]?.bundle.trust_domain).toBe(TD);

    const e = await createEntry({ spiffe_id: `spiffe://${TD}/pushed`, parent_id: a.id, selectors: [{ type: 'unix', value: 'uid:9' }], federates_with: [] });
    await next(() => updates.some((u) => u.entries.some((x) => x.id === e.id)));
    const last = updates[updates.length - 1];
    expect(last?.entries.map((x) => x.spiffe_id)).toEqual([`spiffe://${TD}/pushed`]);
    expect(last?.sequence).toBe(updates.length);

    // A change elsewhere produces no message for this agent.
    const count = updates.length;
    await createEntry({ spiffe_id: `spiffe://${TD}/elsewhere`, parent_id: `spiffe://${TD}/spire/agent/nobody`, selectors: [{ type: 'unix', value: 'uid:9' }] });
    await unaryCall(admin.Entry, 'BatchDeleteEntry', { ids: [e.id] });
    await next(() => updates.length > count);
    expect(updates[count]?.entries).toEqual([]);

    await unaryCall(admin.Agent, 'BanAgent', { id: a.id });
    expect(await ended).toBe(status.PERMISSION_DENIED);
  });
});

describe('CA changes reach agents', () => {
  it('a prepared authority is pushed in the bundle on the stream', async () => {
    const a = await attest();
    const sync = a.clients.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<{ bundle: WireBundle }> };
    const s = sync.SubscribeAuthorizedEntries({});
    const bundles: WireBundle[] = [];
    let wake: (() => void) | undefined;
    s.on('data', (u) => {
      bundles.push(u.bundle);
      wake?.();
    });
    s.on('error', () => undefined);
    const until = async (pred: () => boolean): Promise<void> => {
      while (!pred()) await new Promise<void>((r) => (wake = r));
    };
    await until(() => bundles.length >= 1);
    const before = bundles[0]?.x509_authorities.length ?? 0;
    await unaryCall(admin.LocalAuthority, 'PrepareX509Authority', {});
    await until(() => (bundles[bundles.length - 1]?.x509_authorities.length ?? 0) > before);
    expect(bundles[bundles.length - 1]?.x509_authorities.length).toBe(before + 1);
    s.cancel();
  });
});

describe('a server on a data directory (LevelDB, disk CA keys: server/testing)', () => {
  it('serves from dataDir, and stop() ends streams with UNAVAILABLE and removes the socket', async () => {
    const own = mkdtempSync(join(tmpdir(), 'mayfly-own-'));
    const srv = await startTestServer({ trustDomain: 'own.test', dataDir: own, adminSocketPath: join(own, 'admin.sock'), bindAddress: '127.0.0.1', port: 0, drainMs: 500 });
    const adm = adminSocketClients(srv.adminSocketPath);
    const bundle = await unaryCall<WireBundle>(adm.Bundle, 'GetBundle', {});
    const token = (await unaryCall<{ value: string }>(adm.Agent, 'CreateJoinToken', { ttl: 60 })).value;
    const key = generateKeyPair();
    const anon = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: 'own.test', bundleRoots: bundle.x509_authorities });
    const res = await unaryCall<{ svid: WireX509Svid }>(anon.Agent, 'AttestAgent', {
      attestation_data: { type: 'join_token', payload: Buffer.from(token) },
      csr: createCsr({ privateKey: key.privateKey }),
    });
    const ag = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: 'own.test', bundleRoots: bundle.x509_authorities, svid: { certChain: res.svid.cert_chain, privateKey: key.privateKey } });
    // A client expecting another trust domain's server refuses this one.
    const wrong = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: 'other.test', bundleRoots: bundle.x509_authorities });
    expect(await codeOf(unaryCall(wrong.Health, 'Check', {}, { deadlineMs: 2000 }))).toBe(status.UNAVAILABLE);
    const s = (ag.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<unknown> }).SubscribeAuthorizedEntries({});
    const first = new Promise<void>((r) => s.once('data', () => r()));
    const ended = new Promise<number>((resolve) => {
      s.on('error', (err: ServiceError) => resolve(err.code));
      s.on('end', () => resolve(status.OK));
    });
    await first;
    await srv.stop();
    expect(await ended).toBe(status.UNAVAILABLE);
    expect(() => statSync(srv.adminSocketPath)).toThrow();
    for (const c of [adm, anon, ag, wrong]) c.close();
    // The state survived: a restarted server keeps the same trust bundle.
    const again = await startTestServer({ trustDomain: 'own.test', dataDir: own, adminSocketPath: join(own, 'admin.sock'), bindAddress: '127.0.0.1', port: 0, drainMs: 500 });
    const adm2 = adminSocketClients(again.adminSocketPath);
    const b2 = await unaryCall<WireBundle>(adm2.Bundle, 'GetBundle', {});
    expect(b2.x509_authorities[0]?.equals(bundle.x509_authorities[0] as Buffer)).toBe(true);
    expect((await unaryCall<{ count: number }>(adm2.Agent, 'CountAgents', {})).count).toBe(1);
    adm2.close();
    await again.stop();
    rmSync(own, { recursive: true, force: true });
  });
});
