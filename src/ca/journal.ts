/**
 * @module ca/journal
 *
 * The CA journal's byte format: versioned JSON holding, per kind, every authority the CA
 * still knows (id, key id, certificate or public key, validity, status, taint) and the
 * bundle sequence. Keys themselves never enter the journal; they stay in the key manager.
 *
 * Decoding is strict: a journal that does not parse is an operator problem to look at, not
 * something to paper over by minting a new CA (which would change the bundle under every
 * agent's feet).
 */
import { MayflyError } from '../spiffe/errors.js';
import type { CaErrorCode } from './ca-error.js';
import type { AuthorityStatus } from './authority.js';

export const JOURNAL_VERSION = 1;

export interface X509JournalEntry {
  id: string;
  keyId: string;
  /** DER, base64 */
  certificate: string;
  status: AuthorityStatus;
  tainted: boolean;
  upstreamAuthorityId?: string;
}

export interface JwtJournalEntry {
  id: string;
  keyId: string;
  /** SPKI DER, base64 */
  publicKey: string;
  notBefore: string;
  notAfter: string;
  status: AuthorityStatus;
  tainted: boolean;
}

export interface JournalData {
  version: number;
  trustDomain: string;
  sequence: number;
  /** SHA-256 of what the bundle held at save time: a restart bumps the sequence only if that changes. */
  bundleDigest: string;
  x509: X509JournalEntry[];
  jwt: JwtJournalEntry[];
}

export class CaJournalError extends MayflyError<CaErrorCode> {}

const STATUSES: readonly string[] = ['prepared', 'active', 'old'];

export function encodeJournal(data: JournalData): Uint8Array {
  return Buffer.from(JSON.stringify(data, null, 2) + '\n', 'utf8');
}

function bad(why: string): never {
  throw new CaJournalError(
    'ERR_CA_JOURNAL_INVALID',
    `the CA journal is unreadable (${why}); restore it from backup, or delete it to start a new CA (agents will need the new bundle)`,
  );
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') bad(`${what} is not a non-empty string`);
  return v;
}

function common(e: Record<string, unknown>, what: string): { id: string; keyId: string; status: AuthorityStatus; tainted: boolean } {
  const status = str(e.status, `${what}.status`);
  if (!STATUSES.includes(status)) bad(`${what}.status is ${JSON.stringify(status)}`);
  if (typeof e.tainted !== 'boolean') bad(`${what}.tainted is not a boolean`);
  return { id: str(e.id, `${what}.id`), keyId: str(e.keyId, `${what}.keyId`), status: status as AuthorityStatus, tainted: e.tainted };
}

function list(v: unknown, what: string): Record<string, unknown>[] {
  if (!Array.isArray(v)) bad(`${what} is not a list`);
  return v.map((e, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) bad(`${what}[${i}] is not an object`);
    return e as Record<string, unknown>;
  });
}

export function decodeJournal(bytes: Uint8Array): JournalData {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    bad('not JSON');
  }
  if (typeof raw !== 'object' || raw === null) bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.version !== JOURNAL_VERSION) bad(`version ${JSON.stringify(o.version)} is not ${JOURNAL_VERSION}`);
  if (!Number.isSafeInteger(o.sequence) || (o.sequence as number) < 0) bad('sequence is not a non-negative integer');
  const x509 = list(o.x509, 'x509').map((e, i): X509JournalEntry => {
    const c = common(e, `x509[${i}]`);
    const out: X509JournalEntry = { ...c, certificate: str(e.certificate, `x509[${i}].certificate`) };
    if (e.upstreamAuthorityId !== undefined) out.upstreamAuthorityId = str(e.upstreamAuthorityId, `x509[${i}].upstreamAuthorityId`);
    return out;
  });
  const jwt = list(o.jwt, 'jwt').map((e, i): JwtJournalEntry => {
    const c = common(e, `jwt[${i}]`);
    const notBefore = str(e.notBefore, `jwt[${i}].notBefore`);
    const notAfter = str(e.notAfter, `jwt[${i}].notAfter`);
    if (Number.isNaN(Date.parse(notBefore)) || Number.isNaN(Date.parse(notAfter))) bad(`jwt[${i}] has an invalid date`);
    return { ...c, publicKey: str(e.publicKey, `jwt[${i}].publicKey`), notBefore, notAfter };
  });
  return { version: JOURNAL_VERSION, trustDomain: str(o.trustDomain, 'trustDomain'), sequence: o.sequence as number, bundleDigest: str(o.bundleDigest, 'bundleDigest'), x509, jwt };
}
