/**
 * @module datastore/records
 *
 * Validation and helpers every datastore implementation shares, so they all accept and
 * reject exactly the same input: the error class, agent / join token / bundle checks,
 * page size and page token handling, and the set-match semantics of entry filters.
 *
 * Threat: the datastore is the last stop before disk. Anything unbounded here (a
 * megabyte agent selector list, a 1 GB bundle, a page size of 10^9, a forged page token)
 * becomes a memory or storage exhaustion for every later reader, so every record and
 * query is bounded and checked before it is written or run.
 */
import { MayflyError } from '../spiffe/errors.js';
import { MAX_SPIFFE_ID_LENGTH, SpiffeId, TrustDomain } from '../spiffe/id.js';
import { formatSelector, selectorTypeProblem, selectorValueProblem, type Selector } from '../registration/selector.js';
import { labelKeyProblem, labelValueProblem, MAX_ENTRY_LABELS, MAX_ENTRY_OWNER_LENGTH, type RegistrationEntry } from '../registration/entry.js';
import { isTemplateId } from '../registration/template.js';
import type { AgentUpdate, FederationProfileName, ListEntriesQuery, NewAgent, NewFederationRelationship, SetMatch } from './datastore.js';
import type { DatastoreErrorCode } from './datastore-error.js';

/** A datastore failure. `existingEntryId` is set on ALREADY_EXISTS for entries. */
export class DatastoreError extends MayflyError<DatastoreErrorCode> {
  readonly existingEntryId?: string;
  constructor(code: DatastoreErrorCode, message: string, opts: { cause?: unknown; existingEntryId?: string } = {}) {
    super(code, message, opts.cause === undefined ? undefined : { cause: opts.cause });
    if (opts.existingEntryId !== undefined) this.existingEntryId = opts.existingEntryId;
  }
}

export const DEFAULT_PAGE_SIZE = 500;
export const MAX_PAGE_SIZE = 1000;
export const MAX_BATCH_CREATE = 10_000;
export const MAX_QUERY_SET = 256;
export const MAX_PARENT_IDS = 1024;
export const MAX_AGENT_SELECTORS = 256;
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;
export const MAX_CA_JOURNAL_BYTES = 16 * 1024 * 1024;
export const MAX_JOIN_TOKEN_LENGTH = 256;
const MAX_SERIAL_LENGTH = 128;
/** 9999-12-31T23:59:59Z. */
const MAX_TIME = 253_402_300_799;

export function invalid(message: string): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_INVALID', message);
}

/** Resolves the page size: undefined → default; otherwise an integer 1..1000 or ERR_DATASTORE_INVALID. */
export function checkPageSize(pageSize: unknown): number {
  if (pageSize === undefined) return DEFAULT_PAGE_SIZE;
  if (typeof pageSize !== 'number' || !Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw invalid(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE} (got ${String(pageSize).slice(0, 40)}); omit it for the default of ${DEFAULT_PAGE_SIZE}`);
  }
  return pageSize;
}

/**
 * Page tokens carry the last key returned, plus a tag naming what was listed so a token
 * from one listing is not silently accepted by another.
 */
export function encodePageToken(kind: string, after: string): string {
  return Buffer.from(JSON.stringify({ v: 1, k: kind, a: after }), 'utf8').toString('base64url');
}

/** The `after` key of a token made by encodePageToken for `kind`; undefined for ''/absent. */
export function decodePageToken(kind: string, token: unknown): string | undefined {
  if (token === undefined || token === '') return undefined;
  const bad = (): DatastoreError => invalid('pageToken is not a token this listing issued; start again without one');
  if (typeof token !== 'string' || token.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const p = parsed as { v?: unknown; k?: unknown; a?: unknown };
  if (typeof p !== 'object' || p === null || p.v !== 1 || p.k !== kind || typeof p.a !== 'string' || p.a.length === 0) throw bad();
  return p.a;
}

function checkSelectorList(list: unknown, what: string, max: number, allowEmpty: boolean): Selector[] {
  if (!Array.isArray(list)) throw invalid(`${what} must be an array of selectors`);
  if (!allowEmpty && list.length === 0) throw invalid(`${what} must hold at least one selector`);
  if (list.length > max) throw invalid(`${what} holds ${list.length} selectors; the limit is ${max}`);
  const out: Selector[] = [];
  for (let i = 0; i < list.length; i++) {
    const s = list[i] as { type?: unknown; value?: unknown } | null;
    if (typeof s !== 'object' || s === null) throw new MayflyError('ERR_SELECTOR_INVALID', `${what}[${i}] must be an object { type, value }`);
    const p = selectorTypeProblem(s.type) ?? selectorValueProblem(s.value);
    if (p !== undefined) throw new MayflyError('ERR_SELECTOR_INVALID', `${what}[${i}] is invalid: ${p}`);
    out.push({ type: s.type as string, value: s.value as string });
  }
  return out;
}

function checkSpiffeIdArg(v: unknown, what: string): string {
  if (typeof v !== 'string') throw invalid(`${what} must be a SPIFFE ID string`);
  // An entry template's ID (registration/template) is matched as stored.
  if (isTemplateId(v) && what === 'bySpiffeId' && Buffer.byteLength(v, 'utf8') <= MAX_SPIFFE_ID_LENGTH) return v;
  try {
    SpiffeId.parse(v);
  } catch (err) {
    throw invalid(`${what} is not a valid SPIFFE ID: ${(err as Error).message}`);
  }
  return v;
}

function checkTime(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TIME) {
    throw invalid(`${what} must be integer unix seconds from 0 to ${MAX_TIME}`);
  }
  return v;
}

const SET_MATCHES: readonly SetMatch[] = ['exact', 'subset', 'superset', 'any'];

/** A listEntries query with every part checked. */
export interface CheckedEntryQuery {
  bySpiffeId?: string;
  byParentId?: string;
  bySelectors?: { keys: string[]; match: SetMatch };
  byFederatesWith?: { keys: string[]; match: SetMatch };
  byOwner?: string;
  /** `key=value` for each label asked for (keys cannot hold '='), ascending. */
  byLabels?: string[];
  pageSize: number;
  after?: string;
}

export const ENTRY_PAGE_KIND = 'entries';

export function checkEntryQuery(q: ListEntriesQuery | undefined): CheckedEntryQuery {
  const query = q ?? {};
  if (typeof query !== 'object' || query === null) throw new TypeError('listEntries query must be an object');
  const out: CheckedEntryQuery = { pageSize: checkPageSize(query.pageSize) };
  const after = decodePageToken(ENTRY_PAGE_KIND, query.pageToken);
  if (after !== undefined) out.after = after;
  if (query.bySpiffeId !== undefined) out.bySpiffeId = checkSpiffeIdArg(query.bySpiffeId, 'bySpiffeId');
  if (query.byParentId !== undefined) out.byParentId = checkSpiffeIdArg(query.byParentId, 'byParentId');
  if (query.bySelectors !== undefined) {
    const { selectors, match } = query.bySelectors;
    if (!SET_MATCHES.includes(match)) throw invalid(`bySelectors.match must be one of ${SET_MATCHES.join(', ')}`);
    const sels = checkSelectorList(selectors, 'bySelectors.selectors', MAX_QUERY_SET, false);
    out.bySelectors = { keys: [...new Set(sels.map(formatSelector))], match };
  }
  if (query.byFederatesWith !== undefined) {
    const { trustDomains, match } = query.byFederatesWith;
    if (!SET_MATCHES.includes(match)) throw invalid(`byFederatesWith.match must be one of ${SET_MATCHES.join(', ')}`);
    if (!Array.isArray(trustDomains) || trustDomains.length === 0 || trustDomains.length > MAX_QUERY_SET) {
      throw invalid(`byFederatesWith.trustDomains must hold 1 to ${MAX_QUERY_SET} trust domain names`);
    }
    for (const td of trustDomains) checkTrustDomainArg(td, 'byFederatesWith.trustDomains');
    out.byFederatesWith = { keys: [...new Set(trustDomains)], match };
  }
  if (query.byOwner !== undefined) {
    if (typeof query.byOwner !== 'string' || query.byOwner === '' || query.byOwner.includes('\0') || Buffer.byteLength(query.byOwner) > MAX_ENTRY_OWNER_LENGTH) {
      throw invalid(`byOwner must be a non-empty owner of at most ${MAX_ENTRY_OWNER_LENGTH} bytes`);
    }
    out.byOwner = query.byOwner;
  }
  if (query.byLabels !== undefined) {
    const labels = query.byLabels;
    if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw invalid('byLabels must be an object of key: value strings');
    const keys = Object.keys(labels);
    if (keys.length === 0 || keys.length > MAX_ENTRY_LABELS) throw invalid(`byLabels must hold 1 to ${MAX_ENTRY_LABELS} labels`);
    out.byLabels = keys.sort().map((k) => {
      const p = labelKeyProblem(k) ?? labelValueProblem(labels[k]);
      if (p !== undefined) throw invalid(`byLabels[${JSON.stringify(k.slice(0, 64))}] ${p}`);
      return labelPair(k, labels[k] as string);
    });
  }
  return out;
}

/** The `key=value` form labels are indexed and filtered by. */
export function labelPair(key: string, value: string): string {
  return `${key}=${value}`;
}

/** Whether `e` passes the owner and label filters of `q`. */
export function governanceMatches(e: Pick<RegistrationEntry, 'owner' | 'labels'>, q: Pick<CheckedEntryQuery, 'byOwner' | 'byLabels'>): boolean {
  if (q.byOwner !== undefined && e.owner !== q.byOwner) return false;
  if (q.byLabels !== undefined) {
    const have = new Set(Object.entries(e.labels ?? {}).map(([k, v]) => labelPair(k, v)));
    if (!q.byLabels.every((l) => have.has(l))) return false;
  }
  return true;
}

/**
 * Whether a record's set `have` satisfies `match` against the query set `want`
 * (both duplicate-free).
 */
export function setMatches(have: readonly string[], want: readonly string[], match: SetMatch): boolean {
  switch (match) {
    case 'exact': {
      if (have.length !== want.length) return false;
      const w = new Set(want);
      return have.every((h) => w.has(h));
    }
    case 'subset': {
      if (have.length === 0) return false;
      const w = new Set(want);
      return have.every((h) => w.has(h));
    }
    case 'superset': {
      const h = new Set(have);
      return want.every((x) => h.has(x));
    }
    case 'any': {
      const w = new Set(want);
      return have.some((h) => w.has(h));
    }
  }
}

export function checkParentIds(parentIds: unknown): string[] {
  if (!Array.isArray(parentIds) || parentIds.length === 0 || parentIds.length > MAX_PARENT_IDS) {
    throw invalid(`parentIds must hold 1 to ${MAX_PARENT_IDS} SPIFFE IDs`);
  }
  return [...new Set(parentIds.map((p, i) => checkSpiffeIdArg(p, `parentIds[${i}]`)))];
}

export function checkTrustDomainArg(v: unknown, what: string): string {
  if (typeof v !== 'string') throw invalid(`${what} must be a trust domain name string`);
  if (v.includes(':')) throw invalid(`${what} must be a bare trust domain name like "example.org"`);
  try {
    TrustDomain.parse(v);
  } catch (err) {
    throw invalid(`${what} is not a valid trust domain name: ${(err as Error).message}`);
  }
  return v;
}

const ATTESTATION_TYPE_RE = /^[a-z0-9_-]{1,64}$/;
const SERIAL_RE = /^[0-9a-fA-F]*$/;

/** Checks the fields of an agent update (or of a whole new agent when `full`). */
export function checkAgentFields(a: AgentUpdate, full: boolean): void {
  if (a.attestationType !== undefined || full) {
    if (typeof a.attestationType !== 'string' || !ATTESTATION_TYPE_RE.test(a.attestationType)) {
      throw invalid("agent attestationType must be 1..64 of lowercase letters, digits, '_' and '-'");
    }
  }
  if (a.serialNumber !== undefined || full) {
    if (typeof a.serialNumber !== 'string' || a.serialNumber.length > MAX_SERIAL_LENGTH || !SERIAL_RE.test(a.serialNumber)) {
      throw invalid(`agent serialNumber must be hex of at most ${MAX_SERIAL_LENGTH} characters ('' for none)`);
    }
  }
  if (a.certNotAfter !== undefined || full) checkTime(a.certNotAfter, 'agent certNotAfter');
  if (a.selectors !== undefined) checkSelectorList(a.selectors, 'agent selectors', MAX_AGENT_SELECTORS, true);
  if (a.banned !== undefined && typeof a.banned !== 'boolean') throw invalid('agent banned must be a boolean');
  if (a.canReattest !== undefined && typeof a.canReattest !== 'boolean') throw invalid('agent canReattest must be a boolean');
}

export function checkNewAgent(a: NewAgent): void {
  if (typeof a !== 'object' || a === null) throw new TypeError('agent must be an object');
  checkAgentSpiffeId(a.spiffeId);
  checkAgentFields(a, true);
}

export function checkAgentSpiffeId(id: unknown): string {
  if (typeof id !== 'string') throw invalid('agent spiffeId must be a SPIFFE ID string');
  try {
    SpiffeId.parseWorkload(id);
  } catch (err) {
    throw invalid(`agent spiffeId is not a valid SPIFFE ID: ${(err as Error).message}`);
  }
  return id;
}

export const AGENT_PAGE_KIND = 'agents';

export function checkAgentQuery(q: { byBanned?: unknown; byExpiredBefore?: unknown } | undefined): void {
  if (q?.byBanned !== undefined && typeof q.byBanned !== 'boolean') throw invalid('byBanned must be a boolean');
  if (q?.byExpiredBefore !== undefined) checkTime(q.byExpiredBefore, 'byExpiredBefore');
}

const TOKEN_RE = /^[\x21-\x7e]+$/;

export function checkJoinToken(token: unknown): string {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_JOIN_TOKEN_LENGTH || !TOKEN_RE.test(token)) {
    throw invalid(`join token must be 1..${MAX_JOIN_TOKEN_LENGTH} printable ASCII characters without spaces`);
  }
  return token;
}

export { checkTime };

export function checkBundleInput(b: { trustDomain: unknown; bundle: unknown; sequence: unknown }): void {
  if (typeof b !== 'object' || b === null) throw new TypeError('bundle must be an object');
  checkTrustDomainArg(b.trustDomain, 'bundle trustDomain');
  if (typeof b.bundle !== 'string' || b.bundle.length === 0) throw invalid('bundle must be the non-empty SPIFFE bundle JSON text');
  if (b.bundle.length > MAX_BUNDLE_BYTES || Buffer.byteLength(b.bundle, 'utf8') > MAX_BUNDLE_BYTES) {
    throw invalid(`bundle is larger than ${MAX_BUNDLE_BYTES} bytes`);
  }
  if (typeof b.sequence !== 'number' || !Number.isSafeInteger(b.sequence) || b.sequence < 0) {
    throw invalid('bundle sequence must be a non-negative integer');
  }
}

export function checkCaJournal(bytes: unknown): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('CA journal must be a Uint8Array');
  if (bytes.byteLength > MAX_CA_JOURNAL_BYTES) throw invalid(`CA journal is larger than ${MAX_CA_JOURNAL_BYTES} bytes`);
  return bytes;
}

/** Unix seconds from a Date. */
export function unixSeconds(d: Date): number {
  return Math.floor(d.getTime() / 1000);
}

export const RELATIONSHIP_PAGE_KIND = 'federation-relationships';
const MAX_ENDPOINT_URL_LENGTH = 2048;
const PROFILES: readonly FederationProfileName[] = ['https_web', 'https_spiffe'];

/**
 * Checks a federation relationship before it is stored: a bare trust domain, an
 * `https://host[:port]/path` URL (no userinfo, query, fragment, whitespace; ≤ 2048 bytes),
 * a known profile, and an endpoint SPIFFE ID exactly when the profile is `https_spiffe`.
 */
export function checkFederationRelationship(r: NewFederationRelationship): NewFederationRelationship {
  if (typeof r !== 'object' || r === null) throw new TypeError('federation relationship must be an object');
  checkTrustDomainArg(r.trustDomain, 'federation relationship trustDomain');
  const url = r.bundleEndpointUrl;
  if (typeof url !== 'string' || url.length === 0 || url.length > MAX_ENDPOINT_URL_LENGTH) {
    throw invalid(`bundleEndpointUrl must be a URL of 1 to ${MAX_ENDPOINT_URL_LENGTH} bytes`);
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // eslint-disable-next-line no-control-regex
  const whitespace = /[\u0000-\u0020\u007f]/.test(url);
  if (parsed === undefined || whitespace || parsed.protocol !== 'https:' || parsed.hostname === '' || parsed.username !== '' || parsed.password !== '' || url.includes('?') || url.includes('#')) {
    throw invalid('bundleEndpointUrl must be https://host[:port]/path without userinfo, query or fragment');
  }
  if (!PROFILES.includes(r.bundleEndpointProfile)) throw invalid(`bundleEndpointProfile must be one of ${PROFILES.join(', ')}`);
  if (r.bundleEndpointProfile === 'https_spiffe') {
    checkSpiffeIdArg(r.endpointSpiffeId, 'endpointSpiffeId');
  } else if (r.endpointSpiffeId !== '') {
    throw invalid("endpointSpiffeId must be '' for the https_web profile");
  }
  return { trustDomain: r.trustDomain, bundleEndpointUrl: url, bundleEndpointProfile: r.bundleEndpointProfile, endpointSpiffeId: r.endpointSpiffeId };
}
