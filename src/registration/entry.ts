/**
 * @module registration/entry
 *
 * Registration entries: "a workload (or node) with these selectors, under this parent,
 * gets this SPIFFE ID". `validateEntry` is the one gate every entry passes before it is
 * stored or compared.
 *
 * Threat: entries are written by admins over the API and read on every authorised-entry
 * computation, so a hostile or buggy writer could (a) grant an identity outside the
 * server's trust domain, (b) store an entry so large (10,000 selectors, megabyte fields)
 * that every agent sync and every index lookup pays for it, or (c) register two entries
 * that look different but compare equal. The validator rejects (a) and (b) with
 * `ERR_ENTRY_INVALID` naming the field and the rule, and it normalises nothing, so what is
 * stored is byte-for-byte what was asked for; (c) is handled by `entryUniqueKey`, which
 * sorts selectors canonically.
 *
 * Bounds (chosen, not taken from SPIRE, which has fewer):
 * - entryId: 1..255 bytes of `[A-Za-z0-9._-]`; a random UUID when not given.
 * - selectors: 1..64, no duplicates, each as in registration/selector.
 * - dnsNames: at most 32, each a DNS name ≤ 253 bytes (labels 1..63 of letters, digits,
 *   '-', not starting or ending with '-'; `*.` allowed as the whole first label), no
 *   duplicates.
 * - federatesWith: at most 32 bare trust domain names (`example.org`, not
 *   `spiffe://example.org`), none the server's own, no duplicates.
 * - x509SvidTtl / jwtSvidTtl: integer seconds 0..31,536,000 (0 = server default).
 * - hint: at most 1024 bytes, no control characters.
 * - expiresAt: integer unix seconds 0..253,402,300,799 (0 = never).
 * - owner (issue 11): at most 256 bytes, no control characters ('' = no owner).
 * - labels: at most 32; keys 1..63 bytes of `[A-Za-z0-9._/-]` starting with a letter or
 *   digit (so no `__proto__`), values at most 256 bytes, no control characters.
 * - purpose: at most 1024 bytes, no control characters (newlines neither: one line).
 * - spiffeId may be an entry template (`spiffe://td/ns/{{k8s:ns}}`, registration/template),
 *   checked by `templateProblem` against the entry's selectors.
 */
import { createHash, randomUUID } from 'node:crypto';
import { MayflyError } from '../spiffe/errors.js';
import type { RegistrationErrorCode } from './registration-error.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { formatSelector, LONE_SURROGATE_RE, selectorTypeProblem, selectorValueProblem, sortSelectors, type Selector } from './selector.js';
import { isTemplateId, templateProblem } from './template.js';

/** A stored registration entry. Times are unix seconds. */
export interface RegistrationEntry {
  readonly entryId: string;
  readonly spiffeId: string;
  readonly parentId: string;
  readonly selectors: readonly Selector[];
  /** X509-SVID lifetime in seconds; 0 = the server's default. */
  readonly x509SvidTtl: number;
  /** JWT-SVID lifetime in seconds; 0 = the server's default. */
  readonly jwtSvidTtl: number;
  readonly dnsNames: readonly string[];
  /** Bare trust domain names whose bundles the workload also receives. */
  readonly federatesWith: readonly string[];
  readonly admin: boolean;
  readonly downstream: boolean;
  readonly hint: string;
  /** Unix seconds after which the entry no longer applies; 0 = never. */
  readonly expiresAt: number;
  /** The team or person answerable for this identity; '' when none was given. */
  readonly owner: string;
  /** key=value labels (at most 32), for filtering and inventory. */
  readonly labels: Readonly<Record<string, string>>;
  /** Why the identity exists, free text; '' when none was given. */
  readonly purpose: string;
  /** Bumped by every update; starts at 0. */
  readonly revision: number;
  readonly createdAt: number;
}

/** The fields a writer supplies. Omitted optional fields take their documented defaults. */
export interface EntryInput {
  entryId?: string;
  spiffeId: string;
  parentId: string;
  selectors: readonly Selector[];
  x509SvidTtl?: number;
  jwtSvidTtl?: number;
  dnsNames?: readonly string[];
  federatesWith?: readonly string[];
  admin?: boolean;
  downstream?: boolean;
  hint?: string;
  expiresAt?: number;
  owner?: string;
  labels?: Readonly<Record<string, string>>;
  purpose?: string;
}

/** A validated entry before the datastore assigns revision and creation time. */
export type ValidEntry = Omit<RegistrationEntry, 'revision' | 'createdAt'>;

export const MAX_ENTRY_ID_LENGTH = 255;
export const MAX_ENTRY_SELECTORS = 64;
export const MAX_ENTRY_DNS_NAMES = 32;
export const MAX_ENTRY_FEDERATES_WITH = 32;
export const MAX_ENTRY_TTL_SECONDS = 31_536_000;
export const MAX_ENTRY_HINT_LENGTH = 1024;
export const MAX_ENTRY_OWNER_LENGTH = 256;
export const MAX_ENTRY_LABELS = 32;
export const MAX_ENTRY_LABEL_KEY_LENGTH = 63;
export const MAX_ENTRY_LABEL_VALUE_LENGTH = 256;
export const MAX_ENTRY_PURPOSE_LENGTH = 1024;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;
/** 9999-12-31T23:59:59Z. */
export const MAX_ENTRY_EXPIRES_AT = 253_402_300_799;
const MAX_DNS_NAME_LENGTH = 253;

/** An entry that breaks a rule; `field` names the offending field. */
export class EntryError extends MayflyError<RegistrationErrorCode> {
  readonly field: string;
  constructor(field: string, rule: string) {
    super('ERR_ENTRY_INVALID', `invalid registration entry: ${field} ${rule}`);
    this.field = field;
  }
}

const ENTRY_ID_RE = /^[A-Za-z0-9._-]+$/;
const DNS_LABEL_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

const KNOWN_FIELDS = new Set([
  'entryId', 'spiffeId', 'parentId', 'selectors', 'x509SvidTtl', 'jwtSvidTtl', 'dnsNames',
  'federatesWith', 'admin', 'downstream', 'hint', 'expiresAt', 'owner', 'labels', 'purpose',
  // Tolerated so a stored entry can be fed back in for an update; ignored here.
  'revision', 'createdAt',
]);

/** The reason `id` is not a valid entry ID, or undefined when it is. */
export function entryIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return 'must be a string';
  if (id.length === 0) return 'is empty';
  if (id.length > MAX_ENTRY_ID_LENGTH) return `is longer than ${MAX_ENTRY_ID_LENGTH} bytes`;
  if (!ENTRY_ID_RE.test(id)) return "may only hold letters, digits, '.', '_' and '-'";
  return undefined;
}

/** The reason `name` is not an acceptable DNS name, or undefined when it is. */
export function dnsNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'must be a string';
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_DNS_NAME_LENGTH) return `is longer than ${MAX_DNS_NAME_LENGTH} bytes`;
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (i === 0 && label === '*' && labels.length > 1) continue;
    if (label.length === 0) return 'has an empty label';
    if (label.length > 63) return 'has a label longer than 63 bytes';
    if (!DNS_LABEL_RE.test(label)) return `has label ${JSON.stringify(label.slice(0, 63))}: labels hold letters, digits and inner '-' only ('*' only as the whole first label)`;
  }
  return undefined;
}

/** The reason `v` is not a bounded one-line text, or undefined when it is. */
function textProblem(v: unknown, max: number): string | undefined {
  if (typeof v !== 'string') return `must be a string (got ${v === null ? 'null' : typeof v})`;
  if (v.length > max || Buffer.byteLength(v, 'utf8') > max) return `is longer than ${max} bytes`;
  if (CONTROL_RE.test(v)) return 'holds a control character';
  if (LONE_SURROGATE_RE.test(v)) return 'holds an unpaired UTF-16 surrogate';
  return undefined;
}

/** Longest note on an owner certification (issue 11), in bytes. */
export const MAX_CERTIFICATION_NOTE_LENGTH = 1024;

/** The reason `note` is not an acceptable certification note ('' is), or undefined when it is. */
export function certificationNoteProblem(note: unknown): string | undefined {
  return textProblem(note, MAX_CERTIFICATION_NOTE_LENGTH);
}

function checkText(input: Record<string, unknown>, field: string, max: number): string {
  const v = input[field];
  if (v === undefined) return '';
  const p = textProblem(v, max);
  if (p !== undefined) throw new EntryError(field, p);
  return v as string;
}

/** The reason `owner` is not an acceptable (non-empty) owner, or undefined when it is. */
export function ownerProblem(owner: unknown): string | undefined {
  if (owner === '') return 'is empty';
  return textProblem(owner, MAX_ENTRY_OWNER_LENGTH);
}

/** The reason `key` is not an acceptable label key, or undefined when it is. */
export function labelKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'must be a string';
  if (key.length === 0) return 'is empty';
  if (key.length > MAX_ENTRY_LABEL_KEY_LENGTH) return `is longer than ${MAX_ENTRY_LABEL_KEY_LENGTH} bytes`;
  if (!LABEL_KEY_RE.test(key)) return "may only hold letters, digits, '.', '_', '/' and '-', starting with a letter or digit";
  return undefined;
}

/** The reason `value` is not an acceptable label value, or undefined when it is. */
export function labelValueProblem(value: unknown): string | undefined {
  return textProblem(value, MAX_ENTRY_LABEL_VALUE_LENGTH);
}

function checkLabels(input: Record<string, unknown>): Record<string, string> {
  const v = input.labels;
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EntryError('labels', 'must be an object of key: value strings');
  const keys = Object.keys(v);
  // Counted before any key is looked at, so 100,000 labels cost nothing more.
  if (keys.length > MAX_ENTRY_LABELS) throw new EntryError('labels', `holds ${keys.length} labels; the limit is ${MAX_ENTRY_LABELS}`);
  const out: Record<string, string> = {};
  for (const k of keys.sort()) {
    const shown = JSON.stringify(k.slice(0, 64));
    const kp = labelKeyProblem(k);
    if (kp !== undefined) throw new EntryError(`labels[${shown}]`, `key ${kp}`);
    const val = (v as Record<string, unknown>)[k];
    const vp = labelValueProblem(val);
    if (vp !== undefined) throw new EntryError(`labels[${shown}]`, `value ${vp}`);
    out[k] = val as string;
  }
  return out;
}

function checkInt(input: Record<string, unknown>, field: string, max: number): number {
  const v = input[field];
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new EntryError(field, `must be an integer from 0 to ${max} (got ${typeof v === 'number' ? v : typeof v})`);
  }
  return v;
}

function checkBool(input: Record<string, unknown>, field: string): boolean {
  const v = input[field];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new EntryError(field, `must be a boolean (got ${typeof v})`);
  return v;
}

function checkArray(input: Record<string, unknown>, field: string, max: number, required: boolean): unknown[] {
  const v = input[field];
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) throw new EntryError(field, `must be an array (got ${v === null ? 'null' : typeof v})`);
  if (required && v.length === 0) throw new EntryError(field, 'must hold at least one item');
  // Checked before looking at any item, so a 10,000-item array costs nothing more.
  if (v.length > max) throw new EntryError(field, `holds ${v.length} items; the limit is ${max}`);
  return v;
}

function checkSpiffeId(input: Record<string, unknown>, field: string, td: TrustDomain | undefined): string {
  const v = input[field];
  if (typeof v !== 'string') throw new EntryError(field, `must be a SPIFFE ID string (got ${v === null ? 'null' : typeof v})`);
  let id: SpiffeId;
  try {
    id = SpiffeId.parseWorkload(v);
  } catch (err) {
    throw new EntryError(field, `is not a valid workload SPIFFE ID: ${(err as Error).message}`);
  }
  if (td !== undefined && !id.memberOf(td)) {
    throw new EntryError(field, `${JSON.stringify(v)} is not in the server's trust domain ${JSON.stringify(td.name)}`);
  }
  return v;
}

/** An entry template (registration/template): its rules, and the trust domain it names. */
function checkTemplate(spiffeId: string, selectors: readonly Selector[], td: TrustDomain | undefined): void {
  const p = templateProblem(spiffeId, selectors);
  if (p !== undefined) throw new EntryError('spiffeId', `is a template that ${p}`);
  if (td !== undefined && !spiffeId.startsWith(`spiffe://${td.name}/`)) {
    throw new EntryError('spiffeId', `${JSON.stringify(spiffeId.slice(0, 120))} is not in the server's trust domain ${JSON.stringify(td.name)}`);
  }
}

/**
 * Checks every field of `input` and returns the entry to store (with defaults for omitted
 * optional fields, and a fresh UUID when `entryId` is omitted). Throws EntryError
 * (`ERR_ENTRY_INVALID`) naming the field and rule; nothing is trimmed, lowercased or
 * reordered. With `trustDomain`, the SPIFFE ID and parent ID must both be in it and
 * federatesWith must not name it; without it (as the datastore calls it) only the shape
 * and bounds are checked.
 */
export function validateEntry(input: unknown, opts: { trustDomain?: TrustDomain | string } = {}): ValidEntry {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new EntryError('entry', 'must be an object');
  }
  const rec = input as Record<string, unknown>;
  for (const k of Object.keys(rec)) {
    if (!KNOWN_FIELDS.has(k)) throw new EntryError(k.length > 64 ? `${k.slice(0, 61)}...` : k, 'is not a field of a registration entry');
  }
  const td = typeof opts.trustDomain === 'string' ? TrustDomain.parse(opts.trustDomain) : opts.trustDomain;

  let entryId: string;
  if (rec.entryId === undefined) {
    entryId = randomUUID();
  } else {
    const p = entryIdProblem(rec.entryId);
    if (p !== undefined) throw new EntryError('entryId', p);
    entryId = rec.entryId as string;
  }

  const template = typeof rec.spiffeId === 'string' && isTemplateId(rec.spiffeId);
  const spiffeId = template ? (rec.spiffeId as string) : checkSpiffeId(rec, 'spiffeId', td);
  const parentId = checkSpiffeId(rec, 'parentId', td);

  const rawSelectors = checkArray(rec, 'selectors', MAX_ENTRY_SELECTORS, true);
  const selectors: Selector[] = [];
  const seenSel = new Set<string>();
  for (let i = 0; i < rawSelectors.length; i++) {
    const s = rawSelectors[i];
    if (typeof s !== 'object' || s === null) throw new EntryError(`selectors[${i}]`, 'must be an object { type, value }');
    const { type, value } = s as { type?: unknown; value?: unknown };
    const p = selectorTypeProblem(type) ?? selectorValueProblem(value);
    if (p !== undefined) throw new EntryError(`selectors[${i}]`, `is invalid: ${p}`);
    const sel: Selector = { type: type as string, value: value as string };
    const key = formatSelector(sel);
    if (seenSel.has(key)) throw new EntryError(`selectors[${i}]`, `repeats selector ${JSON.stringify(key.slice(0, 80))}`);
    seenSel.add(key);
    selectors.push(sel);
  }
  if (template) checkTemplate(spiffeId, selectors, td);

  const x509SvidTtl = checkInt(rec, 'x509SvidTtl', MAX_ENTRY_TTL_SECONDS);
  const jwtSvidTtl = checkInt(rec, 'jwtSvidTtl', MAX_ENTRY_TTL_SECONDS);

  const rawDns = checkArray(rec, 'dnsNames', MAX_ENTRY_DNS_NAMES, false);
  const seenDns = new Set<string>();
  for (let i = 0; i < rawDns.length; i++) {
    const p = dnsNameProblem(rawDns[i]);
    if (p !== undefined) throw new EntryError(`dnsNames[${i}]`, p);
    const lower = (rawDns[i] as string).toLowerCase();
    if (seenDns.has(lower)) throw new EntryError(`dnsNames[${i}]`, 'repeats an earlier DNS name (DNS names compare case-insensitively)');
    seenDns.add(lower);
  }

  const rawFed = checkArray(rec, 'federatesWith', MAX_ENTRY_FEDERATES_WITH, false);
  const seenFed = new Set<string>();
  for (let i = 0; i < rawFed.length; i++) {
    const f = rawFed[i];
    if (typeof f !== 'string') throw new EntryError(`federatesWith[${i}]`, 'must be a trust domain name string');
    if (f.includes(':')) throw new EntryError(`federatesWith[${i}]`, `must be a bare trust domain name like "example.org", not ${JSON.stringify(f.slice(0, 80))}`);
    try {
      TrustDomain.parse(f);
    } catch (err) {
      throw new EntryError(`federatesWith[${i}]`, `is not a valid trust domain name: ${(err as Error).message}`);
    }
    if (td !== undefined && f === td.name) throw new EntryError(`federatesWith[${i}]`, "names the server's own trust domain");
    if (seenFed.has(f)) throw new EntryError(`federatesWith[${i}]`, `repeats ${JSON.stringify(f)}`);
    seenFed.add(f);
  }

  const admin = checkBool(rec, 'admin');
  const downstream = checkBool(rec, 'downstream');

  let hint = '';
  if (rec.hint !== undefined) {
    const h = rec.hint;
    if (typeof h !== 'string') throw new EntryError('hint', 'must be a string');
    if (h.length > MAX_ENTRY_HINT_LENGTH || Buffer.byteLength(h, 'utf8') > MAX_ENTRY_HINT_LENGTH) {
      throw new EntryError('hint', `is longer than ${MAX_ENTRY_HINT_LENGTH} bytes`);
    }
    if (CONTROL_RE.test(h)) throw new EntryError('hint', 'holds a control character');
    if (LONE_SURROGATE_RE.test(h)) throw new EntryError('hint', 'holds an unpaired UTF-16 surrogate');
    hint = h;
  }

  const expiresAt = checkInt(rec, 'expiresAt', MAX_ENTRY_EXPIRES_AT);
  const owner = checkText(rec, 'owner', MAX_ENTRY_OWNER_LENGTH);
  const labels = checkLabels(rec);
  const purpose = checkText(rec, 'purpose', MAX_ENTRY_PURPOSE_LENGTH);

  return {
    entryId,
    spiffeId,
    parentId,
    selectors,
    x509SvidTtl,
    jwtSvidTtl,
    dnsNames: rawDns as string[],
    federatesWith: rawFed as string[],
    admin,
    downstream,
    hint,
    expiresAt,
    owner,
    labels,
    purpose,
  };
}

/**
 * A stored entry read back, with the issue-11 fields (`owner`, `labels`, `purpose`) filled
 * in when it was written before they existed.
 */
export function withEntryDefaults<T extends Omit<RegistrationEntry, 'owner' | 'labels' | 'purpose'>>(
  e: T & Partial<Pick<RegistrationEntry, 'owner' | 'labels' | 'purpose'>>,
): T & Pick<RegistrationEntry, 'owner' | 'labels' | 'purpose'> {
  return { ...e, owner: e.owner ?? '', labels: e.labels ?? {}, purpose: e.purpose ?? '' };
}

/**
 * The identity of an entry for uniqueness: (parent ID, SPIFFE ID, selectors sorted
 * canonically), hashed to a fixed 64-hex-character key. Two entries with the same key
 * are the same registration, whatever order their selectors were given in.
 */
export function entryUniqueKey(entry: Pick<RegistrationEntry, 'parentId' | 'spiffeId' | 'selectors'>): string {
  const h = createHash('sha256');
  // NUL cannot occur in SPIFFE IDs or selectors, so it separates fields unambiguously.
  h.update(entry.parentId).update('\0').update(entry.spiffeId);
  for (const s of sortSelectors(entry.selectors)) h.update('\0').update(formatSelector(s));
  return h.digest('hex');
}
