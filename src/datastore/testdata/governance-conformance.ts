/**
 * @module datastore/testdata/governance-conformance
 *
 * The entry-governance part of the datastore conformance suite (issue 11): owners, labels
 * and purpose are stored, replaced by updates, survive a reopen, and filter listings
 * (alone, together and with the other filters, paged). conformance.ts calls it inside its
 * describe block, with the same fresh store per test.
 */
import { describe, expect, it } from 'vitest';
import type { EntryInput } from '../../registration/entry.js';
import { isMayflyError, type ErrorCode } from '../../spiffe/errors.js';
import type { Datastore, ListEntriesQuery, RegistrationEntry } from '../datastore.js';

const TD = 'example.org';
const parent = `spiffe://${TD}/spire/agent/join_token/node-1`;

function entry(n: number, over: Partial<EntryInput> = {}): EntryInput {
  return { spiffeId: `spiffe://${TD}/w/${n}`, parentId: parent, selectors: [{ type: 'unix', value: `uid:${n}` }], ...over };
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

async function listAll(ds: Datastore, q: ListEntriesQuery): Promise<string[]> {
  const out: RegistrationEntry[] = [];
  let pageToken = '';
  do {
    const page = await ds.listEntries({ ...q, pageSize: 2, ...(pageToken !== '' ? { pageToken } : {}) });
    out.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return out.map((e) => e.spiffeId.slice(`spiffe://${TD}/w/`.length)).sort();
}

/** `reopen` closes the store and opens it again; it resolves to undefined (closing nothing) for a store that does not persist. */
export function governanceConformance(h: { ds(): Datastore; reopen(): Promise<Datastore | undefined> }): void {
  describe('entry owners, labels and purpose (issue 11)', () => {
    it('stores them, defaults them, replaces them on update and keeps them across a reopen', async () => {
      let ds = h.ds();
      const plain = await ds.createEntry(entry(1));
      expect(plain).toMatchObject({ owner: '', labels: {}, purpose: '' });
      const e = await ds.createEntry(entry(2, { owner: 'team-payments', labels: { env: 'prod', 'app.kubernetes.io/name': 'web' }, purpose: 'serves the checkout API' }));
      expect(e).toMatchObject({ owner: 'team-payments', labels: { env: 'prod', 'app.kubernetes.io/name': 'web' }, purpose: 'serves the checkout API' });
      expect(await ds.getEntry(e.entryId)).toEqual(e);
      const u = await ds.updateEntry({ ...entry(2), entryId: e.entryId, owner: 'team-risk', labels: { env: 'staging' } }, { expectedRevision: 0 });
      expect(u).toMatchObject({ owner: 'team-risk', labels: { env: 'staging' }, purpose: '' });
      ds = (await h.reopen()) ?? ds;
      expect(await ds.getEntry(e.entryId)).toEqual(u);
      expect(await ds.getEntry(plain.entryId)).toEqual(plain);
      // The old owner and label no longer find it; the new ones do.
      expect(await listAll(ds, { byOwner: 'team-payments' })).toEqual([]);
      expect(await listAll(ds, { byLabels: { env: 'prod' } })).toEqual([]);
      expect(await listAll(ds, { byOwner: 'team-risk', byLabels: { env: 'staging' } })).toEqual(['2']);
    });

    it('filters by owner and by every label asked for, alone and with other filters, across pages', async () => {
      const ds = h.ds();
      const made = await ds.createEntries([
        entry(1, { owner: 'a', labels: { env: 'prod', tier: 'web' } }),
        entry(2, { owner: 'a', labels: { env: 'prod' } }),
        entry(3, { owner: 'a', labels: { env: 'dev', tier: 'web' } }),
        entry(4, { owner: 'b', labels: { env: 'prod', tier: 'web' } }),
        entry(5, { owner: 'a', parentId: `spiffe://${TD}/spire/agent/join_token/node-2` }),
        entry(6),
      ]);
      expect(made.every((r) => r.entry !== undefined)).toBe(true);
      expect(await listAll(ds, { byOwner: 'a' })).toEqual(['1', '2', '3', '5']);
      expect(await listAll(ds, { byOwner: 'b' })).toEqual(['4']);
      expect(await listAll(ds, { byOwner: 'nobody' })).toEqual([]);
      expect(await listAll(ds, { byLabels: { env: 'prod' } })).toEqual(['1', '2', '4']);
      expect(await listAll(ds, { byLabels: { env: 'prod', tier: 'web' } })).toEqual(['1', '4']);
      expect(await listAll(ds, { byLabels: { tier: 'web', env: 'dev' } })).toEqual(['3']);
      expect(await listAll(ds, { byOwner: 'a', byLabels: { env: 'prod' } })).toEqual(['1', '2']);
      expect(await listAll(ds, { byOwner: 'a', byParentId: parent })).toEqual(['1', '2', '3']);
      expect(await listAll(ds, { byLabels: { env: 'prod' }, bySelectors: { selectors: [{ type: 'unix', value: 'uid:4' }], match: 'superset' } })).toEqual(['4']);
      // A label value is compared whole: 'pro' is not 'prod', and 'env=prod' is not a key.
      expect(await listAll(ds, { byLabels: { env: 'pro' } })).toEqual([]);
    });

    it('merges usage batches (first/last issuance, count, bounded agents, last delivery) and keeps them across a reopen', async () => {
      let ds = h.ds();
      expect(await ds.listEntryUsage()).toEqual([]);
      await ds.recordEntryUsage([
        { entryId: 'e1', firstIssuedAt: 100, lastIssuedAt: 150, issuanceCount: 3, agents: ['a1', 'a2'] },
        { entryId: 'e2', lastDeliveredAt: 120 },
      ]);
      await ds.recordEntryUsage([{ entryId: 'e1', firstIssuedAt: 90, lastIssuedAt: 200, issuanceCount: 2, agents: ['a1', 'a3'], lastDeliveredAt: 210 }]);
      await Promise.all(Array.from({ length: 5 }, (_, i) => ds.recordEntryUsage([{ entryId: 'e3', firstIssuedAt: 10 + i, lastIssuedAt: 10 + i, issuanceCount: 1 }])));
      ds = (await h.reopen()) ?? ds;
      expect(await ds.listEntryUsage()).toEqual([
        { entryId: 'e1', firstIssuedAt: 90, lastIssuedAt: 200, issuanceCount: 5, agents: ['a2', 'a1', 'a3'], agentCount: 3, lastDeliveredAt: 210 },
        { entryId: 'e2', firstIssuedAt: 0, lastIssuedAt: 0, issuanceCount: 0, agents: [], agentCount: 0, lastDeliveredAt: 120 },
        { entryId: 'e3', firstIssuedAt: 10, lastIssuedAt: 14, issuanceCount: 5, agents: [], agentCount: 0, lastDeliveredAt: 0 },
      ]);
      for (let i = 0; i < 3; i++) await ds.recordEntryUsage([{ entryId: 'many', agents: Array.from({ length: 64 }, (_, j) => `agent-${i}-${j}`) }]);
      const many = (await ds.listEntryUsage()).find((u) => u.entryId === 'many')!;
      expect(many.agents).toHaveLength(64);
      expect(many.agentCount).toBe(192);
      expect(many.agents[63]).toBe('agent-2-63');
      expect(await codeOf(ds.recordEntryUsage([{ entryId: 'x', issuanceCount: -1 }]))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.recordEntryUsage([{ entryId: 'x' }, { entryId: 'x' }]))).toBe('ERR_DATASTORE_INVALID');
    });

    it('refuses over-long, hostile and too many owners, labels and purposes, storing nothing', async () => {
      const ds = h.ds();
      const bad: [string, Partial<EntryInput>][] = [
        ['owner', { owner: 'o'.repeat(257) }],
        ['owner', { owner: 'é'.repeat(129) }],
        ['owner', { owner: 'a\nb' }],
        ['labels', { labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }],
        ['labels["__proto__"]', { labels: JSON.parse('{"__proto__":"x"}') as Record<string, string> }],
        ['labels["a=b"]', { labels: { 'a=b': 'c' } }],
        ['labels[""]', { labels: { '': 'v' } }],
        [`labels["${'k'.repeat(64)}"]`, { labels: { ['k'.repeat(64)]: 'v' } }],
        ['labels["k"]', { labels: { k: 'v'.repeat(257) } }],
        ['labels["k"]', { labels: { k: 'tab\there' } }],
        ['labels', { labels: ['env=prod'] as unknown as Record<string, string> }],
        ['purpose', { purpose: 'p'.repeat(1025) }],
        ['purpose', { purpose: '\u0000' }],
      ];
      for (const [field, over] of bad) {
        let caught: unknown;
        await ds.createEntry(entry(1, over)).catch((err: unknown) => (caught = err));
        expect(isMayflyError(caught, 'ERR_ENTRY_INVALID'), `${field}: ${String(caught)}`).toBe(true);
        expect((caught as Error).message).toContain(field);
      }
      // The bounds themselves are accepted.
      const edge = await ds.createEntry(
        entry(2, { owner: 'o'.repeat(256), purpose: 'p'.repeat(1024), labels: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v'.repeat(256)])) }),
      );
      expect(Object.keys(edge.labels)).toHaveLength(32);
      expect(await ds.countEntries()).toBe(1);
      expect(await codeOf(ds.listEntries({ byOwner: '' }))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.listEntries({ byLabels: {} }))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.listEntries({ byLabels: { 'bad key': 'v' } }))).toBe('ERR_DATASTORE_INVALID');
    });
  });
}
