/**
 * @module datastore/conformance
 *
 * The behaviour every Datastore implementation must show, written against the interface
 * only. An implementation's test file calls `runDatastoreConformance(name, open)`; `open`
 * gives a fresh, empty store for each test:
 * - `ds`: the store;
 * - `reopen`: called after the suite has closed `ds`, returns a new handle on the SAME
 *   storage. Optional in the type for in-memory fakes, but the survival test fails
 *   without it: every persistent implementation must supply it;
 * - `sibling`: optional, a second handle on the SAME storage opened as another server would
 *   (PostgreSQL: a second pool), closed by `cleanup`; concurrency tests write through both.
 *   Stores one process owns (LevelDB) leave it out and the tests use `ds` twice;
 * - `cleanup`: closes whatever is still open and removes the storage.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EntryInput, RegistrationEntry } from '../registration/entry.js';
import type { Selector } from '../registration/selector.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { parseBundle } from '../spiffe/bundle/parse.js';
import type { SpiffeJwk } from '../spiffe/bundle/jwk.js';
import { TrustDomain } from '../spiffe/id.js';
import { isMayflyError, type ErrorCode } from '../spiffe/errors.js';
import { makeTestCa } from '../spiffe/x509/testing.js';
import type { BundleAuthority, Datastore } from './datastore.js';
import { auditConformance } from './testdata/audit-conformance.js';
import { governanceConformance } from './testdata/governance-conformance.js';
import { relationshipConformance } from './testdata/relationships-conformance.js';
import { svidConformance } from './testdata/svid-conformance.js';

export interface ConformanceHandle {
  ds: Datastore;
  reopen?: () => Promise<Datastore>;
  sibling?: () => Promise<Datastore>;
  cleanup(): Promise<void>;
}

const TD = 'example.org';
const sel = (type: string, value: string): Selector => ({ type, value });
const agentId = (n: number | string): string => `spiffe://${TD}/spire/agent/join_token/${n}`;

function entry(n: number, over: Partial<EntryInput> = {}): EntryInput {
  return {
    spiffeId: `spiffe://${TD}/workload/${n}`,
    parentId: agentId('node-1'),
    selectors: [sel('unix', `uid:${n}`)],
    ...over,
  };
}

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (isMayflyError(err)) return err.code;
    throw err;
  }
}

async function listAllIds(ds: Datastore, query: Parameters<Datastore['listEntries']>[0] = {}): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = '';
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await ds.listEntries({ ...query, pageToken });
    for (const e of page.items) ids.push(e.entryId);
    if (query.pageSize !== undefined) expect(page.items.length).toBeLessThanOrEqual(query.pageSize);
    if (page.nextPageToken === '') return ids;
    pageToken = page.nextPageToken;
  }
  throw new Error('listing did not end');
}

/** A SPIFFE bundle key for an X.509 authority (a fresh self-signed CA) valid from `now` for `ttlSeconds`. */
function x509Authority(opts: { now?: Date; ttlSeconds?: number; trustDomain?: string } = {}): { jwk: SpiffeJwk; der: Buffer } {
  const td = opts.trustDomain ?? TD;
  const ca = makeTestCa({ trustDomain: td, ...(opts.now ? { now: opts.now } : {}), ...(opts.ttlSeconds ? { ttlSeconds: opts.ttlSeconds } : {}) });
  const jwk = new Bundle({ trustDomain: TrustDomain.parse(td), x509Authorities: [ca.certificate] }).toJwks().keys[0]!;
  return { jwk, der: ca.certificate };
}

/** A SPIFFE bundle key for a JWT authority with key ID `kid` (a fresh P-256 key unless given). */
function jwtAuthority(kid: string, key = generateKeyPair().publicKey): SpiffeJwk {
  return new Bundle({ trustDomain: TrustDomain.parse(TD), jwtAuthorities: [[kid, key]] }).toJwks().keys[0]!;
}

/** The stored bundle's keys: X.509 authorities as base64 DER, JWT authorities as `jwt:<kid>`, with their marks. */
async function storedKeys(ds: Datastore, td = TD): Promise<{ ids: string[]; tainted: string[]; sequence: number; doc: Record<string, unknown> }> {
  const b = await ds.getBundle(td);
  if (b === undefined) return { ids: [], tainted: [], sequence: -1, doc: {} };
  const doc = JSON.parse(b.bundle) as { keys: (SpiffeJwk & { mayfly_tainted?: boolean })[]; spiffe_sequence?: number };
  expect(doc.spiffe_sequence).toBe(b.sequence);
  // Whatever a merge stored is a bundle every consumer accepts.
  parseBundle(b.bundle, TrustDomain.parse(td), { maxBytes: 4 * 1024 * 1024 });
  const id = (k: SpiffeJwk): string => (k.use === 'x509-svid' ? k.x5c![0]! : `jwt:${k.kid}`);
  return { ids: doc.keys.map(id).sort(), tainted: doc.keys.filter((k) => k.mayfly_tainted === true).map(id).sort(), sequence: b.sequence, doc };
}

export function runDatastoreConformance(name: string, open: () => Promise<ConformanceHandle>): void {
  describe(`Datastore conformance: ${name}`, () => {
    let h: ConformanceHandle;
    let ds: Datastore;

    beforeEach(async () => {
      h = await open();
      ds = h.ds;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    describe('entries', () => {
      it('creates, reads and deletes an entry', async () => {
        const created = await ds.createEntry(entry(1, { dnsNames: ['a.example.org'], federatesWith: ['other.org'], hint: 'web', x509SvidTtl: 600 }));
        expect(created.entryId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(created.revision).toBe(0);
        expect(Number.isInteger(created.createdAt) && created.createdAt > 1_600_000_000).toBe(true);
        expect(created).toMatchObject({ spiffeId: `spiffe://${TD}/workload/1`, x509SvidTtl: 600, jwtSvidTtl: 0, admin: false, downstream: false, expiresAt: 0, hint: 'web' });
        expect(await ds.getEntry(created.entryId)).toEqual(created);
        expect(await ds.countEntries()).toBe(1);

        expect(await ds.getEntry('no-such-entry')).toBeUndefined();
        expect(await ds.deleteEntry(created.entryId)).toEqual(created);
        expect(await ds.getEntry(created.entryId)).toBeUndefined();
        expect(await ds.countEntries()).toBe(0);
        expect(await codeOf(ds.deleteEntry(created.entryId))).toBe('ERR_DATASTORE_NOT_FOUND');
        expect((await ds.listEntries()).items).toEqual([]);
      });

      it('stores an entry template (issue 11) as its spiffe_id string, byte for byte, finds it by that string and refuses a malformed one', async () => {
        const tpl = `spiffe://${TD}/ns/{{k8s:ns}}/sa/{{k8s:sa}}`;
        const created = await ds.createEntry(entry(1, { spiffeId: tpl, selectors: [sel('k8s', 'ns:*'), sel('k8s', 'sa:*')] }));
        expect(created.spiffeId).toBe(tpl);
        expect(await ds.getEntry(created.entryId)).toEqual(created);
        expect((await ds.listEntries({ bySpiffeId: tpl })).items.map((e) => e.entryId)).toEqual([created.entryId]);
        expect((await ds.listEntriesForParents([agentId('node-1')])).map((e) => e.spiffeId)).toEqual([tpl]);
        expect(await codeOf(ds.createEntry(entry(2, { spiffeId: `spiffe://${TD}/{{k8s:ns}}`, selectors: [sel('k8s', 'sa:*')] })))).toBe('ERR_ENTRY_INVALID');
        expect(await ds.countEntries()).toBe(1);
      });

      it('keeps a caller-chosen entry ID and rejects a second entry with it', async () => {
        const e = await ds.createEntry(entry(1, { entryId: 'my-entry.1' }));
        expect(e.entryId).toBe('my-entry.1');
        const err = await ds.createEntry(entry(2, { entryId: 'my-entry.1' })).catch((x: unknown) => x);
        expect(isMayflyError(err, 'ERR_DATASTORE_ALREADY_EXISTS')).toBe(true);
        expect(await codeOf(ds.createEntry(entry(3, { entryId: 'bad id with spaces' })))).toBe('ERR_ENTRY_INVALID');
      });

      it('rejects hostile entries (10,000 selectors, 1 MB fields) and stores nothing', async () => {
        const big = 'x'.repeat(1024 * 1024);
        const hostile: EntryInput[] = [
          entry(1, { selectors: Array.from({ length: 10_000 }, (_, i) => sel('unix', `uid:${i}`)) }),
          entry(2, { hint: big }),
          entry(3, { spiffeId: `spiffe://${TD}/${big}` }),
          entry(4, { selectors: [sel('unix', big)] }),
          entry(5, { dnsNames: [big] }),
          entry(6, { selectors: [] }),
          entry(7, { spiffeId: 'spiffe://elsewhere.org/x' as string, parentId: 'not a spiffe id' }),
        ];
        for (const input of hostile) {
          const err = await ds.createEntry(input).catch((x: unknown) => x);
          expect(isMayflyError(err, 'ERR_ENTRY_INVALID'), String(err)).toBe(true);
          expect((err as Error).message.length).toBeLessThan(600);
        }
        const results = await ds.createEntries(hostile);
        expect(results.every((r) => r.error !== undefined && r.error.code === 'ERR_ENTRY_INVALID')).toBe(true);
        expect(await ds.countEntries()).toBe(0);
        expect((await ds.listEntries()).items).toEqual([]);
      });

      it('treats (parent, SPIFFE ID, selectors in any order) as one registration', async () => {
        const a = await ds.createEntry(entry(1, { selectors: [sel('unix', 'uid:1'), sel('k8s', 'ns:prod')] }));
        const err = await ds.createEntry(entry(1, { selectors: [sel('k8s', 'ns:prod'), sel('unix', 'uid:1')] })).catch((x: unknown) => x);
        expect(isMayflyError(err, 'ERR_DATASTORE_ALREADY_EXISTS')).toBe(true);
        expect((err as { existingEntryId?: string }).existingEntryId).toBe(a.entryId);
        // Any difference makes a different registration.
        await ds.createEntry(entry(1, { selectors: [sel('unix', 'uid:1')] }));
        await ds.createEntry(entry(1, { selectors: [sel('unix', 'uid:1'), sel('k8s', 'ns:prod')], parentId: agentId('node-2') }));
        expect(await ds.countEntries()).toBe(3);
      });

      it('lets exactly one of 50 racing identical creates win', async () => {
        const settled = await Promise.allSettled(Array.from({ length: 50 }, () => ds.createEntry(entry(7))));
        const won = settled.filter((s) => s.status === 'fulfilled') as PromiseFulfilledResult<RegistrationEntry>[];
        expect(won).toHaveLength(1);
        for (const s of settled) {
          if (s.status === 'rejected') {
            expect(isMayflyError(s.reason, 'ERR_DATASTORE_ALREADY_EXISTS')).toBe(true);
            expect((s.reason as { existingEntryId?: string }).existingEntryId).toBe(won[0]!.value.entryId);
          }
        }
        expect(await ds.countEntries()).toBe(1);
      });

      it('reports per-item results from a batch create, duplicates inside the batch included', async () => {
        const results = await ds.createEntries([entry(1), entry(2, { selectors: [] }), entry(1), entry(3)]);
        expect(results).toHaveLength(4);
        expect(results[0]!.entry?.spiffeId).toBe(`spiffe://${TD}/workload/1`);
        expect(results[1]!.error?.code).toBe('ERR_ENTRY_INVALID');
        expect(results[2]!.error?.code).toBe('ERR_DATASTORE_ALREADY_EXISTS');
        expect(results[3]!.entry?.spiffeId).toBe(`spiffe://${TD}/workload/3`);
        expect(await ds.countEntries()).toBe(2);
        expect(await ds.getEntry(results[3]!.entry!.entryId)).toEqual(results[3]!.entry);
      });

      it('updates optimistically: bumps the revision, refuses a stale one, re-indexes', async () => {
        const e = await ds.createEntry(entry(1, { federatesWith: ['a.org'] }));
        const u1 = await ds.updateEntry({ ...e, spiffeId: `spiffe://${TD}/renamed`, federatesWith: ['b.org'] }, { expectedRevision: 0 });
        expect(u1.revision).toBe(1);
        expect(u1.createdAt).toBe(e.createdAt);
        expect(await ds.getEntry(e.entryId)).toEqual(u1);
        expect(await codeOf(ds.updateEntry({ ...e, hint: 'late' }, { expectedRevision: 0 }))).toBe('ERR_DATASTORE_CONFLICT');
        expect((await ds.getEntry(e.entryId))!.hint).toBe('');
        expect(await codeOf(ds.updateEntry({ ...entry(9), entryId: 'missing' }, { expectedRevision: 0 }))).toBe('ERR_DATASTORE_NOT_FOUND');
        expect(await codeOf(ds.updateEntry({ ...e, selectors: [] }, { expectedRevision: 1 }))).toBe('ERR_ENTRY_INVALID');

        expect((await ds.listEntries({ bySpiffeId: `spiffe://${TD}/workload/1` })).items).toEqual([]);
        expect((await ds.listEntries({ bySpiffeId: `spiffe://${TD}/renamed` })).items).toEqual([u1]);
        expect((await ds.listEntries({ byFederatesWith: { trustDomains: ['a.org'], match: 'any' } })).items).toEqual([]);
        expect((await ds.listEntries({ byFederatesWith: { trustDomains: ['b.org'], match: 'any' } })).items).toEqual([u1]);

        // Colliding with another registration is refused.
        const other = await ds.createEntry(entry(2));
        expect(await codeOf(ds.updateEntry({ ...other, spiffeId: u1.spiffeId, selectors: u1.selectors }, { expectedRevision: 0 }))).toBe(
          'ERR_DATASTORE_ALREADY_EXISTS',
        );
        // The old identity is free again after the rename.
        await ds.createEntry(entry(1, { federatesWith: ['a.org'] }));
      });

      it('lets exactly one of 10 concurrent updates at the same revision win', async () => {
        const e = await ds.createEntry(entry(1));
        const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => ds.updateEntry({ ...e, hint: `h${i}` }, { expectedRevision: 0 })));
        expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
        for (const s of settled) if (s.status === 'rejected') expect(isMayflyError(s.reason, 'ERR_DATASTORE_CONFLICT')).toBe(true);
        expect((await ds.getEntry(e.entryId))!.revision).toBe(1);
      });
    });

    describe('listing entries', () => {
      it('pages over every entry exactly once, in bounded pages', async () => {
        const results = await ds.createEntries(Array.from({ length: 1234 }, (_, i) => entry(i)));
        const ids = results.map((r) => r.entry!.entryId).sort();
        expect(await ds.countEntries()).toBe(1234);
        const listed = await listAllIds(ds, { pageSize: 100 });
        expect(listed).toEqual(ids);
        const first = await ds.listEntries();
        expect(first.items).toHaveLength(500); // the default page size
        expect(first.nextPageToken).not.toBe('');
        expect(await listAllIds(ds, { pageSize: 1000 })).toEqual(ids);
        expect(await listAllIds(ds, { pageSize: 7, byParentId: agentId('node-1') })).toEqual(ids);
      });

      it('rejects page sizes outside 1..1000 and tokens it did not issue', async () => {
        for (const pageSize of [0, -1, 1001, 1.5, Number.NaN, 1e12]) {
          expect(await codeOf(ds.listEntries({ pageSize })), String(pageSize)).toBe('ERR_DATASTORE_INVALID');
        }
        for (const pageToken of ['garbage!', 'eyJ2IjoxfQ', Buffer.from('{"v":1,"k":"agents","a":"x"}').toString('base64url')]) {
          expect(await codeOf(ds.listEntries({ pageToken })), pageToken).toBe('ERR_DATASTORE_INVALID');
        }
        expect(await codeOf(ds.listEntries({ bySelectors: { selectors: [], match: 'any' } }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.listEntries({ bySelectors: { selectors: [sel('BAD', 'x')], match: 'any' } }))).toBe('ERR_SELECTOR_INVALID');
        expect(await codeOf(ds.listEntries({ bySpiffeId: 'nope' }))).toBe('ERR_DATASTORE_INVALID');
      });

      it('filters by SPIFFE ID, parent ID, selectors (exact/subset/superset/any) and federatesWith', async () => {
        const a = sel('unix', 'uid:1');
        const b = sel('k8s', 'ns:prod');
        const c = sel('docker', 'label:x');
        const mk = async (n: number, selectors: Selector[], over: Partial<EntryInput> = {}): Promise<string> =>
          (await ds.createEntry(entry(n, { selectors, ...over }))).entryId;
        const A = await mk(1, [a]);
        const B = await mk(2, [b, a], { federatesWith: ['x.org'] });
        const C = await mk(3, [b, c], { federatesWith: ['x.org', 'y.org'] });
        const D = await mk(4, [a, b, c], { parentId: agentId('node-2') });
        const E = await mk(1, [sel('unix', 'uid:99')], { parentId: agentId('node-2') });
        const sorted = (xs: string[]): string[] => [...xs].sort();
        const q = async (selectors: Selector[], match: 'exact' | 'subset' | 'superset' | 'any'): Promise<string[]> =>
          listAllIds(ds, { bySelectors: { selectors, match }, pageSize: 2 });

        expect(await q([a, b], 'exact')).toEqual([B]);
        expect(await q([b, a], 'exact')).toEqual([B]);
        expect(await q([a, b], 'subset')).toEqual(sorted([A, B]));
        expect(await q([a, b], 'superset')).toEqual(sorted([B, D]));
        expect(await q([a, b], 'any')).toEqual(sorted([A, B, C, D]));
        expect(await q([c], 'subset')).toEqual([]);
        expect(await q([sel('unix', 'uid:404')], 'any')).toEqual([]);

        expect(await listAllIds(ds, { bySpiffeId: `spiffe://${TD}/workload/1` })).toEqual(sorted([A, E]));
        expect(await listAllIds(ds, { byParentId: agentId('node-2') })).toEqual(sorted([D, E]));
        expect(await listAllIds(ds, { byParentId: agentId('node-1'), bySelectors: { selectors: [b], match: 'superset' } })).toEqual(sorted([B, C]));
        expect(await listAllIds(ds, { bySpiffeId: `spiffe://${TD}/workload/1`, byParentId: agentId('node-2') })).toEqual([E]);
        expect(await listAllIds(ds, { byFederatesWith: { trustDomains: ['x.org'], match: 'exact' } })).toEqual([B]);
        expect(await listAllIds(ds, { byFederatesWith: { trustDomains: ['x.org'], match: 'superset' } })).toEqual(sorted([B, C]));
        expect(await listAllIds(ds, { byFederatesWith: { trustDomains: ['y.org', 'z.org'], match: 'any' } })).toEqual([C]);

        const forParents = await ds.listEntriesForParents([agentId('node-2'), agentId('nobody')]);
        expect(sorted(forParents.map((e) => e.entryId))).toEqual(sorted([D, E]));
        expect(await codeOf(ds.listEntriesForParents([]))).toBe('ERR_DATASTORE_INVALID');
      });
    });

    describe('agents', () => {
      const newAgent = (n: number, certNotAfter = 2_000_000_000) => ({
        spiffeId: agentId(n),
        attestationType: 'join_token',
        serialNumber: `0a${n.toString(16)}`,
        certNotAfter,
        selectors: [sel('join_token', `t${n}`)],
      });

      it('creates, updates (ban), lists, evicts and counts agents', async () => {
        const a = await ds.createAgent(newAgent(1));
        expect(a).toMatchObject({ spiffeId: agentId(1), banned: false, canReattest: false, certNotAfter: 2_000_000_000 });
        expect(a.createdAt).toBe(a.updatedAt);
        expect(await ds.getAgent(agentId(1))).toEqual(a);
        expect(await ds.getAgent(agentId(404))).toBeUndefined();
        expect(await codeOf(ds.createAgent(newAgent(1)))).toBe('ERR_DATASTORE_ALREADY_EXISTS');
        await ds.createAgent(newAgent(2));
        await ds.createAgent({ ...newAgent(3), canReattest: true });
        expect(await ds.countAgents()).toBe(3);

        const banned = await ds.updateAgent(agentId(2), { banned: true, serialNumber: '' });
        expect(banned).toMatchObject({ banned: true, serialNumber: '', attestationType: 'join_token' });
        expect(await ds.getAgent(agentId(2))).toEqual(banned);
        expect((await ds.listAgents({ byBanned: true })).items.map((x) => x.spiffeId)).toEqual([agentId(2)]);
        expect((await ds.listAgents({ byBanned: false })).items.map((x) => x.spiffeId)).toEqual([agentId(1), agentId(3)]);
        expect(await codeOf(ds.updateAgent(agentId(404), { banned: true }))).toBe('ERR_DATASTORE_NOT_FOUND');
        expect(await codeOf(ds.updateAgent(agentId(1), { serialNumber: 'not hex' }))).toBe('ERR_DATASTORE_INVALID');

        expect(await ds.deleteAgent(agentId(1))).toMatchObject({ spiffeId: agentId(1) });
        expect(await ds.getAgent(agentId(1))).toBeUndefined();
        expect(await codeOf(ds.deleteAgent(agentId(1)))).toBe('ERR_DATASTORE_NOT_FOUND');
        expect(await ds.countAgents()).toBe(2);
      });

      it('rejects malformed and oversized agents', async () => {
        expect(await codeOf(ds.createAgent({ ...newAgent(1), spiffeId: 'spiffe://x' }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.createAgent({ ...newAgent(1), attestationType: 'Bad Type' }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.createAgent({ ...newAgent(1), certNotAfter: -5 }))).toBe('ERR_DATASTORE_INVALID');
        const many = Array.from({ length: 10_000 }, (_, i) => sel('k8s', `pod:${i}`));
        expect(await codeOf(ds.createAgent({ ...newAgent(1), selectors: many }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.createAgent({ ...newAgent(1), selectors: [sel('k8s', 'a\nb')] }))).toBe('ERR_SELECTOR_INVALID');
        expect(await ds.countAgents()).toBe(0);
      });

      it('pages agents, filters expired ones and purges them (banned kept unless asked)', async () => {
        for (let i = 0; i < 25; i++) await ds.createAgent(newAgent(i, i < 10 ? 1000 + i : 5000));
        await ds.updateAgent(agentId(3), { banned: true });
        const seen: string[] = [];
        let pageToken = '';
        do {
          const page = await ds.listAgents({ pageSize: 4, pageToken });
          expect(page.items.length).toBeLessThanOrEqual(4);
          seen.push(...page.items.map((a) => a.spiffeId));
          pageToken = page.nextPageToken;
        } while (pageToken !== '');
        expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => agentId(i)).sort());
        expect(await codeOf(ds.listAgents({ pageSize: 0 }))).toBe('ERR_DATASTORE_INVALID');

        expect((await ds.listAgents({ byExpiredBefore: 1005 })).items).toHaveLength(5);
        expect(await ds.purgeExpiredAgents(1005)).toBe(4); // agent 3 is banned
        expect(await ds.getAgent(agentId(3))).toBeDefined();
        expect(await ds.getAgent(agentId(2))).toBeUndefined();
        expect(await ds.getAgent(agentId(5))).toBeDefined();
        expect(await ds.purgeExpiredAgents(5000, { includeBanned: true })).toBe(6);
        expect(await ds.countAgents()).toBe(15);
        expect(await ds.purgeExpiredAgents(5000)).toBe(0);
      });
    });

    describe('join tokens', () => {
      it('is consumed exactly once, and never after it expires', async () => {
        const t = await ds.createJoinToken({ token: 'tok-1', expiresAt: 2000 });
        expect(t).toMatchObject({ token: 'tok-1', expiresAt: 2000 });
        expect(await codeOf(ds.createJoinToken({ token: 'tok-1', expiresAt: 3000 }))).toBe('ERR_DATASTORE_ALREADY_EXISTS');
        expect(await ds.consumeJoinToken('tok-1', 1999)).toMatchObject({ token: 'tok-1', expiresAt: 2000 });
        expect(await codeOf(ds.consumeJoinToken('tok-1', 1999))).toBe('ERR_JOIN_TOKEN_INVALID');
        expect(await codeOf(ds.consumeJoinToken('unknown', 1))).toBe('ERR_JOIN_TOKEN_INVALID');

        await ds.createJoinToken({ token: 'tok-2', expiresAt: 2000 });
        expect(await codeOf(ds.consumeJoinToken('tok-2', 2000))).toBe('ERR_JOIN_TOKEN_INVALID');
        expect(await codeOf(ds.consumeJoinToken('tok-2', 1000))).toBe('ERR_JOIN_TOKEN_INVALID'); // an expired token stays dead
        expect(await codeOf(ds.createJoinToken({ token: 'has space', expiresAt: 1 }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.createJoinToken({ token: 'x'.repeat(1_000_000), expiresAt: 1 }))).toBe('ERR_DATASTORE_INVALID');
      });

      it('lets exactly one of 20 concurrent consumes win', async () => {
        await ds.createJoinToken({ token: 'race', expiresAt: 2000 });
        const settled = await Promise.allSettled(Array.from({ length: 20 }, () => ds.consumeJoinToken('race', 1000)));
        expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
        for (const s of settled) if (s.status === 'rejected') expect(isMayflyError(s.reason, 'ERR_JOIN_TOKEN_INVALID')).toBe(true);
      });

      it('purges expired tokens', async () => {
        await ds.createJoinToken({ token: 'old', expiresAt: 100 });
        await ds.createJoinToken({ token: 'new', expiresAt: 300 });
        expect(await ds.purgeExpiredJoinTokens(200)).toBe(1);
        expect(await codeOf(ds.consumeJoinToken('old', 50))).toBe('ERR_JOIN_TOKEN_INVALID');
        expect((await ds.consumeJoinToken('new', 250)).token).toBe('new');
      });
    });

    describe('bundles and the CA journal', () => {
      it('stores, replaces, lists and deletes bundles as text', async () => {
        const text = '{"keys":[],"spiffe_sequence":1}';
        expect(await ds.getBundle('other.org')).toBeUndefined();
        await ds.setBundle({ trustDomain: 'other.org', bundle: text, sequence: 1 });
        await ds.setBundle({ trustDomain: 'another.org', bundle: '{"keys":[]}', sequence: 0 });
        expect(await ds.getBundle('other.org')).toMatchObject({ trustDomain: 'other.org', bundle: text, sequence: 1 });
        await ds.setBundle({ trustDomain: 'other.org', bundle: '{"keys":[],"spiffe_sequence":2}', sequence: 2 });
        expect((await ds.getBundle('other.org'))!.sequence).toBe(2);
        expect((await ds.listBundles()).map((b) => b.trustDomain)).toEqual(['another.org', 'other.org']);

        const e = await ds.createEntry(entry(1, { federatesWith: ['other.org'] }));
        expect(await codeOf(ds.deleteBundle('other.org'))).toBe('ERR_DATASTORE_CONFLICT');
        await ds.deleteEntry(e.entryId);
        await ds.deleteBundle('other.org');
        expect(await ds.getBundle('other.org')).toBeUndefined();
        expect(await codeOf(ds.deleteBundle('other.org'))).toBe('ERR_DATASTORE_NOT_FOUND');
        expect(await codeOf(ds.setBundle({ trustDomain: 'spiffe://other.org', bundle: text, sequence: 1 }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.setBundle({ trustDomain: 'big.org', bundle: 'x'.repeat(5 * 1024 * 1024), sequence: 1 }))).toBe('ERR_DATASTORE_INVALID');
      });

      it('merges authorities into a bundle: created on first add, updated in place, removed, pruned; the sequence moves only on change', async () => {
        const now = Math.floor(Date.now() / 1000);
        const a = x509Authority();
        const b = x509Authority();
        const old = x509Authority({ now: new Date((now - 7200) * 1000), ttlSeconds: 3600 });
        const j1 = jwtAuthority('kid-1');
        const j2 = jwtAuthority('kid-2');
        const x = (k: { jwk: SpiffeJwk }): string => k.jwk.x5c![0]!;

        expect(await ds.mergeBundle({ trustDomain: TD, remove: [{ jwtKid: 'nope' }] })).toEqual({ bundle: undefined, changed: false });
        expect(await ds.getBundle(TD)).toBeUndefined();
        const first = await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: a.jwk }, { jwk: j1, notAfter: now + 100 }], refreshHintSeconds: 300 });
        expect(first.changed).toBe(true);
        expect(first.bundle).toMatchObject({ trustDomain: TD, sequence: 1 });
        expect(await ds.getBundle(TD)).toEqual(first.bundle);
        expect((await storedKeys(ds)).ids).toEqual([x(a), 'jwt:kid-1'].sort());
        expect((await storedKeys(ds)).doc.spiffe_refresh_hint).toBe(300);

        // The same content again changes nothing and writes nothing.
        const same = await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: a.jwk }, { jwk: j1, notAfter: now + 100 }] });
        expect(same).toEqual({ bundle: first.bundle, changed: false });

        // Another writer's authorities join; minSequence lifts the sequence.
        const second = await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: b.jwk }, { jwk: j2 }, { jwk: old.jwk }], minSequence: 40 });
        expect(second.bundle!.sequence).toBe(40);
        expect((await storedKeys(ds)).ids).toEqual([x(a), x(b), x(old), 'jwt:kid-1', 'jwt:kid-2'].sort());

        // A taint sticks: re-adding without it does not lift it.
        await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: j2, tainted: true }, { jwk: b.jwk, tainted: true }] });
        await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: j2 }, { jwk: b.jwk }] });
        expect((await storedKeys(ds)).tainted).toEqual([x(b), 'jwt:kid-2'].sort());

        // Revoke and prune in one merge: b is removed, the expired CA and the expired JWT key go, kid-2 (no expiry) stays.
        const pruned = await ds.mergeBundle({ trustDomain: TD, remove: [{ x509: x(b) }], pruneExpiredBefore: now + 101 });
        expect(pruned.changed).toBe(true);
        expect(pruned.bundle!.sequence).toBe(42);
        expect((await storedKeys(ds)).ids).toEqual([x(a), 'jwt:kid-2'].sort());
        expect((await storedKeys(ds)).tainted).toEqual(['jwt:kid-2']);

        // Pruning never removes every X.509 authority (as SPIRE's PruneBundle).
        const expiredOnly = x509Authority({ now: new Date((now - 7200) * 1000), ttlSeconds: 3600, trustDomain: 'other.org' });
        await ds.mergeBundle({ trustDomain: 'other.org', add: [{ jwk: expiredOnly.jwk, notAfter: now - 10 }] });
        expect((await ds.mergeBundle({ trustDomain: 'other.org', pruneExpiredBefore: now })).changed).toBe(false);
        expect((await storedKeys(ds, 'other.org')).ids).toEqual([x(expiredOnly)]);

        // setBundle still replaces the whole bundle, and merges build on what it stored.
        await ds.setBundle({ trustDomain: TD, bundle: new Bundle({ trustDomain: TrustDomain.parse(TD), x509Authorities: [b.der] }).toJson(), sequence: 50 });
        const onSet = await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: a.jwk }] });
        expect(onSet.bundle!.sequence).toBe(51);
        expect((await storedKeys(ds)).ids).toEqual([x(a), x(b)].sort());
      });

      it('refuses bad keys, key ID collisions and oversized results, leaving the stored bundle as it was', async () => {
        const a = x509Authority();
        await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: a.jwk }, { jwk: jwtAuthority('kid-1') }] });
        const before = await ds.getBundle(TD);
        const mismatched = { ...a.jwk, x: x509Authority().jwk.x } as SpiffeJwk;
        const bad: BundleAuthority[][] = [
          [{ jwk: mismatched }],
          [{ jwk: { ...jwtAuthority('kid-9'), d: 'c2VjcmV0' } as SpiffeJwk }],
          [{ jwk: { ...jwtAuthority('kid-9'), use: 'sig' } as unknown as SpiffeJwk }],
          [{ jwk: jwtAuthority('kid-9'), notAfter: -1 }],
          [{ jwk: { ...a.jwk, x5c: [a.jwk.x5c![0]!, a.jwk.x5c![0]!] } }],
        ];
        for (const add of bad) expect(await codeOf(ds.mergeBundle({ trustDomain: TD, add }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.mergeBundle({ trustDomain: TD, add: [{ jwk: jwtAuthority('kid-1') }] }))).toBe('ERR_DATASTORE_CONFLICT');
        expect(await codeOf(ds.mergeBundle({ trustDomain: 'spiffe://example.org', add: [{ jwk: a.jwk }] }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.mergeBundle({ trustDomain: TD, remove: [{ x509: '' }] }))).toBe('ERR_DATASTORE_INVALID');
        expect(await ds.getBundle(TD)).toEqual(before);

        // The 4 MiB limit holds for merged bundles too: a stored bundle just under it cannot grow past it.
        const padded = JSON.stringify({ keys: [], pad: 'x'.repeat(4 * 1024 * 1024 - 100) });
        await ds.setBundle({ trustDomain: 'big.org', bundle: padded, sequence: 1 });
        expect(await codeOf(ds.mergeBundle({ trustDomain: 'big.org', add: [{ jwk: jwtAuthority('k') }] }))).toBe('ERR_DATASTORE_INVALID');
        expect((await ds.getBundle('big.org'))!.sequence).toBe(1);

        // A stored bundle that is not a SPIFFE bundle is not merged into (nor silently replaced).
        await ds.setBundle({ trustDomain: 'junk.org', bundle: 'not json', sequence: 1 });
        expect(await codeOf(ds.mergeBundle({ trustDomain: 'junk.org', add: [{ jwk: a.jwk }] }))).toBe('ERR_DATASTORE_INVALID');
      });

      it('loses no authority when two writers merge concurrently', async () => {
        const other = h.sibling === undefined ? ds : await h.sibling();
        const kids = Array.from({ length: 24 }, (_, i) => `kid-${i}`);
        const keys = kids.map((k) => jwtAuthority(k));
        const settled = await Promise.allSettled(keys.map((jwk, i) => (i % 2 === 0 ? ds : other).mergeBundle({ trustDomain: TD, add: [{ jwk }] })));
        expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
        const after = await storedKeys(ds);
        expect(after.ids).toEqual(kids.map((k) => `jwt:${k}`).sort());
        // Every merge changed the bundle once: the sequence counts them all.
        expect(after.sequence).toBe(kids.length);
        // Removals racing with adds lose nothing either.
        await Promise.all(kids.map((k, i) => (i % 2 === 0 ? other : ds).mergeBundle({ trustDomain: TD, remove: [{ jwtKid: k }], add: [{ jwk: jwtAuthority(`new-${i}`) }] })));
        expect((await storedKeys(ds)).ids).toEqual(kids.map((_, i) => `jwt:new-${i}`).sort());
      });

      it('with an owner, a merge states the owner\'s complete set: its stale keys go in the same write, other owners\' and untagged keys stay', async () => {
        const a1 = x509Authority();
        const a2 = x509Authority();
        const b1 = x509Authority();
        const shared = x509Authority();
        const u = x509Authority();
        const x = (k: { jwk: SpiffeJwk }): string => k.jwk.x5c![0]!;
        const [ja1, ja2, jb] = [jwtAuthority('a-jwt-1'), jwtAuthority('a-jwt-2'), jwtAuthority('b-jwt')];
        const ownersIn = async (): Promise<Record<string, string[]>> => {
          const doc = (await storedKeys(ds)).doc as { keys: (SpiffeJwk & { mayfly_owners?: string[] })[] };
          return Object.fromEntries(doc.keys.map((k) => [k.use === 'x509-svid' ? k.x5c![0]! : `jwt:${k.kid}`, k.mayfly_owners ?? []]));
        };
        // An untagged key (setBundle, or a merge without owner) and two servers' sets.
        await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: u.jwk }, { jwk: jwtAuthority('untagged') }] });
        await ds.mergeBundle({ trustDomain: TD, owner: 'server-a', add: [{ jwk: a1.jwk }, { jwk: shared.jwk }, { jwk: ja1 }] });
        await ds.mergeBundle({ trustDomain: TD, owner: 'server-b', add: [{ jwk: b1.jwk }, { jwk: shared.jwk }, { jwk: jb }] });
        expect(await ownersIn()).toEqual({
          [x(u)]: [], 'jwt:untagged': [], [x(a1)]: ['server-a'], [x(shared)]: ['server-a', 'server-b'], 'jwt:a-jwt-1': ['server-a'], [x(b1)]: ['server-b'], 'jwt:b-jwt': ['server-b'],
        });
        // The same complete set again changes nothing.
        const again = await ds.mergeBundle({ trustDomain: TD, owner: 'server-a', add: [{ jwk: a1.jwk }, { jwk: shared.jwk }, { jwk: ja1 }] });
        expect(again.changed).toBe(false);

        // server-a restarts without a1, a-jwt-1 and the shared root (its CA dropped them while it
        // could not publish), naming none of them: they leave with its next merge, except the
        // root server-b still publishes, which loses only server-a's tag.
        const seq = (await storedKeys(ds)).sequence;
        const res = await ds.mergeBundle({ trustDomain: TD, owner: 'server-a', add: [{ jwk: a2.jwk }, { jwk: ja2 }] });
        expect(res.changed).toBe(true);
        expect(res.bundle!.sequence).toBe(seq + 1);
        expect(await ownersIn()).toEqual({
          [x(u)]: [], 'jwt:untagged': [], [x(shared)]: ['server-b'], [x(b1)]: ['server-b'], 'jwt:b-jwt': ['server-b'], [x(a2)]: ['server-a'], 'jwt:a-jwt-2': ['server-a'],
        });

        // An owner adopting an untagged key it publishes; a merge without owner keeps tags.
        await ds.mergeBundle({ trustDomain: TD, owner: 'server-b', add: [{ jwk: b1.jwk }, { jwk: shared.jwk }, { jwk: jb }, { jwk: u.jwk }] });
        await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: u.jwk, tainted: true }] });
        expect((await ownersIn())[x(u)]).toEqual(['server-b']);
        expect((await storedKeys(ds)).tainted).toEqual([x(u)]);
        // An owner publishing nothing: everything only it tagged goes.
        await ds.mergeBundle({ trustDomain: TD, owner: 'server-b' });
        expect(Object.keys(await ownersIn()).sort()).toEqual([x(a2), 'jwt:a-jwt-2', 'jwt:untagged'].sort());

        // Never every X.509 authority: the owner's last one stays, still tagged, until it publishes another.
        await ds.mergeBundle({ trustDomain: 'solo.org', owner: 'server-c', add: [{ jwk: x509Authority({ trustDomain: 'solo.org' }).jwk }] });
        expect((await ds.mergeBundle({ trustDomain: 'solo.org', owner: 'server-c', add: [{ jwk: jwtAuthority('c-jwt') }] })).changed).toBe(true);
        const solo = JSON.parse((await ds.getBundle('solo.org'))!.bundle) as { keys: { use: string; mayfly_owners?: string[] }[] };
        expect(solo.keys.map((k) => [k.use, k.mayfly_owners])).toEqual([['x509-svid', ['server-c']], ['jwt-svid', ['server-c']]]);
        const c2 = x509Authority({ trustDomain: 'solo.org' });
        await ds.mergeBundle({ trustDomain: 'solo.org', owner: 'server-c', add: [{ jwk: c2.jwk }] });
        expect((await storedKeys(ds, 'solo.org')).ids).toEqual([x(c2)]);

        expect(await codeOf(ds.mergeBundle({ trustDomain: TD, owner: '', add: [] }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.mergeBundle({ trustDomain: TD, owner: 'a"b', add: [] }))).toBe('ERR_DATASTORE_INVALID');
        expect(await codeOf(ds.mergeBundle({ trustDomain: TD, owner: 'x'.repeat(129), add: [] }))).toBe('ERR_DATASTORE_INVALID');
      });

      it('loses nothing when two owners replace their sets concurrently', async () => {
        const other = h.sibling === undefined ? ds : await h.sibling();
        const rounds = 8;
        const set = (o: string, r: number): BundleAuthority[] => [{ jwk: jwtAuthority(`${o}-${r}-x`) }, { jwk: jwtAuthority(`${o}-${r}-y`) }];
        const last = { p: set('p', 100), q: set('q', 100) };
        await ds.mergeBundle({ trustDomain: TD, add: [{ jwk: x509Authority().jwk }, { jwk: jwtAuthority('untagged') }] });
        // Each owner replaces its whole set every round, the two through different handles.
        await Promise.all(
          (['p', 'q'] as const).map(async (o) => {
            const mine = o === 'p' ? ds : other;
            for (let r = 0; r < rounds; r++) await mine.mergeBundle({ trustDomain: TD, owner: o, add: set(o, r) });
          }),
        );
        const ids = (await storedKeys(ds)).ids.filter((i) => i.startsWith('jwt:'));
        expect(ids).toEqual(['jwt:p-7-x', 'jwt:p-7-y', 'jwt:q-7-x', 'jwt:q-7-y', 'jwt:untagged']);
        // Interleaved single-round merges of both owners through both handles, many at once.
        const settled = await Promise.allSettled(
          Array.from({ length: 12 }, (_, i) => ((i % 2 === 0 ? ds : other) as Datastore).mergeBundle({ trustDomain: TD, owner: i % 2 === 0 ? 'p' : 'q', add: last[i % 2 === 0 ? 'p' : 'q'] })),
        );
        expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
        expect((await storedKeys(ds)).ids.filter((i) => i.startsWith('jwt:'))).toEqual(['jwt:p-100-x', 'jwt:p-100-y', 'jwt:q-100-x', 'jwt:q-100-y', 'jwt:untagged']);
      });

      it('round-trips the CA journal bytes', async () => {
        expect(await ds.getCaJournal()).toBeUndefined();
        const bytes = new Uint8Array(Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff));
        await ds.setCaJournal(bytes);
        expect(Buffer.from((await ds.getCaJournal())!)).toEqual(Buffer.from(bytes));
        await ds.setCaJournal(new Uint8Array([1, 2, 3]));
        expect([...(await ds.getCaJournal())!]).toEqual([1, 2, 3]);
      });
    });

    auditConformance(() => ({
      ds,
      ...(h.reopen !== undefined ? { reopen: async () => (ds = await h.reopen!()) } : {}),
      ...(h.sibling !== undefined ? { sibling: h.sibling } : {}),
    }));
    relationshipConformance({
      ds: () => ds,
      reopen: async () => {
        expect(h.reopen, `${name}: a persistent datastore's harness must supply reopen()`).toBeDefined();
        ds = await h.reopen!();
        return ds;
      },
      sibling: async () => (h.sibling === undefined ? undefined : h.sibling()),
    });
    governanceConformance({
      ds: () => ds,
      reopen: async () => {
        if (h.reopen === undefined) return undefined;
        await ds.close();
        ds = await h.reopen();
        return ds;
      },
    });
    describe('issued X509-SVIDs and revocations', () => {
      svidConformance(() => ({ ds, ...(h.reopen ? { reopen: h.reopen } : {}), setDs: (d) => (ds = d) }));
    });

    describe('lifecycle', () => {
      it('refuses calls after close', async () => {
        await ds.close();
        await ds.close();
        expect(await codeOf(ds.getEntry('x'))).toBe('ERR_DATASTORE_UNAVAILABLE');
        expect(await codeOf(ds.createEntry(entry(1)))).toBe('ERR_DATASTORE_UNAVAILABLE');
        expect(await codeOf(ds.consumeJoinToken('x', 1))).toBe('ERR_DATASTORE_UNAVAILABLE');
      });

      it('finishes writes already under way when closed', async () => {
        const doomed = await ds.createEntry(entry(100));
        await ds.createAgent({ spiffeId: agentId(1), attestationType: 'join_token', serialNumber: '01', certNotAfter: 5000 });
        await ds.createJoinToken({ token: 'late', expiresAt: 9000 });
        const writes: Promise<unknown>[] = Array.from({ length: 20 }, (_, i) => ds.createEntry(entry(i)));
        writes.push(ds.deleteEntry(doomed.entryId), ds.updateAgent(agentId(1), { banned: true }), ds.consumeJoinToken('late', 1));
        await ds.close();
        const settled = await Promise.allSettled(writes);
        expect(settled.filter((s) => s.status === 'rejected')).toEqual([]);
        expect(h.reopen, `${name}: a persistent datastore's harness must supply reopen()`).toBeDefined();
        ds = await h.reopen!();
        expect(await ds.countEntries()).toBe(20);
        expect(await ds.getEntry(doomed.entryId)).toBeUndefined();
        expect((await ds.getAgent(agentId(1)))!.banned).toBe(true);
      });

      it('keeps everything across close and reopen', async () => {
        expect(h.reopen, `${name}: a persistent datastore's harness must supply reopen()`).toBeDefined();
        const e1 = await ds.createEntry(entry(1, { selectors: [sel('unix', 'uid:1'), sel('k8s', 'ns:a')], federatesWith: ['other.org'] }));
        const e2 = await ds.updateEntry({ ...(await ds.createEntry(entry(2))), hint: 'v2' }, { expectedRevision: 0 });
        const gone = await ds.createEntry(entry(3));
        await ds.deleteEntry(gone.entryId);
        await ds.createAgent({ spiffeId: agentId(1), attestationType: 'join_token', serialNumber: '01', certNotAfter: 5000 });
        await ds.updateAgent(agentId(1), { banned: true });
        await ds.createJoinToken({ token: 'survivor', expiresAt: 9000 });
        await ds.createJoinToken({ token: 'spent', expiresAt: 9000 });
        await ds.consumeJoinToken('spent', 1);
        await ds.setBundle({ trustDomain: 'other.org', bundle: '{"keys":[]}', sequence: 4 });
        await ds.setCaJournal(new Uint8Array([9, 8, 7]));
        await ds.close();

        ds = await h.reopen!();
        expect(await ds.getEntry(e1.entryId)).toEqual(e1);
        expect(await ds.getEntry(e2.entryId)).toEqual(e2);
        expect(await ds.getEntry(gone.entryId)).toBeUndefined();
        expect(await ds.countEntries()).toBe(2);
        expect(await listAllIds(ds, { bySelectors: { selectors: [sel('k8s', 'ns:a')], match: 'any' } })).toEqual([e1.entryId]);
        expect(await listAllIds(ds, { bySpiffeId: e2.spiffeId })).toEqual([e2.entryId]);
        expect(await codeOf(ds.createEntry(entry(1, { selectors: e1.selectors })))).toBe('ERR_DATASTORE_ALREADY_EXISTS');
        expect(await ds.getAgent(agentId(1))).toMatchObject({ banned: true, serialNumber: '01' });
        expect(await ds.countAgents()).toBe(1);
        expect(await codeOf(ds.consumeJoinToken('spent', 1))).toBe('ERR_JOIN_TOKEN_INVALID');
        expect((await ds.consumeJoinToken('survivor', 1)).token).toBe('survivor');
        expect((await ds.getBundle('other.org'))!.sequence).toBe(4);
        expect([...(await ds.getCaJournal())!]).toEqual([9, 8, 7]);
      });
    });
  });
}

/** A DataStore plugin's fixture, as its folder's `testing.ts` keeps it for the server's catalog test. */
export interface DataStoreFixture {
  readonly binary: 'server';
  readonly kind: 'DataStore';
  readonly name: string;
  readonly label?: string;
  /** Before and after the suite (e.g. start and stop a database server). */
  beforeAll?(): Promise<void>;
  afterAll?(): Promise<void>;
  /** A fresh, empty store: the HCL inside its `plugin_data { }`, the server's data directory, and how to remove it. */
  freshStore(): Promise<{ pluginData: string; dataDir: string; drop(): Promise<void> }>;
  deps(): object;
}
