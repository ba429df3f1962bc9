/**
 * @module datastore/audit-checks
 *
 * The checks both stores run on audit ledger calls, so neither can store a record the other
 * would refuse, and the one link check that keeps a buggy or hostile `AuditLink` from
 * writing a hash verification could never match.
 */
import type { AuditLink, AuditRecordRow } from './datastore.js';
import { DatastoreError } from './records.js';

export const MAX_AUDIT_BODY_BYTES = 64 * 1024;
export const MAX_AUDIT_APPEND = 10_000;
export const DEFAULT_AUDIT_LIMIT = 500;
export const MAX_AUDIT_LIMIT = 1000;

const HASH_RE = /^[0-9a-f]{64}$/;

export function checkAuditBodies(bodies: unknown, link: unknown): readonly string[] {
  if (!Array.isArray(bodies)) throw new TypeError('audit bodies must be an array of strings');
  if (typeof link !== 'function') throw new TypeError('audit link must be a function');
  if (bodies.length === 0 || bodies.length > MAX_AUDIT_APPEND) {
    throw new DatastoreError('ERR_DATASTORE_INVALID', `an audit append holds 1 to ${MAX_AUDIT_APPEND} records; got ${bodies.length}`);
  }
  for (const b of bodies) {
    if (typeof b !== 'string' || b.length === 0) throw new DatastoreError('ERR_DATASTORE_INVALID', 'an audit record body must be a non-empty string');
    if (Buffer.byteLength(b, 'utf8') > MAX_AUDIT_BODY_BYTES) throw new DatastoreError('ERR_DATASTORE_INVALID', `an audit record body is larger than ${MAX_AUDIT_BODY_BYTES} bytes`);
  }
  return bodies as readonly string[];
}

/** `ERR_DATASTORE_CONFLICT` unless the last record is `opts.expectedLastSeq` (when given; 0 = none). */
export function checkExpectedLast(last: Pick<AuditRecordRow, 'seq'> | undefined, opts: { expectedLastSeq?: number }): void {
  if (opts.expectedLastSeq === undefined) return;
  checkAuditSeq(opts.expectedLastSeq, 'expectedLastSeq');
  const seq = last?.seq ?? 0;
  if (seq !== opts.expectedLastSeq) throw new DatastoreError('ERR_DATASTORE_CONFLICT', `the audit ledger's last record is ${seq}, not ${opts.expectedLastSeq}`);
}

/** Links `bodies` after `last` (undefined: the chain is empty). */
export function linkAuditRecords(last: Pick<AuditRecordRow, 'seq' | 'hash'> | undefined, bodies: readonly string[], link: AuditLink): AuditRecordRow[] {
  let seq = last?.seq ?? 0;
  let prevHash = last?.hash ?? '';
  return bodies.map((body) => {
    seq += 1;
    const hash = link(seq, prevHash, body);
    if (typeof hash !== 'string' || !HASH_RE.test(hash)) throw new TypeError('audit link must return 64 lowercase hex characters');
    const row = { seq, prevHash, hash, body };
    prevHash = hash;
    return row;
  });
}

export function checkAuditQuery(q: { afterSeq?: unknown; limit?: unknown } | undefined): { afterSeq: number; limit: number } {
  const afterSeq = q?.afterSeq ?? 0;
  const limit = q?.limit ?? DEFAULT_AUDIT_LIMIT;
  if (typeof afterSeq !== 'number' || !Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new DatastoreError('ERR_DATASTORE_INVALID', 'afterSeq must be an integer >= 0');
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT) {
    throw new DatastoreError('ERR_DATASTORE_INVALID', `limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}`);
  }
  return { afterSeq, limit };
}

export function checkAuditSeq(seq: unknown, what: string): number {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new DatastoreError('ERR_DATASTORE_INVALID', `${what} must be an integer >= 0`);
  return seq;
}
