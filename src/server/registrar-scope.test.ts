/**
 * Scoped registrars (issue 11 item 2) against a real server over mTLS: two registrars (admin
 * SVIDs named in the scope map) who cannot see or touch each other's entries or agents, an
 * unscoped admin that still can, and the hostile cases: prefix tricks, updates moving an
 * entry across the scope's edge, mixed batches, privilege-widening entries, other admin RPCs.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireEntry, WireX509Svid } from './messages.js';
import type { RegistrarScope } from './registrar-scope.js';
import { idUnder, parentMatches } from './registrar-scope.js';
import { attestJoinTokenAgent, startTestServer, type TestServer } from './testing.js';

const TD = 'example.org';
const id = (p: string): string => `spiffe://${TD}${p}`;
const REG_A = id('/ci/team-a');
const REG_B = id('/ci/team-b');
const ROOT = id('/ci/root');

let srv: TestServer;
let local: ServerApiClients;
const scopes = new Map<string, RegistrarScope>();
const opened: ServerApiClients[] = [];
let a: ServerApiClients;
let b: ServerApiClients;
let root: ServerApiClients;

interface Result {
  status: { code: number; message: string };
  entry: WireEntry | null;
}

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
    return { code: status.OK, message: '' };
  } catch (err) {
    return { code: (err as ServiceError).code, message: (err as ServiceError).details };
  }
}

async function adminClientsFor(spiffeId: string): Promise<ServerApiClients> {
  const key = generateKeyPair();
  const minted = await unaryCall<{ svid: WireX509Svid }>(local.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: spiffeId, ttl: 600 });
  const c = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: [...srv.ca.getBundle().x509Authorities], svid: { certChain: minted.svid.cert_chain, privateKey: key.privateKey } });
  opened.push(c);
  return c;
}

function entry(spiffeId: string, parentId: string, owner: string, extra: Partial<WireEntry> = {}): WireEntry {
  return { spiffe_id: spiffeId, parent_id: parentId, selectors: [{ type: 'unix', value: `uid:${spiffeId.length}` }], owner, ...extra } as WireEntry;
}

async function create(c: ServerApiClients, ...entries: WireEntry[]): Promise<Result[]> {
  return (await unaryCall<{ results: Result[] }>(c.Entry, 'BatchCreateEntry', { entries })).results;
}

async function listIds(c: ServerApiClients): Promise<string[]> {
  const res = await unaryCall<{ entries: WireEntry[] }>(c.Entry, 'ListEntries', { page_size: 1000 });
  return res.entries.map((e) => e.spiffe_id).sort();
}

beforeAll(async () => {
  srv = await startTestServer({ keyManager: 'memory', registrars: scopes });
  local = adminSocketClients(srv.adminSocketPath);
  for (const r of [REG_A, REG_B, ROOT]) {
    const [res] = await create(local, entry(r, id('/nodes/ops'), 'platform', { admin: true }));
    expect(res?.status.code).toBe(0);
  }
  scopes.set(REG_A, { registrar: REG_A, spiffeIdPrefixes: [id('/team-a')], parentIds: [id('/nodes/a'), id('/spire/agent/join_token/*')], owners: ['team-a'] });
  scopes.set(REG_B, { registrar: REG_B, spiffeIdPrefixes: [id('/team-b')], parentIds: [id('/nodes/b')], owners: ['team-b'] });
  a = await adminClientsFor(REG_A);
  b = await adminClientsFor(REG_B);
  root = await adminClientsFor(ROOT);
});

afterAll(async () => {
  for (const c of opened) c.close();
  local?.close();
  await srv?.stop();
});

describe('prefix and parent matching', () => {
  it('matches by whole path segments, never by string prefix', () => {
    expect(idUnder(id('/team-a'), id('/team-a'))).toBe(true);
    expect(idUnder(id('/team-a/web'), id('/team-a'))).toBe(true);
    expect(idUnder(id('/team-ab'), id('/team-a'))).toBe(false);
    expect(idUnder(id('/team-ab/web'), id('/team-a'))).toBe(false);
    expect(idUnder(id('/Team-a/web'), id('/team-a'))).toBe(false);
    expect(parentMatches(id('/spire/agent/x/1'), id('/spire/agent/x/*'))).toBe(true);
    expect(parentMatches(id('/spire/agent/x'), id('/spire/agent/x/*'))).toBe(false);
    expect(parentMatches(id('/spire/agent/xy/1'), id('/spire/agent/x/*'))).toBe(false);
    expect(parentMatches(id('/nodes/a2'), id('/nodes/a'))).toBe(false);
  });
});

describe('two registrars', () => {
  it('each creates within its scope and neither sees, changes or deletes the other’s entries', async () => {
    const [ea] = await create(a, entry(id('/team-a/web'), id('/nodes/a'), 'team-a'));
    const [eb] = await create(b, entry(id('/team-b/db'), id('/nodes/b'), 'team-b'));
    expect(ea?.status.code).toBe(0);
    expect(eb?.status.code).toBe(0);
    const aId = ea!.entry!.id;
    const bId = eb!.entry!.id;

    expect(await listIds(a)).toEqual([id('/team-a/web')]);
    expect(await listIds(b)).toEqual([id('/team-b/db')]);
    expect((await unaryCall<{ count: number }>(a.Entry, 'CountEntries', {})).count).toBe(1);

    const get = await failure(unaryCall(b.Entry, 'GetEntry', { id: aId }));
    expect(get.code).toBe(status.PERMISSION_DENIED);
    expect(get.message).toContain(`registrar ${REG_B} is scoped`);
    expect(get.message).toContain(id('/team-b'));

    const upd = (await unaryCall<{ results: Result[] }>(b.Entry, 'BatchUpdateEntry', { entries: [{ ...ea!.entry!, owner: 'team-b' }] })).results;
    expect(upd[0]?.status.code).toBe(status.PERMISSION_DENIED);
    expect(upd[0]?.status.message).toContain('the stored entry');

    const del = (await unaryCall<{ results: { status: { code: number; message: string } }[] }>(b.Entry, 'BatchDeleteEntry', { ids: [aId] })).results;
    expect(del[0]?.status.code).toBe(status.PERMISSION_DENIED);
    expect(del[0]?.status.message).toContain('spiffe_id_prefixes');
    expect(await srv.datastore.getEntry(aId)).toBeDefined();

    // The unscoped admin is unchanged: it sees both, and may delete either.
    expect(await listIds(root)).toEqual(expect.arrayContaining([id('/team-a/web'), id('/team-b/db'), REG_A]));
    expect((await unaryCall<{ count: number }>(root.Entry, 'CountEntries', {})).count).toBe(await srv.datastore.countEntries());
    const okDel = (await unaryCall<{ results: { status: { code: number } }[] }>(a.Entry, 'BatchDeleteEntry', { ids: [aId] })).results;
    expect(okDel[0]?.status.code).toBe(0);
    const rootDel = (await unaryCall<{ results: { status: { code: number } }[] }>(root.Entry, 'BatchDeleteEntry', { ids: [bId] })).results;
    expect(rootDel[0]?.status.code).toBe(0);
  });

  it('refuses prefix tricks, foreign parents and owners, and privilege-widening entries', async () => {
    const results = await create(
      a,
      entry(id('/team-ab/web'), id('/nodes/a'), 'team-a'), // string prefix, not a segment
      entry(id('/team-a'), id('/nodes/a'), 'team-a'), // the prefix itself: in scope
      entry(id('/team-a/x'), id('/nodes/b'), 'team-a'), // B's node
      entry(id('/team-a/y'), id('/nodes/a2'), 'team-a'), // a parent that merely starts like A's
      entry(id('/team-a/z'), id('/nodes/a'), 'team-b'), // B's owner
      entry(id('/team-a/n'), id('/nodes/a'), ''), // no owner
      entry(id('/team-a/adm'), id('/nodes/a'), 'team-a', { admin: true }),
      entry(id('/team-a/ds'), id('/nodes/a'), 'team-a', { downstream: true }),
      entry(id('/spire/server'), id('/nodes/a'), 'team-a'), // reserved for everyone
      entry(`${id('/team-a')}/../team-b/x`, id('/nodes/a'), 'team-a'),
      entry(`${id('/team-a')}/`, id('/nodes/a'), 'team-a'),
      entry(`${id('/team-a')}/%2e%2e/team-b`, id('/nodes/a'), 'team-a'),
    );
    expect(results.map((r) => r.status.code)).toEqual([
      status.PERMISSION_DENIED,
      status.OK,
      status.PERMISSION_DENIED,
      status.PERMISSION_DENIED,
      status.PERMISSION_DENIED,
      status.PERMISSION_DENIED,
      status.PERMISSION_DENIED,
      status.PERMISSION_DENIED,
      status.INVALID_ARGUMENT,
      status.INVALID_ARGUMENT,
      status.INVALID_ARGUMENT,
      status.INVALID_ARGUMENT,
    ]);
    expect(results[0]?.status.message).toContain('under none of spiffe_id_prefixes');
    expect(results[2]?.status.message).toContain('matches none of parent_ids');
    expect(results[4]?.status.message).toContain('is none of owners');
    expect(results[5]?.status.message).toContain('has no owner');
    expect(results[6]?.status.message).toContain('admin entry');
    expect(results[7]?.status.message).toContain('downstream');
    for (const r of results.filter((x) => x.status.code === status.PERMISSION_DENIED)) expect(r.status.message).toContain(`registrar ${REG_A} is scoped`);
    expect(await listIds(a)).toEqual([id('/team-a')]);
  });

  it('an update must keep the entry in scope on both sides, at the revision checked', async () => {
    const [mine] = await create(a, entry(id('/team-a/move'), id('/nodes/a'), 'team-a'));
    const [theirs] = await create(b, entry(id('/team-b/move'), id('/nodes/b'), 'team-b'));
    const upd = async (c: ServerApiClients, e: WireEntry): Promise<Result> => (await unaryCall<{ results: Result[] }>(c.Entry, 'BatchUpdateEntry', { entries: [e] })).results[0]!;
    // Out: A's entry renamed into B's prefix, re-parented onto B's node, handed to B's owner.
    for (const change of [{ spiffe_id: id('/team-b/stolen') }, { parent_id: id('/nodes/b') }, { owner: 'team-b' }, { admin: true }]) {
      const r = await upd(a, { ...mine!.entry!, ...change });
      expect(r.status.code).toBe(status.PERMISSION_DENIED);
      expect(r.status.message).toContain('the updated entry');
    }
    // In: B's entry pulled into A's scope by A.
    const pulled = await upd(a, { ...theirs!.entry!, spiffe_id: id('/team-a/pulled'), parent_id: id('/nodes/a'), owner: 'team-a' });
    expect(pulled.status.code).toBe(status.PERMISSION_DENIED);
    expect(pulled.status.message).toContain('the stored entry');
    // A stale revision is refused even when both sides are in scope.
    const stale = await upd(a, { ...mine!.entry!, revision: (mine!.entry!.revision ?? 0) + 5, purpose: 'x' });
    expect(stale.status.code).toBe(status.FAILED_PRECONDITION);
    const ok = await upd(a, { ...mine!.entry!, purpose: 'still team A' });
    expect(ok.status.code).toBe(0);
    expect((await srv.datastore.getEntry(theirs!.entry!.id))?.spiffeId).toBe(id('/team-b/move'));
  });

  it('a mixed batch gets a status per item', async () => {
    const [keep] = await create(root, entry(id('/team-b/keep'), id('/nodes/b'), 'team-b'));
    const [gone] = await create(a, entry(id('/team-a/gone'), id('/nodes/a'), 'team-a'));
    const res = (await unaryCall<{ results: { status: { code: number; message: string } }[] }>(a.Entry, 'BatchDeleteEntry', { ids: [gone!.entry!.id, keep!.entry!.id, 'no-such-entry'] })).results;
    expect(res.map((r) => r.status.code)).toEqual([status.OK, status.PERMISSION_DENIED, status.NOT_FOUND]);
    expect(await srv.datastore.getEntry(keep!.entry!.id)).toBeDefined();
  });

  it('agents: listed, counted, banned and evicted only within parent_ids', async () => {
    const agent = await attestJoinTokenAgent({ port: srv.port, admin: local, trustDomain: TD, bundleRoots: [...srv.ca.getBundle().x509Authorities] });
    opened.push(agent.clients);
    const listed = async (c: ServerApiClients): Promise<string[]> => (await unaryCall<{ agents: { id: string }[] }>(c.Agent, 'ListAgents', {})).agents.map((x) => x.id);
    expect(await listed(a)).toContain(agent.agentId);
    expect(await listed(b)).toEqual([]);
    expect((await unaryCall<{ count: number }>(b.Agent, 'CountAgents', {})).count).toBe(0);
    expect((await unaryCall<{ count: number }>(a.Agent, 'CountAgents', {})).count).toBeGreaterThan(0);
    for (const m of ['GetAgent', 'BanAgent', 'DeleteAgent']) {
      const r = await failure(unaryCall(b.Agent, m, { id: agent.agentId }));
      expect(r.code).toBe(status.PERMISSION_DENIED);
      expect(r.message).toContain(`registrar ${REG_B} is scoped`);
    }
    expect((await srv.datastore.getAgent(agent.agentId))?.banned).toBe(false);
    expect((await failure(unaryCall(a.Agent, 'BanAgent', { id: agent.agentId }))).code).toBe(status.OK);
    expect((await srv.datastore.getAgent(agent.agentId))?.banned).toBe(true);
  });

  it('other admin RPCs are refused to a scoped registrar, naming the scope', async () => {
    const key = generateKeyPair();
    const calls: [ServerApiClients[keyof ServerApiClients], string, unknown][] = [
      [a.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: id('/team-a/minted'), ttl: 60 }],
      [a.SVID, 'MintJWTSVID', { spiffe_id: id('/team-a/minted'), audience: ['x'], ttl: 60 }],
      [a.Agent, 'CreateJoinToken', { ttl: 60 }],
      [a.Agent, 'PurgeExpiredAgents', {}],
      [a.Inventory, 'GetInventory', {}],
    ];
    for (const [client, method, req] of calls) {
      const r = await failure(unaryCall(client as never, method, req));
      expect(r.code, method).toBe(status.PERMISSION_DENIED);
      expect(r.message).toContain(`registrar ${REG_A} is scoped`);
    }
    // The unscoped admin over TCP is unchanged.
    expect((await failure(unaryCall(root.Agent, 'CreateJoinToken', { ttl: 60 }))).code).toBe(status.OK);
  });
});
