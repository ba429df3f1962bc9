/**
 * @module datastore/svid-records
 *
 * The checks both stores apply to issued-X509-SVID and revocation records (issue 10), so
 * nothing invalid is stored and a bad serial or reason is refused the same way everywhere.
 */
import { checkTime, invalid } from './records.js';
import type { ListX509SvidIssuancesQuery, X509SvidIssuance } from './datastore.js';

export const MAX_SVID_BATCH = 10_000;
export const MAX_SVID_LISTING = 100_000;

/** Lowercase hex, whole bytes, 1 to 21 of them (a 20-octet serial plus a sign pad). */
const SERIAL_HEX = /^(?:[0-9a-f]{2}){1,21}$/;
/** RFC 5280 CRLReason names Mayfly revokes with (every one but certificateHold and removeFromCRL). */
const REASONS = new Set(['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn', 'aACompromise']);

export function checkSerialHex(v: unknown, what = 'serialHex'): string {
  if (typeof v !== 'string' || !SERIAL_HEX.test(v)) throw invalid(`${what} must be lowercase hex of 1 to 21 whole bytes`);
  return v;
}

function checkText(v: unknown, what: string, allowEmpty: boolean, max = 2048): string {
  if (typeof v !== 'string' || (!allowEmpty && v === '') || v.length > max) throw invalid(`${what} must be a string of ${allowEmpty ? 0 : 1} to ${max} characters`);
  return v;
}

export function checkIssuance(i: X509SvidIssuance): X509SvidIssuance {
  if (typeof i !== 'object' || i === null) throw new TypeError('an X509-SVID issuance must be an object');
  return {
    serialHex: checkSerialHex(i.serialHex),
    spiffeId: checkText(i.spiffeId, 'spiffeId', false),
    entryId: checkText(i.entryId, 'entryId', true, 255),
    authorityId: checkText(i.authorityId, 'authorityId', false, 255),
    notAfter: checkTime(i.notAfter, 'notAfter'),
    // '' and absent are one value: stored as absent, so both stores read back the same record.
    ...(i.agentId !== undefined && checkText(i.agentId, 'agentId', true) !== '' ? { agentId: i.agentId } : {}),
  };
}

export function checkBatch<T>(items: readonly T[], what: string): readonly T[] {
  if (!Array.isArray(items)) throw new TypeError(`${what} must be an array`);
  if (items.length === 0 || items.length > MAX_SVID_BATCH) throw invalid(`${what} must hold 1 to ${MAX_SVID_BATCH} items`);
  return items;
}

export function checkRevocation(r: { serialHex: string; revokedAt: number; reason: string }): { serialHex: string; revokedAt: number; reason: string } {
  if (typeof r !== 'object' || r === null) throw new TypeError('a revocation must be an object');
  if (typeof r.reason !== 'string' || !REASONS.has(r.reason)) throw invalid(`reason ${JSON.stringify(r.reason)} is not one of ${[...REASONS].join(', ')}`);
  return { serialHex: checkSerialHex(r.serialHex), revokedAt: checkTime(r.revokedAt, 'revokedAt'), reason: r.reason };
}

export function checkIssuanceQuery(q: ListX509SvidIssuancesQuery): { by: 'spiffeId' | 'entryId' | 'agentId'; value: string; notExpiredAt: number } {
  if (typeof q !== 'object' || q === null) throw new TypeError('the query must be an object');
  const given = [q.bySpiffeId, q.byEntryId, q.byAgentId].filter((v) => v !== undefined).length;
  if (given !== 1) throw invalid('give exactly one of bySpiffeId, byEntryId and byAgentId');
  const notExpiredAt = q.notExpiredAt === undefined ? 0 : checkTime(q.notExpiredAt, 'notExpiredAt');
  if (q.bySpiffeId !== undefined) return { by: 'spiffeId', value: checkText(q.bySpiffeId, 'bySpiffeId', false), notExpiredAt };
  if (q.byEntryId !== undefined) return { by: 'entryId', value: checkText(q.byEntryId, 'byEntryId', false, 255), notExpiredAt };
  return { by: 'agentId', value: checkText(q.byAgentId, 'byAgentId', false), notExpiredAt };
}
