/**
 * @module server/messages
 *
 * The server API's wire messages as TypeScript types (snake_case, as proto-loader decodes
 * them with `keepCase`) and the conversions between them and Mayfly's own records.
 * Conversions from the wire check shapes and bounds and throw MayflyErrors, so a hostile
 * message becomes INVALID_ARGUMENT rather than an exception deep inside a handler.
 */
import type { KeyObject } from 'node:crypto';
import type { AttestedAgent, FederationRelationship, StoredBundle } from '../datastore/datastore.js';
import type { EntryInput, RegistrationEntry } from '../registration/entry.js';
import type { Selector } from '../registration/selector.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { parseBundle } from '../spiffe/bundle/parse.js';
import { TrustDomain } from '../spiffe/id.js';
import { exportSpkiDer, importSpki } from '../spiffe/keys.js';
import { badRequest, type ItemStatus } from './status.js';

export interface WireSelector {
  type: string;
  value: string;
}

export interface WireEntry {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: WireSelector[];
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string[];
  federates_with: string[];
  admin: boolean;
  downstream: boolean;
  hint: string;
  expires_at: number;
  revision: number;
  created_at: number;
  owner: string;
  labels: Record<string, string>;
  purpose: string;
}

export interface WireAgent {
  id: string;
  attestation_type: string;
  x509svid_serial_number: string;
  x509svid_expires_at: number;
  selectors: WireSelector[];
  banned: boolean;
  can_reattest: boolean;
  created_at: number;
  updated_at: number;
}

export interface WireJwtAuthority {
  key_id: string;
  public_key: Buffer;
  expires_at: number;
}

export interface WireBundle {
  trust_domain: string;
  x509_authorities: Buffer[];
  jwt_authorities: WireJwtAuthority[];
  refresh_hint: number;
  sequence_number: number;
}

export interface WireX509Svid {
  spiffe_id: string;
  cert_chain: Buffer[];
  expires_at: number;
  serial_number: string;
}

export interface WireJwtSvid {
  spiffe_id: string;
  token: string;
  expires_at: number;
  issued_at: number;
}

export type WireStatus = ItemStatus;

export type WireMatch = 'MATCH_EXACT' | 'MATCH_SUBSET' | 'MATCH_SUPERSET' | 'MATCH_ANY';

export function entryToWire(e: RegistrationEntry): WireEntry {
  return {
    id: e.entryId,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: [...e.dnsNames],
    federates_with: [...e.federatesWith],
    admin: e.admin,
    downstream: e.downstream,
    hint: e.hint,
    expires_at: e.expiresAt,
    revision: e.revision,
    created_at: e.createdAt,
    owner: e.owner,
    labels: { ...e.labels },
    purpose: e.purpose,
  };
}

/** An entry as agents are sent it: without the governance fields, which they do not use. */
export function entryToAgentWire(e: RegistrationEntry): WireEntry {
  return { ...entryToWire(e), owner: '', labels: {}, purpose: '' };
}

function arr<T>(v: T[] | undefined | null): T[] {
  return Array.isArray(v) ? v : [];
}

export function selectorsFromWire(list: WireSelector[] | undefined): Selector[] {
  return arr(list).map((s) => ({ type: s?.type ?? '', value: s?.value ?? '' }));
}

/**
 * The entry fields of a wire message, for `validateEntry` (which the datastore and the
 * handlers apply). An empty `id` means "assign one".
 */
export function entryFromWire(w: Partial<WireEntry> | undefined | null): EntryInput {
  if (w === undefined || w === null) throw badRequest('entry is missing');
  const input: EntryInput = {
    spiffeId: w.spiffe_id ?? '',
    parentId: w.parent_id ?? '',
    selectors: selectorsFromWire(w.selectors),
    x509SvidTtl: w.x509_svid_ttl ?? 0,
    jwtSvidTtl: w.jwt_svid_ttl ?? 0,
    dnsNames: arr(w.dns_names),
    federatesWith: arr(w.federates_with),
    admin: w.admin ?? false,
    downstream: w.downstream ?? false,
    hint: w.hint ?? '',
    expiresAt: w.expires_at ?? 0,
    owner: w.owner ?? '',
    purpose: w.purpose ?? '',
  };
  // proto-loader decodes a map into a plain object; anything else is left for validateEntry to refuse.
  if (w.labels !== undefined && w.labels !== null) input.labels = w.labels;
  if (w.id !== undefined && w.id !== '') input.entryId = w.id;
  return input;
}

export function agentToWire(a: AttestedAgent): WireAgent {
  return {
    id: a.spiffeId,
    attestation_type: a.attestationType,
    x509svid_serial_number: a.serialNumber,
    x509svid_expires_at: a.certNotAfter,
    selectors: a.selectors.map((s) => ({ type: s.type, value: s.value })),
    banned: a.banned,
    can_reattest: a.canReattest,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  };
}

export function bundleToWire(b: Bundle): WireBundle {
  return {
    trust_domain: b.trustDomain.name,
    x509_authorities: [...b.x509Authorities],
    jwt_authorities: [...b.jwtAuthorities].map(([kid, key]: [string, KeyObject]) => ({ key_id: kid, public_key: exportSpkiDer(key), expires_at: 0 })),
    refresh_hint: b.refreshHintSeconds ?? 0,
    sequence_number: b.sequence ?? 0,
  };
}

/** Bare trust domain name from a wire field (accepts `example.org` or `spiffe://example.org`). */
export function trustDomainFromWire(name: string | undefined): TrustDomain {
  if (typeof name !== 'string' || name === '') throw badRequest('trust_domain is missing');
  if (name.length > 300) throw badRequest('trust_domain is too long');
  return TrustDomain.parse(name);
}

/** A federated bundle from the wire; every certificate and key is checked. */
export function bundleFromWire(w: Partial<WireBundle> | undefined | null): Bundle {
  if (w === undefined || w === null) throw badRequest('bundle is missing');
  const td = trustDomainFromWire(w.trust_domain);
  const jwt = new Map<string, KeyObject>();
  for (const [i, a] of arr(w.jwt_authorities).entries()) {
    if (typeof a?.key_id !== 'string' || a.key_id === '' || a.key_id.length > 256) throw badRequest(`jwt_authorities[${i}].key_id must be 1..256 characters`);
    if (jwt.has(a.key_id)) throw badRequest(`jwt_authorities[${i}].key_id ${JSON.stringify(a.key_id)} repeats`);
    jwt.set(a.key_id, importSpki(a.public_key ?? Buffer.alloc(0)));
  }
  try {
    return new Bundle({
      trustDomain: td,
      x509Authorities: arr(w.x509_authorities),
      jwtAuthorities: jwt,
      sequence: w.sequence_number ?? 0,
      refreshHintSeconds: w.refresh_hint ?? 0,
    });
  } catch (err) {
    throw badRequest(`bundle for ${td.name} is invalid: ${(err as Error).message}`);
  }
}

export function storedBundleToBundle(s: StoredBundle): Bundle {
  return parseBundle(s.bundle, TrustDomain.parse(s.trustDomain));
}

export function matchFromWire(m: WireMatch | string | undefined): 'exact' | 'subset' | 'superset' | 'any' {
  switch (m) {
    case undefined:
    case 'MATCH_EXACT':
      return 'exact';
    case 'MATCH_SUBSET':
      return 'subset';
    case 'MATCH_SUPERSET':
      return 'superset';
    case 'MATCH_ANY':
      return 'any';
    default:
      throw badRequest(`unknown match ${String(m)}`);
  }
}

export interface WireFederationRelationship {
  trust_domain: string;
  bundle_endpoint_url: string;
  https_web?: Record<string, never> | null;
  https_spiffe?: { endpoint_spiffe_id: string } | null;
  /** proto-loader's name of the oneof case that is set. */
  bundle_endpoint_profile?: 'https_web' | 'https_spiffe';
  trust_domain_bundle?: WireBundle | null;
  created_at: number;
  updated_at: number;
}

export function relationshipToWire(r: FederationRelationship, bundle?: Bundle): WireFederationRelationship {
  const w: WireFederationRelationship = {
    trust_domain: r.trustDomain,
    bundle_endpoint_url: r.bundleEndpointUrl,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
  if (r.bundleEndpointProfile === 'https_spiffe') w.https_spiffe = { endpoint_spiffe_id: r.endpointSpiffeId };
  else w.https_web = {};
  if (bundle !== undefined) w.trust_domain_bundle = bundleToWire(bundle);
  return w;
}
