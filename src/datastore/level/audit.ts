/**
 * @module datastore/level/audit
 *
 * The audit ledger on LevelDB: `L!<seq, 16 digits>` → `{prevHash, hash, body}`, appended
 * inside the write queue (so the head read and the batch that extends it cannot interleave
 * with another append) as one synced batch (so an acknowledged record is on disk, and a crash
 * leaves the chain either with the whole batch or without it).
 */
import type { AuditAppendOptions, AuditLink, AuditRecordRow } from '../datastore.js';
import { checkAuditBodies, checkExpectedLast, checkAuditQuery, checkAuditSeq, linkAuditRecords } from '../audit-checks.js';
import type { Op } from './keys.js';
import type { LevelStore } from './store.js';
import { checkIssuances, issuanceOps } from './svids.js';

const PREFIX = 'L!';
const END = 'L"';
const key = (seq: number): string => `${PREFIX}${String(seq).padStart(16, '0')}`;

function rowOf(k: string, v: string): AuditRecordRow {
  const r = JSON.parse(v) as { prevHash: string; hash: string; body: string };
  return { seq: Number(k.slice(PREFIX.length)), prevHash: r.prevHash, hash: r.hash, body: r.body };
}

async function last(s: LevelStore): Promise<AuditRecordRow | undefined> {
  for await (const [k, v] of s.db.iterator({ gte: PREFIX, lt: END, reverse: true, limit: 1 })) return rowOf(k, v);
  return undefined;
}

export async function appendAuditRecords(s: LevelStore, bodies: readonly string[], link: AuditLink, opts: AuditAppendOptions = {}): Promise<AuditRecordRow[]> {
  s.check();
  const checked = checkAuditBodies(bodies, link);
  const issuances = opts.x509Issuances === undefined || opts.x509Issuances.length === 0 ? [] : checkIssuances(opts.x509Issuances);
  return s.exclusive(async () => {
    const head = await last(s);
    checkExpectedLast(head, opts);
    const rows = linkAuditRecords(head, checked, link);
    const ops: Op[] = rows.map((r) => ({ type: 'put', key: key(r.seq), value: JSON.stringify({ prevHash: r.prevHash, hash: r.hash, body: r.body }) }));
    // The issuance records ride in the same synced batch: one sync, and never one without the other.
    if (issuances.length > 0) ops.push(...(await issuanceOps(s, issuances)));
    await s.write(ops);
    return rows;
  });
}

export async function listAuditRecords(s: LevelStore, query: { afterSeq?: number; limit?: number }): Promise<AuditRecordRow[]> {
  s.check();
  const q = checkAuditQuery(query);
  const out: AuditRecordRow[] = [];
  for await (const [k, v] of s.db.iterator({ gt: key(q.afterSeq), lt: END, limit: q.limit })) out.push(rowOf(k, v));
  return out;
}

export async function lastAuditRecord(s: LevelStore): Promise<AuditRecordRow | undefined> {
  s.check();
  return last(s);
}

export async function pruneAuditRecords(s: LevelStore, beforeSeq: number): Promise<number> {
  s.check();
  checkAuditSeq(beforeSeq, 'beforeSeq');
  return s.exclusive(async () => {
    const head = await last(s);
    if (head === undefined) return 0;
    const ops: Op[] = [];
    for await (const k of s.db.keys({ gte: PREFIX, lt: key(Math.min(beforeSeq, head.seq)) })) ops.push({ type: 'del', key: k });
    if (ops.length > 0) await s.write(ops);
    return ops.length;
  });
}
