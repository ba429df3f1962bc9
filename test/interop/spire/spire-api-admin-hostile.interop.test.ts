/**
 * SPIRE's Entry, Agent and Debug admin API on a running Mayfly server's admin socket, sent
 * what `spire-server`'s CLI never sends (raw grpc-js clients from `src/wire/spire`), and
 * answered with the status codes SPIRE v1.13.3's handlers give (pkg/server/api/{entry,
 * agent,debug}/v1/service.go): paging with page_size 0, negative and huge, a forged page
 * token, malformed SPIFFE IDs and selectors, output masks with fields the protos do not
 * have, batches mixing good and bad items, and unknown entries and agents. Also
 * grpc.health.v1 and Debug.GetInfo against what Mayfly's own API reports.
 */
import { X509Certificate } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../../src/server/client.js';
import { attestJoinTokenAgent } from '../../../src/server/testing.js';
import { spireApiServiceDefinition } from '../../../src/wire/spire/definition.js';
import { grpcHealthServiceDefinition } from '../../../src/server/spire-api/health.js';
import { startAdminFixture, type AdminFixture } from './admin-fixture.js';
import { spireCall, spireClient, spireCode } from './spire-raw-client.js';
import * as grpcJs from '@grpc/grpc-js';

interface Id {
  trust_domain: string;
  path: string;
}
interface Entry {
  id: string;
  spiffe_id: Id | null;
  parent_id: Id | null;
  selectors: { type: string; value: string }[];
  hint: string;
  x509_svid_ttl: number;
}
interface Result {
  status: { code: number; message: string };
  entry: Entry | null;
}

let f: AdminFixture;
let entry: grpc.Client;
let agent: grpc.Client;
let mayfly: ServerApiClients;
let parent: Id;
const N = 12;

const sid = (path: string, td = 'example.org'): Id => ({ trust_domain: td, path });
const sel = (value: string): { type: string; value: string } => ({ type: 'unix', value });
const newEntry = (path: string, value: string, extra: object = {}): object => ({ spiffe_id: sid(path), parent_id: parent, selectors: [sel(value)], ...extra });

beforeAll(async () => {
  f = await startAdminFixture();
  entry = spireClient(f.sock, 'Entry');
  agent = spireClient(f.sock, 'Agent');
  mayfly = adminSocketClients(f.sock);
  const p = f.agentId.slice('spiffe://example.org'.length);
  parent = sid(p);
  const res = await spireCall<{ results: Result[] }>(entry, 'BatchCreateEntry', {
    entries: Array.from({ length: N }, (_, i) => newEntry(`/hostile/${i}`, `uid:${2000 + i}`, { hint: i % 3 === 0 ? 'third' : '' })),
  });
  expect(res.results.map((r) => r.status.code)).toEqual(new Array(N).fill(0));
}, 120_000);

afterAll(async () => {
  entry?.close();
  agent?.close();
  mayfly?.close();
  await f?.stop();
});

async function allIds(): Promise<string[]> {
  const r = await unaryCall<{ entries: { id: string }[] }>(mayfly.Entry, 'ListEntries', { page_size: 1000 });
  return r.entries.map((e) => e.id).sort();
}

describe('ListEntries paging as SPIRE pages', () => {
  it('page_size 0, negative and huge: every entry at once, no next token; a token is ignored unless paging', async () => {
    const want = await allIds();
    for (const page_size of [0, -1, -2147483648, 2147483647]) {
      const r = await spireCall<{ entries: Entry[]; next_page_token: string }>(entry, 'ListEntries', { page_size, page_token: page_size <= 0 ? 'ignored!' : '' });
      expect(r.entries.map((e) => e.id).sort(), `page_size ${page_size}`).toEqual(want);
      expect(r.next_page_token).toBe('');
    }
  });

  it('page_size 5 walks every entry exactly once', async () => {
    const seen: string[] = [];
    let token = '';
    for (let i = 0; i < 50; i++) {
      const r = await spireCall<{ entries: Entry[]; next_page_token: string }>(entry, 'ListEntries', { page_size: 5, page_token: token });
      expect(r.entries.length).toBeLessThanOrEqual(5);
      seen.push(...r.entries.map((e) => e.id));
      token = r.next_page_token;
      if (token === '') break;
    }
    expect(seen.sort()).toEqual(await allIds());
  });

  it('with a hint filter (not in Mayfly’s datastore) pages hold only matches and still cover them all', async () => {
    const seen: Entry[] = [];
    let token = '';
    for (let i = 0; i < 50; i++) {
      const r = await spireCall<{ entries: Entry[]; next_page_token: string }>(entry, 'ListEntries', { page_size: 2, page_token: token, filter: { by_hint: { value: 'third' } } });
      seen.push(...r.entries);
      token = r.next_page_token;
      if (token === '') break;
      expect(r.entries.length).toBeGreaterThan(0);
    }
    expect(seen.map((e) => e.hint)).toEqual(new Array(N / 3).fill('third'));
    expect((await spireCall<{ count: number }>(entry, 'CountEntries', { filter: { by_hint: { value: 'third' } } })).count).toBe(N / 3);
  });

  it('a forged page token is INTERNAL "failed to list entries", as SPIRE answers (its datastore error wrapped)', async () => {
    const r = await spireCode(spireCall(entry, 'ListEntries', { page_size: 5, page_token: 'forged!' }));
    expect(r.code).toBe(status.INTERNAL);
    expect(r.details).toContain('failed to list entries');
    const a = await spireCode(spireCall(agent, 'ListAgents', { page_size: 5, page_token: 'forged!' }));
    expect(a.code).toBe(status.INTERNAL);
    expect(a.details).toContain('failed to list agents');
  });

  it('ListAgents pages of 1 cover every agent Mayfly has', async () => {
    const seen: string[] = [];
    let token = '';
    for (let i = 0; i < 20; i++) {
      const r = await spireCall<{ agents: { id: Id }[]; next_page_token: string }>(agent, 'ListAgents', { page_size: 1, page_token: token });
      seen.push(...r.agents.map((a) => `spiffe://${a.id.trust_domain}${a.id.path}`));
      token = r.next_page_token;
      if (token === '') break;
    }
    const mine = await unaryCall<{ agents: { id: string }[] }>(mayfly.Agent, 'ListAgents', {});
    expect(seen.sort()).toEqual(mine.agents.map((a) => a.id).sort());
  });
});

describe('malformed IDs and selectors: INVALID_ARGUMENT, as SPIRE', () => {
  it('entry filters', async () => {
    const bad: [object, string][] = [
      [{ by_spiffe_id: sid('/x', '') }, 'malformed SPIFFE ID filter'],
      [{ by_spiffe_id: sid('/spire/agent/x') }, 'malformed SPIFFE ID filter'],
      [{ by_parent_id: sid('/x', 'other.org') }, 'malformed parent ID filter'],
      [{ by_parent_id: sid('x') }, 'malformed parent ID filter'],
      [{ by_selectors: { selectors: [] } }, 'malformed selectors filter'],
      [{ by_selectors: { selectors: [{ type: 'un:ix', value: 'x' }] } }, 'malformed selectors filter'],
      [{ by_selectors: { selectors: [{ type: 'unix', value: '' }] } }, 'malformed selectors filter'],
      [{ by_federates_with: { trust_domains: ['Not A TD'] } }, 'malformed federates with filter'],
    ];
    for (const [filter, msg] of bad) {
      for (const method of ['ListEntries', 'CountEntries']) {
        const r = await spireCode(spireCall(entry, method, { filter }));
        expect(r.code, `${method} ${JSON.stringify(filter)}`).toBe(status.INVALID_ARGUMENT);
        expect(r.details).toContain(msg);
      }
    }
  });

  it('agent IDs outside the agent namespace, and selectors of agent filters', async () => {
    for (const method of ['GetAgent', 'BanAgent', 'DeleteAgent']) {
      for (const id of [sid('/workload'), sid('/spire/agent/x', 'other.org'), sid(''), null]) {
        const r = await spireCode(spireCall(agent, method, { id }));
        expect(r.code, `${method} ${JSON.stringify(id)}`).toBe(status.INVALID_ARGUMENT);
        expect(r.details).toMatch(/^invalid agent ID/);
      }
    }
    const r = await spireCode(spireCall(agent, 'ListAgents', { filter: { by_selector_match: { selectors: [{ type: '', value: 'x' }] } } }));
    expect(r.code).toBe(status.INVALID_ARGUMENT);
  });

  it('CreateJoinToken: ttl 0, a reserved alias, and (deliberately unlike SPIRE) a client-chosen token', async () => {
    expect((await spireCode(spireCall(agent, 'CreateJoinToken', { ttl: 0 }))).code).toBe(status.INVALID_ARGUMENT);
    expect((await spireCode(spireCall(agent, 'CreateJoinToken', { ttl: 60, agent_id: sid('/spire/agent/x') }))).code).toBe(status.INVALID_ARGUMENT);
    expect((await spireCode(spireCall(agent, 'CreateJoinToken', { ttl: 60, token: 'my-own-token' }))).code).toBe(status.INVALID_ARGUMENT);
    const ok = await spireCall<{ value: string; expires_at: number }>(agent, 'CreateJoinToken', { ttl: 60 });
    expect(ok.value.length).toBeGreaterThanOrEqual(16);
  });
});

describe('output masks', () => {
  it('a set mask keeps only its fields (and the ID); a nil mask keeps all', async () => {
    const masked = await spireCall<{ entries: Entry[] }>(entry, 'ListEntries', { output_mask: { hint: true } });
    for (const e of masked.entries) {
      expect(e.id).not.toBe('');
      expect(e.spiffe_id).toBeNull();
      expect(e.selectors).toEqual([]);
    }
    expect(masked.entries.filter((e) => e.hint === 'third')).toHaveLength(N / 3);
    const full = await spireCall<{ entries: Entry[] }>(entry, 'ListEntries', {});
    expect(full.entries.every((e) => e.spiffe_id !== null && e.selectors.length > 0)).toBe(true);
  });

  it('mask fields the protos do not have are skipped as protobuf skips unknown fields: answered, not refused', async () => {
    // ListEntriesRequest field 2 (output_mask) again, holding field 99 = true: protobuf merges
    // it into the mask, and an unknown field is skipped, so the mask is {hint: true}.
    const extra = Buffer.from([0x12, 0x03, 0x98, 0x06, 0x01]);
    const odd = spireClient(f.sock, 'Entry', { ListEntries: extra, GetEntry: extra });
    try {
      const r = await spireCall<{ entries: Entry[] }>(odd, 'ListEntries', { output_mask: { hint: true } });
      expect(r.entries.length).toBe((await allIds()).length);
      expect(r.entries.every((e) => e.spiffe_id === null)).toBe(true);
      // Only the unknown field: a mask with nothing set, so just the IDs.
      const one = r.entries[0] as Entry;
      const g = await spireCall<Entry>(odd, 'GetEntry', { id: one.id });
      expect(g).toMatchObject({ id: one.id, spiffe_id: null, hint: '', selectors: [] });
    } finally {
      odd.close();
    }
  });
});

describe('batches: per-item statuses in order, the good items done', () => {
  it('BatchCreateEntry with good and bad items', async () => {
    const items = [
      newEntry('/mix/good1', 'uid:3001'),
      newEntry('/mix/other-td', 'uid:3002', { spiffe_id: sid('/x', 'other.org') }),
      newEntry('/mix/no-selectors', 'uid:3003', { selectors: [] }),
      newEntry('/spire/agent/mine', 'uid:3004'),
      newEntry('/mix/bad-selector', 'uid:3005', { selectors: [{ type: 'unix', value: '' }] }),
      newEntry('/mix/store', 'uid:3006', { store_svid: true }),
      newEntry('/mix/good2', 'uid:3007'),
      newEntry('/hostile/0', 'uid:2000'),
    ];
    const r = await spireCall<{ results: Result[] }>(entry, 'BatchCreateEntry', { entries: items, output_mask: { spiffe_id: true } });
    const I = status.INVALID_ARGUMENT;
    expect(r.results.map((x) => x.status.code)).toEqual([0, I, I, I, I, I, 0, status.ALREADY_EXISTS]);
    for (const x of r.results.filter((x) => x.status.code === I)) expect(x.status.message).toMatch(/^failed to convert entry: /);
    // SPIRE answers AlreadyExists with the entry that holds the registration.
    const dup = r.results[7] as Result;
    expect(dup.status.message).toBe('similar entry already exists');
    expect(dup.entry?.spiffe_id).toEqual(sid('/hostile/0'));
    for (const i of [0, 6]) {
      const got = r.results[i]?.entry as Entry;
      expect(got.id).not.toBe('');
      expect(got.selectors).toEqual([]); // masked out
      const stored = await unaryCall<{ spiffe_id: string }>(mayfly.Entry, 'GetEntry', { id: got.id });
      expect(stored.spiffe_id).toBe(`spiffe://example.org${got.spiffe_id?.path}`);
    }
  });

  it('BatchUpdateEntry: an unknown ID is NotFound for its item, a known one updated with an input mask', async () => {
    const list = await spireCall<{ entries: Entry[] }>(entry, 'ListEntries', { filter: { by_spiffe_id: sid('/hostile/1') } });
    const known = list.entries[0] as Entry;
    const r = await spireCall<{ results: Result[] }>(entry, 'BatchUpdateEntry', {
      entries: [
        { id: 'no-such-entry', hint: 'x' },
        { id: known.id, hint: 'updated', x509_svid_ttl: 12345, spiffe_id: sid('ignored-not-masked') },
        { id: '', hint: 'x' },
        { id: '../../etc', hint: 'x' },
      ],
      input_mask: { hint: true },
      output_mask: { hint: true, x509_svid_ttl: true },
    });
    expect(r.results.map((x) => x.status.code)).toEqual([status.NOT_FOUND, 0, status.NOT_FOUND, status.NOT_FOUND]);
    expect(r.results[1]?.entry).toMatchObject({ id: known.id, hint: 'updated', x509_svid_ttl: known.x509_svid_ttl, spiffe_id: null });
    const stored = await unaryCall<{ hint: string; spiffe_id: string }>(mayfly.Entry, 'GetEntry', { id: known.id });
    expect(stored).toMatchObject({ hint: 'updated', spiffe_id: 'spiffe://example.org/hostile/1' });
  });

  it('BatchDeleteEntry: unknown IDs NotFound, an empty one INVALID_ARGUMENT, the known one deleted', async () => {
    const list = await spireCall<{ entries: Entry[] }>(entry, 'ListEntries', { filter: { by_spiffe_id: sid('/hostile/2') } });
    const known = (list.entries[0] as Entry).id;
    const r = await spireCall<{ results: { status: { code: number; message: string }; id: string }[] }>(entry, 'BatchDeleteEntry', { ids: ['nope', known, '', 'a/b'] });
    expect(r.results.map((x) => [x.id, x.status.code])).toEqual([
      ['nope', status.NOT_FOUND],
      [known, 0],
      ['', status.INVALID_ARGUMENT],
      ['a/b', status.NOT_FOUND],
    ]);
    expect((await spireCode(unaryCall(mayfly.Entry, 'GetEntry', { id: known }))).code).toBe(status.NOT_FOUND);
  });

  it('GetEntry: empty ID INVALID_ARGUMENT, unknown NOT_FOUND', async () => {
    expect((await spireCode(spireCall(entry, 'GetEntry', { id: '' }))).code).toBe(status.INVALID_ARGUMENT);
    expect(await spireCode(spireCall(entry, 'GetEntry', { id: 'nope' }))).toEqual({ code: status.NOT_FOUND, details: 'entry not found' });
  });

  it('BanAgent and DeleteAgent of an unknown agent: NOT_FOUND "agent not found"', async () => {
    for (const method of ['BanAgent', 'DeleteAgent', 'GetAgent']) {
      expect(await spireCode(spireCall(agent, method, { id: sid('/spire/agent/join_token/nobody') }))).toEqual({ code: status.NOT_FOUND, details: 'agent not found' });
    }
  });
});

describe('Debug.GetInfo and grpc.health.v1', () => {
  it('GetInfo: the server SVID chain up to its root, and the counts Mayfly reports', async () => {
    const debug = spireClient(f.sock, 'Debug');
    try {
      const info = await spireCall<{ svid_chain: { id: Id | null; expires_at: number; subject: string }[]; uptime: number; agents_count: number; entries_count: number; federated_bundles_count: number }>(
        debug,
        'GetInfo',
        {},
      );
      expect(info.svid_chain[0]?.id).toEqual(sid('/spire/server'));
      const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(mayfly.Bundle, 'GetBundle', {});
      const roots = bundle.x509_authorities.map((d) => new X509Certificate(d));
      const last = info.svid_chain[info.svid_chain.length - 1];
      expect(info.svid_chain.length).toBeGreaterThanOrEqual(2);
      expect(roots.some((r) => Math.floor(new Date(r.validTo).getTime() / 1000) === last?.expires_at)).toBe(true);
      expect(info.agents_count).toBe((await unaryCall<{ count: number }>(mayfly.Agent, 'CountAgents', {})).count);
      expect(info.entries_count).toBe((await unaryCall<{ count: number }>(mayfly.Entry, 'CountEntries', {})).count);
      expect(info.federated_bundles_count).toBe((await unaryCall<{ count: number }>(mayfly.Bundle, 'CountBundles', {})).count);
      expect(info.uptime).toBeGreaterThanOrEqual(0);
    } finally {
      debug.close();
    }
  });

  it('over TCP an agent is no admin: Entry admin RPCs PERMISSION_DENIED, Debug refused (local only, as SPIRE)', async () => {
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(mayfly.Bundle, 'GetBundle', {});
    const a = await attestJoinTokenAgent({ port: f.m.server.port, admin: mayfly, trustDomain: f.td, bundleRoots: bundle.x509_authorities });
    const onChannel = (name: 'Entry' | 'Debug'): grpc.Client => {
      const Ctor = grpcJs.makeGenericClientConstructor(spireApiServiceDefinition(name), name);
      return new Ctor('unused', grpcJs.credentials.createInsecure(), { channelOverride: a.clients.Agent.getChannel() });
    };
    const tcpEntry = onChannel('Entry');
    const tcpDebug = onChannel('Debug');
    try {
      expect((await spireCode(spireCall(tcpEntry, 'ListEntries', {}))).code).toBe(status.PERMISSION_DENIED);
      expect((await spireCode(spireCall(tcpEntry, 'BatchCreateEntry', { entries: [newEntry('/tcp/x', 'uid:9')] }))).code).toBe(status.PERMISSION_DENIED);
      expect((await spireCode(spireCall(tcpDebug, 'GetInfo', {}))).code).toBe(status.PERMISSION_DENIED);
    } finally {
      tcpEntry.close();
      tcpDebug.close();
      a.clients.close();
    }
  });

  it('Health/Check on the admin socket: SERVING for "", NOT_FOUND for another service', async () => {
    const Ctor = grpcJs.makeGenericClientConstructor(grpcHealthServiceDefinition(), 'Health');
    const c = new Ctor(`unix://${f.sock}`, grpcJs.credentials.createInsecure());
    try {
      expect(await spireCall<{ status: number }>(c, 'Check', { service: '' })).toEqual({ status: 1 });
      expect((await spireCode(spireCall(c, 'Check', { service: 'no.such.Service' }))).code).toBe(status.NOT_FOUND);
    } finally {
      c.close();
    }
  });
});
