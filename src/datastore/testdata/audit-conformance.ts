/**
 * @module datastore/testdata/audit-conformance
 *
 * The audit-ledger part of the datastore conformance suite (`../conformance.ts` runs it):
 * appends chain without gaps, survive reopening, never fork under concurrent appends (through
 * a sibling handle where the store has one), list in order, and prune without losing the head.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isMayflyError, type ErrorCode } from '../../spiffe/errors.js';
import type { AuditLink, Datastore, X509SvidIssuance } from '../datastore.js';

interface Handle {
  ds: Datastore;
  reopen?: () => Promise<Datastore>;
  sibling?: () => Promise<Datastore>;
}

export const testLink: AuditLink = (seq, prevHash, body) => createHash('sha256').update(`${seq}\n${prevHash}\n${body}`).digest('hex');

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (isMayflyError(err)) return err.code;
    throw err;
  }
}

async function all(ds: Datastore): Promise<Awaited<ReturnType<Datastore['listAuditRecords']>>> {
  const out: Awaited<ReturnType<Datastore['listAuditRecords']>> = [];
  for (;;) {
    const page = await ds.listAuditRecords({ afterSeq: out.at(-1)?.seq ?? 0, limit: 7 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}

/** Checks that `rows` are one unbroken chain from `first`. */
function expectChain(rows: Awaited<ReturnType<Datastore['listAuditRecords']>>, first = 1): void {
  rows.forEach((r, i) => {
    expect(r.seq).toBe(first + i);
    if (i > 0) expect(r.prevHash).toBe(rows[i - 1]!.hash);
    expect(r.hash).toBe(testLink(r.seq, r.prevHash, r.body));
  });
}

export function auditConformance(h: () => Handle): void {
  describe('audit ledger', () => {
    it('appends in order, chained from an empty first link, and lists in pages', async () => {
      const { ds } = h();
      expect(await ds.lastAuditRecord()).toBeUndefined();
      const a = await ds.appendAuditRecords(['{"n":1}', '{"n":2}'], testLink);
      expect(a.map((r) => r.seq)).toEqual([1, 2]);
      expect(a[0]!.prevHash).toBe('');
      await ds.appendAuditRecords(Array.from({ length: 20 }, (_, i) => `{"n":${i + 3}}`), testLink);
      const rows = await all(ds);
      expect(rows).toHaveLength(22);
      expectChain(rows);
      expect(rows.map((r) => r.body)).toEqual(Array.from({ length: 22 }, (_, i) => `{"n":${i + 1}}`));
      expect((await ds.lastAuditRecord())!.seq).toBe(22);
      expect(await ds.listAuditRecords({ afterSeq: 20 })).toHaveLength(2);
    });

    it('refuses bad input without writing anything', async () => {
      const { ds } = h();
      expect(await codeOf(ds.appendAuditRecords([], testLink))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.appendAuditRecords([''], testLink))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.appendAuditRecords(['x'.repeat(64 * 1024 + 1)], testLink))).toBe('ERR_DATASTORE_INVALID');
      await expect(ds.appendAuditRecords(['{}'], () => 'not a hash')).rejects.toThrow(TypeError);
      expect(await codeOf(ds.listAuditRecords({ limit: 0 }))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.listAuditRecords({ afterSeq: -1 }))).toBe('ERR_DATASTORE_INVALID');
      expect(await ds.lastAuditRecord()).toBeUndefined();
    });

    it('never forks: concurrent appends (from two servers where the store is shared) make one chain', async () => {
      const { ds, sibling } = h();
      const other = sibling === undefined ? ds : await sibling();
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) writes.push((i % 2 === 0 ? ds : other).appendAuditRecords([`{"w":${i},"k":0}`, `{"w":${i},"k":1}`], testLink));
      await Promise.all(writes);
      const rows = await all(ds);
      expect(rows).toHaveLength(40);
      expectChain(rows);
      // Each append's records stay together.
      for (let i = 0; i < 40; i += 2) expect(JSON.parse(rows[i]!.body).w).toBe(JSON.parse(rows[i + 1]!.body).w);
    });

    it('appends after an expected last record only while it is still the last', async () => {
      const { ds } = h();
      await ds.appendAuditRecords(['{"n":1}'], testLink, { expectedLastSeq: 0 });
      expect(await codeOf(ds.appendAuditRecords(['{"n":2}'], testLink, { expectedLastSeq: 0 }))).toBe('ERR_DATASTORE_CONFLICT');
      await ds.appendAuditRecords(['{"n":2}'], testLink, { expectedLastSeq: 1 });
      expect((await all(ds)).map((r) => r.body)).toEqual(['{"n":1}', '{"n":2}']);
    });

    it('writes issuance records given with an append in the same write, and neither when the append is refused', async () => {
      const { ds } = h();
      const issuance = (serialHex: string): X509SvidIssuance => ({ serialHex, spiffeId: 'spiffe://example.org/w', entryId: 'e1', authorityId: 'ab', notAfter: 4_000_000_000 });
      await ds.appendAuditRecords(['{"n":1}', '{"n":2}'], testLink, { x509Issuances: [issuance('0a01'), issuance('0a02')] });
      expect(await ds.getX509SvidIssuance('0a01')).toEqual(issuance('0a01'));
      expect((await ds.listX509SvidIssuances({ byEntryId: 'e1', notExpiredAt: 0 })).map((i) => i.serialHex)).toEqual(['0a01', '0a02']);
      // A conflicting append (a stale expected head) writes neither its records nor its issuances.
      expect(await codeOf(ds.appendAuditRecords(['{"n":3}'], testLink, { expectedLastSeq: 1, x509Issuances: [issuance('0a03')] }))).toBe('ERR_DATASTORE_CONFLICT');
      expect(await ds.getX509SvidIssuance('0a03')).toBeUndefined();
      // A bad issuance refuses the whole append.
      expect(await codeOf(ds.appendAuditRecords(['{"n":3}'], testLink, { x509Issuances: [issuance('not hex')] }))).toBe('ERR_DATASTORE_INVALID');
      expect((await all(ds)).map((r) => r.body)).toEqual(['{"n":1}', '{"n":2}']);
    });

    it('prunes before a seq but never the last record, and keeps the chain going', async () => {
      const { ds } = h();
      await ds.appendAuditRecords(Array.from({ length: 10 }, (_, i) => `{"n":${i + 1}}`), testLink);
      expect(await ds.pruneAuditRecords(6)).toBe(5);
      expect((await all(ds)).map((r) => r.seq)).toEqual([6, 7, 8, 9, 10]);
      expect(await ds.pruneAuditRecords(1000)).toBe(4);
      expect((await all(ds)).map((r) => r.seq)).toEqual([10]);
      const [next] = await ds.appendAuditRecords(['{"n":11}'], testLink);
      expect(next).toMatchObject({ seq: 11, prevHash: (await all(ds))[0]!.hash });
    });

    it('keeps every acknowledged record across close and reopen', async () => {
      const handle = h();
      expect(handle.reopen).toBeDefined();
      await handle.ds.appendAuditRecords(['{"a":1}', '{"a":2}'], testLink);
      const before = await all(handle.ds);
      await handle.ds.close();
      const ds = await handle.reopen!();
      expect(await all(ds)).toEqual(before);
      await ds.appendAuditRecords(['{"a":3}'], testLink);
      expectChain(await all(ds));
    });
  });
}
