/**
 * @module server/spire-api/types
 *
 * SPIRE's `spire.api.types` messages to and from Mayfly's wire messages, for every SPIRE
 * service that delegates to Mayfly's: entries, bundles, X509-SVIDs, agents and selectors.
 * Output masks are applied as SPIRE applies them: a nil mask means every field, a set
 * mask means only the fields set true (IDs are always returned).
 */
import type { WireAgent, WireBundle, WireEntry, WireSelector, WireX509Svid } from '../messages.js';
import { badRequest } from '../status.js';
import { spiffeIdFromSpire, spiffeIdToSpire, type SpireSpiffeId } from './ids.js';

export interface SpireEntry {
  id: string;
  spiffe_id: SpireSpiffeId | null;
  parent_id: SpireSpiffeId | null;
  selectors: WireSelector[];
  x509_svid_ttl: number;
  federates_with: string[];
  admin: boolean;
  downstream: boolean;
  expires_at: number;
  dns_names: string[];
  revision_number: number;
  store_svid: boolean;
  jwt_svid_ttl: number;
  hint: string;
  created_at: number;
}

/** `spire.api.types.EntryMask` (and every other mask): field name → wanted. */
export type SpireMask = Readonly<Record<string, boolean>>;

export interface SpireX509Certificate {
  asn1: Buffer;
  tainted: boolean;
}

export interface SpireJwtKey {
  public_key: Buffer;
  key_id: string;
  expires_at: number;
  tainted: boolean;
}

export interface SpireBundle {
  trust_domain: string;
  x509_authorities: SpireX509Certificate[];
  jwt_authorities: SpireJwtKey[];
  refresh_hint: number;
  sequence_number: number;
}

export interface SpireX509Svid {
  cert_chain: Buffer[];
  id: SpireSpiffeId;
  expires_at: number;
  hint: string;
}

export interface SpireAgent {
  id: SpireSpiffeId;
  attestation_type: string;
  x509svid_serial_number: string;
  x509svid_expires_at: number;
  selectors: WireSelector[];
  banned: boolean;
  can_reattest: boolean;
}

/** Keeps `always` and the fields `mask` wants; a null mask keeps everything. */
export function applyMask<T extends object>(msg: T, mask: SpireMask | null | undefined, always: readonly (keyof T)[]): Partial<T> {
  if (mask === null || mask === undefined) return msg;
  const out: Partial<T> = {};
  for (const k of Object.keys(msg) as (keyof T)[]) {
    if (always.includes(k) || mask[k as string] === true) out[k] = msg[k];
  }
  return out;
}

export function entryToSpire(e: WireEntry): SpireEntry {
  return {
    id: e.id,
    spiffe_id: spiffeIdToSpire(e.spiffe_id),
    parent_id: spiffeIdToSpire(e.parent_id),
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509_svid_ttl: e.x509_svid_ttl,
    federates_with: e.federates_with,
    admin: e.admin,
    downstream: e.downstream,
    expires_at: e.expires_at,
    dns_names: e.dns_names,
    revision_number: e.revision,
    store_svid: false,
    jwt_svid_ttl: e.jwt_svid_ttl,
    hint: e.hint,
    created_at: e.created_at,
  };
}

/**
 * A SPIRE entry as Mayfly's wire entry (validation happens in Mayfly's handler). SPIRE's
 * `store_svid` (SVIDs kept by an SVIDStore agent plugin) has no Mayfly counterpart and is
 * refused rather than silently dropped.
 */
export function entryFromSpire(e: Partial<SpireEntry> | null | undefined, what = 'entry'): WireEntry {
  if (e === null || e === undefined) throw badRequest(`${what} is missing`);
  if (e.store_svid === true) throw badRequest(`${what}: store_svid is not supported by Mayfly (no SVIDStore agent plugins); create the entry without -storeSVID`);
  return {
    id: e.id ?? '',
    spiffe_id: spiffeIdFromSpire(e.spiffe_id, `${what}.spiffe_id`).toString(),
    parent_id: spiffeIdFromSpire(e.parent_id, `${what}.parent_id`).toString(),
    selectors: (e.selectors ?? []).map((s) => ({ type: s.type, value: s.value })),
    x509_svid_ttl: e.x509_svid_ttl ?? 0,
    jwt_svid_ttl: e.jwt_svid_ttl ?? 0,
    dns_names: e.dns_names ?? [],
    federates_with: e.federates_with ?? [],
    admin: e.admin ?? false,
    downstream: e.downstream ?? false,
    hint: e.hint ?? '',
    expires_at: e.expires_at ?? 0,
    revision: e.revision_number ?? 0,
    created_at: 0,
    owner: '',
    labels: {},
    purpose: '',
  };
}

/** Mayfly's bundle as SPIRE's; `taintedKeys` are the authorities (base64 DER / key IDs) marked tainted. */
export function bundleToSpire(b: WireBundle, tainted: { x509: readonly string[]; jwt: readonly string[] } = { x509: [], jwt: [] }): SpireBundle {
  return {
    trust_domain: b.trust_domain,
    x509_authorities: b.x509_authorities.map((asn1) => ({ asn1, tainted: tainted.x509.includes(asn1.toString('base64')) })),
    jwt_authorities: b.jwt_authorities.map((k) => ({ public_key: k.public_key, key_id: k.key_id, expires_at: k.expires_at, tainted: tainted.jwt.includes(k.key_id) })),
    refresh_hint: b.refresh_hint,
    sequence_number: b.sequence_number,
  };
}

export function bundleFromSpire(b: Partial<SpireBundle> | null | undefined, what = 'bundle'): WireBundle {
  if (b === null || b === undefined) throw badRequest(`${what} is missing`);
  return {
    trust_domain: b.trust_domain ?? '',
    x509_authorities: (b.x509_authorities ?? []).map((c) => c.asn1),
    jwt_authorities: (b.jwt_authorities ?? []).map((k) => ({ key_id: k.key_id, public_key: k.public_key, expires_at: k.expires_at })),
    refresh_hint: b.refresh_hint ?? 0,
    sequence_number: b.sequence_number ?? 0,
  };
}

export function x509SvidToSpire(s: WireX509Svid, hint = ''): SpireX509Svid {
  return { cert_chain: s.cert_chain, id: spiffeIdToSpire(s.spiffe_id), expires_at: s.expires_at, hint };
}

/**
 * Mayfly's agent record as SPIRE's. SPIRE spells the SVID serial number in decimal
 * (Go's `big.Int.String`); Mayfly records it in hex.
 */
export function agentToSpire(a: WireAgent): SpireAgent {
  return {
    id: spiffeIdToSpire(a.id),
    attestation_type: a.attestation_type,
    x509svid_serial_number: a.x509svid_serial_number === '' ? '' : BigInt(`0x${a.x509svid_serial_number}`).toString(10),
    x509svid_expires_at: a.x509svid_expires_at,
    selectors: a.selectors.map((s) => ({ type: s.type, value: s.value })),
    banned: a.banned,
    can_reattest: a.can_reattest,
  };
}
