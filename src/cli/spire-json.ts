/**
 * @module cli/spire-json
 *
 * `-output json` shaped as SPIRE v1.13.3's CLI prints it, so `jq` written for SPIRE works.
 *
 * SPIRE prints the protojson of its API responses (spire-api-sdk `types.Entry`,
 * `types.Agent`, `types.Bundle`, ...) with `UseProtoNames` and `EmitUnpopulated`, then
 * re-encodes each document through a Go map to drop nulls (pkg/common/cliprinter). So:
 * snake_case proto names; zero values present (`""`, `0`, `false`, `[]`); unset messages
 * absent; int64/uint64 as decimal strings, int32 as numbers; bytes as padded base64; SPIFFE
 * IDs as `{"trust_domain", "path"}`; keys sorted (Go sorts map keys); one compact line;
 * `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`... (Go's HTML-safe encoder).
 *
 * Mayfly's wire messages (server/messages) differ (string IDs, `revision`), so each
 * response is converted here, field for field, to the SPIRE message it corresponds to.
 */
import { SpiffeId } from '../spiffe/id.js';
import type { WireBundle, WireEntry, WireFederationRelationship, WireSelector, WireStatus } from '../server/messages.js';

/** spire.api.types.SPIFFEID */
export interface SpireSpiffeId {
  trust_domain: string;
  path: string;
}

/** spire.api.types.Entry, as protojson writes it. */
export interface SpireEntry {
  id: string;
  spiffe_id?: SpireSpiffeId;
  parent_id?: SpireSpiffeId;
  selectors: WireSelector[];
  x509_svid_ttl: number;
  federates_with: string[];
  admin: boolean;
  downstream: boolean;
  expires_at: string;
  dns_names: string[];
  revision_number: string;
  store_svid: boolean;
  jwt_svid_ttl: number;
  hint: string;
  created_at: string;
  /** Mayfly's (issue 11), not SPIRE's: present only when set, so SPIRE-style entries print byte for byte as SPIRE does. */
  owner?: string;
  labels?: Record<string, string>;
  purpose?: string;
}

/**
 * spire.api.types.Agent, as SPIRE v1.13.3 prints a real attested agent (checked by
 * test/interop/spire/agent-json.interop.test.ts). The `agent` commands print it as SPIRE's
 * Agent API answers (server/spire-api/agent-admin). Where Mayfly's data differs from SPIRE's:
 * - `x509svid_serial_number`: SPIRE stores and prints the SVID's serial in decimal (Go's
 *   `big.Int.String()`); Mayfly stores it in hex, and its SPIRE API answers in decimal ('' stays
 *   '', as after a ban in both).
 * - `selectors`: SPIRE's join_token attestor yields no selectors (`[]`); Mayfly's yields one,
 *   `{"type":"join_token","value":"sha256:<hex of the token>"}` (src/attestors/node/join_token),
 *   so a join-token agent's list has one element of the same `{type, value}` shape.
 * - `id` of a join-token agent: SPIRE's path ends in the token, Mayfly's in a random UUID
 *   (the token is not disclosed); same `{trust_domain, path}` shape.
 * Every key SPIRE prints is filled; none is left at a placeholder.
 */
export interface SpireAgent {
  id?: SpireSpiffeId | null;
  attestation_type: string;
  x509svid_serial_number: string;
  x509svid_expires_at: string;
  selectors: WireSelector[];
  banned: boolean;
  can_reattest: boolean;
}

/** spire.api.types.Bundle */
export interface SpireBundle {
  trust_domain: string;
  x509_authorities: { asn1: string; tainted: boolean }[];
  jwt_authorities: { public_key: string; key_id: string; expires_at: string; tainted: boolean }[];
  refresh_hint: string;
  sequence_number: string;
}

/** spire.api.types.Status */
export interface SpireStatus {
  code: number;
  message: string;
}

const int64 = (n: number | bigint | string | undefined): string => String(n ?? 0);

/** `spiffe://td/path` → `{trust_domain, path}`; undefined for '' (protojson omits the unset message). */
export function spireSpiffeId(id: string): SpireSpiffeId | undefined {
  if (id === '') return undefined;
  const parsed = SpiffeId.parse(id);
  return { trust_domain: parsed.trustDomain.name, path: parsed.path };
}

/** `{trust_domain, path}` → `spiffe://td/path`. */
export function spiffeIdString(id: SpireSpiffeId): string {
  return `spiffe://${id.trust_domain}${id.path}`;
}

function withIds<T extends object>(base: Omit<T, 'id' | 'spiffe_id' | 'parent_id'> & Partial<T>, ids: Record<string, SpireSpiffeId | undefined>): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(ids)) if (v !== undefined) out[k] = v;
  return out as T;
}

export function spireEntry(e: WireEntry): SpireEntry {
  const governance: Pick<SpireEntry, 'owner' | 'labels' | 'purpose'> = {};
  if (e.owner !== undefined && e.owner !== '') governance.owner = e.owner;
  if (e.labels !== undefined && e.labels !== null && Object.keys(e.labels).length > 0) governance.labels = { ...e.labels };
  if (e.purpose !== undefined && e.purpose !== '') governance.purpose = e.purpose;
  return withIds<SpireEntry>(
    {
      ...governance,
      id: e.id,
      selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
      x509_svid_ttl: e.x509_svid_ttl,
      federates_with: [...e.federates_with],
      admin: e.admin,
      downstream: e.downstream,
      expires_at: int64(e.expires_at),
      dns_names: [...e.dns_names],
      revision_number: int64(e.revision),
      store_svid: false,
      jwt_svid_ttl: e.jwt_svid_ttl,
      hint: e.hint,
      created_at: int64(e.created_at),
    },
    { spiffe_id: spireSpiffeId(e.spiffe_id), parent_id: spireSpiffeId(e.parent_id) },
  );
}

/** An entry as a request carried it (a failed create echoes it back, as SPIRE's CLI does). */
export function spireEntryFromRequest(e: Partial<WireEntry>): SpireEntry {
  return spireEntry({
    id: e.id ?? '',
    spiffe_id: e.spiffe_id ?? '',
    parent_id: e.parent_id ?? '',
    selectors: e.selectors ?? [],
    x509_svid_ttl: e.x509_svid_ttl ?? 0,
    jwt_svid_ttl: e.jwt_svid_ttl ?? 0,
    dns_names: e.dns_names ?? [],
    federates_with: e.federates_with ?? [],
    admin: e.admin ?? false,
    downstream: e.downstream ?? false,
    hint: e.hint ?? '',
    expires_at: e.expires_at ?? 0,
    revision: e.revision ?? 0,
    created_at: e.created_at ?? 0,
    owner: e.owner ?? '',
    labels: e.labels ?? {},
    purpose: e.purpose ?? '',
  });
}

/** spire.api.types.JoinToken */
export interface SpireJoinToken {
  value: string;
  expires_at: string;
}

/**
 * `agent purge -output json` as SPIRE v1.13.3 prints it: a one-element list (its printer
 * prints the struct it is given as a list) of `{"expired_agents": [{"agent_id": "spiffe://...",
 * "deleted": bool}]}`; the ID is a string here (Go's spiffeid.ID marshals as text), `error`
 * is never set (Mayfly's PurgeExpiredAgents purges in one call; an agent still listed after
 * it is `deleted: false`).
 */
export function spirePurgeResult(agents: { id: string; deleted: boolean }[]): [{ expired_agents: { agent_id: string; deleted: boolean }[] }] {
  return [{ expired_agents: agents.map((a) => ({ agent_id: a.id, deleted: a.deleted })) }];
}

export function spireBundle(w: WireBundle): SpireBundle {
  return {
    trust_domain: w.trust_domain,
    x509_authorities: w.x509_authorities.map((d) => ({ asn1: Buffer.from(d).toString('base64'), tainted: false })),
    jwt_authorities: w.jwt_authorities.map((a) => ({
      public_key: Buffer.from(a.public_key).toString('base64'),
      key_id: a.key_id,
      expires_at: int64(a.expires_at),
      tainted: false,
    })),
    refresh_hint: int64(w.refresh_hint),
    sequence_number: int64(w.sequence_number),
  };
}

export function spireStatus(s: WireStatus | undefined): SpireStatus {
  return { code: s?.code ?? 2, message: s?.message ?? '' };
}

/** spire.api.types.FederationRelationship */
export interface SpireFederationRelationship {
  trust_domain: string;
  bundle_endpoint_url: string;
  https_web?: Record<string, never>;
  https_spiffe?: { endpoint_spiffe_id: string };
  trust_domain_bundle?: SpireBundle;
}

export function spireFederationRelationship(w: WireFederationRelationship): SpireFederationRelationship {
  const out: SpireFederationRelationship = { trust_domain: w.trust_domain, bundle_endpoint_url: w.bundle_endpoint_url };
  if (w.https_spiffe) out.https_spiffe = { endpoint_spiffe_id: w.https_spiffe.endpoint_spiffe_id };
  else out.https_web = {};
  if (w.trust_domain_bundle) out.trust_domain_bundle = spireBundle(w.trust_domain_bundle);
  return out;
}
