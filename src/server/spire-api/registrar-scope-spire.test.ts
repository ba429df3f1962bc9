/**
 * A scoped registrar (issue 11, server/registrar-scope) calling SPIRE's Entry and Agent API
 * over mTLS (issue 14): SPIRE's RPCs run Mayfly's handlers, so the scope holds exactly as on
 * Mayfly's own API: it lists and counts only its entries, cannot read or delete another's,
 * creates within its scope only, and SPIRE's CreateJoinToken and Debug stay refused.
 */
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../spiffe/keys.js';
import { createCsr } from '../../spiffe/x509/csr.js';
import { spireApiServiceDefinition, type SpireApiService } from '../../wire/spire/definition.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from '../client.js';
import type { WireEntry, WireX509Svid } from '../messages.js';
import type { RegistrarScope } from '../registrar-scope.js';
import { startTestServer, type TestServer } from '../testing.js';

const TD = 'example.org';
const id = (p: string): string => `spiffe://${TD}${p}`;
const sid = (p: string): { trust_domain: string; path: string } => ({ trust_domain: TD, path: p });
const REG = id('/ci/team-a');

let srv: TestServer;
let local: ServerApiClients;
let tcp: ServerApiClients;
const spire: Partial<Record<SpireApiService, grpc.Client>> = {};
const scopes = new Map<string, RegistrarScope>();
let otherId = '';

function call<T>(service: SpireApiService, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = spire[service] as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, v: T) => void) => void>;
    (c[method] as (r: unknown, cb: (e: grpc.ServiceError | null, v: T) => void) => void).call(c, req, (e, v) => (e ? reject(e) : resolve(v)));
  });
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

beforeAll(async () => {
  srv = await startTestServer({ keyManager: 'memory', registrars: scopes });
  local = adminSocketClients(srv.adminSocketPath);
  const mk = (spiffeId: string, parentId: string, extra: Partial<WireEntry> = {}): WireEntry =>
    ({ spiffe_id: spiffeId, parent_id: parentId, selectors: [{ type: 'unix', value: `uid:${spiffeId.length}` }], ...extra }) as WireEntry;
  const made = await unaryCall<{ results: { status: { code: number }; entry: WireEntry }[] }>(local.Entry, 'BatchCreateEntry', {
    entries: [mk(REG, id('/nodes/ops'), { admin: true }), mk(id('/team-a/web'), id('/nodes/a'), { owner: 'team-a' }), mk(id('/team-b/db'), id('/nodes/b'), { owner: 'team-b' })],
  });
  expect(made.results.map((r) => r.status.code)).toEqual([0, 0, 0]);
  otherId = made.results[2]?.entry.id as string;
  scopes.set(REG, { registrar: REG, spiffeIdPrefixes: [id('/team-a')], parentIds: [id('/nodes/a')], owners: ['team-a', ''] });
  const key = generateKeyPair();
  const minted = await unaryCall<{ svid: WireX509Svid }>(local.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: REG, ttl: 600 });
  tcp = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: [...srv.ca.getBundle().x509Authorities], svid: { certChain: minted.svid.cert_chain, privateKey: key.privateKey } });
  for (const s of ['Entry', 'Agent', 'Debug'] as const) {
    const Ctor = grpc.makeGenericClientConstructor(spireApiServiceDefinition(s), s);
    spire[s] = new Ctor('unused', grpc.credentials.createInsecure(), { channelOverride: tcp.Entry.getChannel() });
  }
});

afterAll(async () => {
  for (const c of Object.values(spire)) c?.close();
  tcp?.close();
  local?.close();
  await srv?.stop();
});

describe('a scoped registrar on SPIRE’s API', () => {
  it('lists and counts only its own entries, with or without SPIRE paging', async () => {
    for (const page_size of [0, 1, 500]) {
      const r = await call<{ entries: { spiffe_id: { path: string } }[] }>('Entry', 'ListEntries', { page_size });
      expect(r.entries.map((e) => e.spiffe_id.path), `page_size ${page_size}`).toEqual(['/team-a/web']);
    }
    expect(await call<{ count: number }>('Entry', 'CountEntries', {})).toEqual({ count: 1 });
    expect(await call<{ count: number }>('Entry', 'CountEntries', { filter: { by_downstream: { value: false } } })).toEqual({ count: 1 });
  });

  it('cannot read, update or delete another team’s entry; creates only inside its scope', async () => {
    expect(await code(call('Entry', 'GetEntry', { id: otherId }))).toBe(status.PERMISSION_DENIED);
    const upd = await call<{ results: { status: { code: number } }[] }>('Entry', 'BatchUpdateEntry', { entries: [{ id: otherId, hint: 'x' }], input_mask: { hint: true } });
    expect(upd.results.map((r) => r.status.code)).toEqual([status.PERMISSION_DENIED]);
    const del = await call<{ results: { status: { code: number } }[] }>('Entry', 'BatchDeleteEntry', { ids: [otherId] });
    expect(del.results.map((r) => r.status.code)).toEqual([status.PERMISSION_DENIED]);
    const created = await call<{ results: { status: { code: number } }[] }>('Entry', 'BatchCreateEntry', {
      entries: [
        { spiffe_id: sid('/team-a/api'), parent_id: sid('/nodes/a'), selectors: [{ type: 'unix', value: 'uid:7' }] },
        { spiffe_id: sid('/team-b/api'), parent_id: sid('/nodes/b'), selectors: [{ type: 'unix', value: 'uid:8' }] },
      ],
    });
    expect(created.results.map((r) => r.status.code)).toEqual([0, status.PERMISSION_DENIED]);
    expect((await unaryCall<WireEntry>(local.Entry, 'GetEntry', { id: otherId })).hint).toBe('');
  });

  it('SPIRE’s CreateJoinToken and Debug are refused to it, as Mayfly’s join tokens are', async () => {
    expect(await code(call('Agent', 'CreateJoinToken', { ttl: 60 }))).toBe(status.PERMISSION_DENIED);
    expect(await code(call('Debug', 'GetInfo', {}))).toBe(status.PERMISSION_DENIED);
    expect(await call<{ count: number }>('Agent', 'CountAgents', {})).toEqual({ count: 0 });
  });
});
