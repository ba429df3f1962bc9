/**
 * @module server/spire-api/entry-convert
 *
 * SPIRE's entry filters and partial updates in Mayfly's terms, with SPIRE's checks and
 * wording (entry/v1 `service.go`, api/id.go): a filter's parent ID must be a member of the
 * trust domain, its SPIFFE ID a workload ID (not in `/spire`), its selectors non-empty
 * with a type free of ':' and a value, its trust domains valid; all INVALID_ARGUMENT.
 * What Mayfly's datastore cannot filter on (hint, downstream) becomes a predicate the
 * paging applies (paging.ts).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { SpiffeId, TrustDomain, type TrustDomain as TrustDomainT } from '../../spiffe/id.js';
import type { WireEntry, WireMatch, WireSelector } from '../messages.js';
import { spireError } from './spire-call.js';
import { spiffeIdFromSpire, type SpireSpiffeId } from './ids.js';
import { entryFromSpire, type SpireEntry, type SpireMask } from './types.js';

export interface SpireSelectorMatch {
  selectors: WireSelector[];
  match: WireMatch;
}

/** `ListEntriesRequest.Filter` / `CountEntriesRequest.Filter` as proto-loader decodes them. */
export interface SpireEntryFilter {
  by_spiffe_id: SpireSpiffeId | null;
  by_parent_id: SpireSpiffeId | null;
  by_selectors: SpireSelectorMatch | null;
  by_federates_with: { trust_domains: string[]; match: WireMatch } | null;
  by_hint: { value: string } | null;
  by_downstream: { value: boolean } | null;
}

/** Mayfly's `ListEntriesRequest.Filter` (without the governance filters SPIRE has no words for). */
export interface MayflyEntryFilter {
  by_spiffe_id: string;
  by_parent_id: string;
  by_selectors: SpireSelectorMatch | null;
  by_federates_with: { trust_domains: string[]; match: WireMatch } | null;
}

export interface ConvertedEntryFilter {
  mayfly: MayflyEntryFilter;
  /** SPIRE filters Mayfly's datastore lacks; undefined when there are none. */
  keep?: (e: WireEntry) => boolean;
  /** No filter at all (a plain count). */
  empty: boolean;
}

const invalid = (msg: string): Error => spireError(GrpcStatus.INVALID_ARGUMENT, msg);

function errText(err: unknown): string {
  return err instanceof Error ? (err as { details?: string }).details ?? err.message : String(err);
}

/** SPIRE's TrustDomainMemberIDFromProto. */
export function memberIdFromSpire(td: TrustDomainT, id: SpireSpiffeId | null | undefined): SpiffeId {
  const parsed = spiffeIdFromSpire(id, 'id');
  if (!parsed.memberOf(td)) throw new Error(`"${parsed.toString()}" is not a member of trust domain "${td.name}"`);
  if (parsed.path === '') throw new Error(`"${parsed.toString()}" is not a member of trust domain "${td.name}"; path is empty`);
  return parsed;
}

/** SPIRE's TrustDomainWorkloadIDFromProto: a member, and not in the reserved `/spire` namespace. */
export function workloadIdFromSpire(td: TrustDomainT, id: SpireSpiffeId | null | undefined): SpiffeId {
  const parsed = spiffeIdFromSpire(id, 'id');
  if (!parsed.memberOf(td)) throw new Error(`"${parsed.toString()}" is not a member of trust domain "${td.name}"`);
  if (parsed.path === '') throw new Error(`"${parsed.toString()}" is not a workload in trust domain "${td.name}"; path is empty`);
  if (parsed.path === '/spire' || parsed.path.startsWith('/spire/')) {
    throw new Error(`"${parsed.toString()}" is not a workload in trust domain "${td.name}"; path is in the reserved namespace`);
  }
  return parsed;
}

/** SPIRE's SelectorsFromProto. */
export function selectorsFromSpire(list: readonly WireSelector[] | null | undefined): WireSelector[] {
  const out: WireSelector[] = [];
  for (const s of list ?? []) {
    if ((s?.type ?? '') === '') throw new Error('missing selector type');
    if (s.type.includes(':')) throw new Error("selector type contains ':'");
    if ((s.value ?? '') === '') throw new Error('missing selector value');
    out.push({ type: s.type, value: s.value });
  }
  return out;
}

/**
 * The first selector that repeats in `list`, as `type:value`. SPIRE stores an entry's
 * selectors under a unique key, so its create and update answer such an entry with
 * ALREADY_EXISTS for the item (Mayfly's own API calls it INVALID_ARGUMENT).
 */
export function repeatedSelector(list: readonly WireSelector[]): string | undefined {
  const seen = new Set<string>();
  for (const s of list) {
    const k = `${s.type}:${s.value}`;
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return undefined;
}

const MATCHES: readonly WireMatch[] = ['MATCH_EXACT', 'MATCH_SUBSET', 'MATCH_SUPERSET', 'MATCH_ANY'];

function matchOf(m: unknown): WireMatch {
  // proto-loader names known enum values; an unknown number stays a number (SPIRE's datastore refuses it).
  if (typeof m === 'string' && (MATCHES as readonly string[]).includes(m)) return m as WireMatch;
  throw new Error(`unhandled match behavior ${JSON.stringify(m)}`);
}

/** A SPIRE entry filter as Mayfly's, plus the predicate for what Mayfly cannot filter. */
export function entryFilterFromSpire(td: TrustDomainT, f: Partial<SpireEntryFilter> | null | undefined): ConvertedEntryFilter {
  const mayfly: MayflyEntryFilter = { by_spiffe_id: '', by_parent_id: '', by_selectors: null, by_federates_with: null };
  if (f === null || f === undefined) return { mayfly, empty: true };
  let empty = true;
  const hint = f.by_hint !== null && f.by_hint !== undefined ? f.by_hint.value : '';
  if (f.by_parent_id) {
    empty = false;
    try {
      mayfly.by_parent_id = memberIdFromSpire(td, f.by_parent_id).toString();
    } catch (err) {
      throw invalid(`malformed parent ID filter: ${errText(err)}`);
    }
  }
  if (f.by_spiffe_id) {
    empty = false;
    try {
      mayfly.by_spiffe_id = workloadIdFromSpire(td, f.by_spiffe_id).toString();
    } catch (err) {
      throw invalid(`malformed SPIFFE ID filter: ${errText(err)}`);
    }
  }
  if (f.by_selectors) {
    empty = false;
    let sels: WireSelector[];
    let match: WireMatch;
    try {
      sels = selectorsFromSpire(f.by_selectors.selectors);
      match = matchOf(f.by_selectors.match);
    } catch (err) {
      throw invalid(`malformed selectors filter: ${errText(err)}`);
    }
    if (sels.length === 0) throw invalid('malformed selectors filter: empty selector set');
    mayfly.by_selectors = { selectors: sels, match };
  }
  if (f.by_federates_with) {
    empty = false;
    const tds: string[] = [];
    let match: WireMatch;
    try {
      for (const t of f.by_federates_with.trust_domains ?? []) tds.push(TrustDomain.parse(t).name);
      match = matchOf(f.by_federates_with.match);
    } catch (err) {
      throw invalid(`malformed federates with filter: ${errText(err)}`);
    }
    if (tds.length === 0) throw invalid('malformed federates with filter: empty trust domain set');
    mayfly.by_federates_with = { trust_domains: tds, match };
  }
  const downstream = f.by_downstream !== null && f.by_downstream !== undefined ? f.by_downstream.value : undefined;
  if (hint === '' && downstream === undefined) return { mayfly, empty };
  // SPIRE's datastore ignores an empty hint filter; a downstream filter is either value.
  return {
    mayfly,
    empty: false,
    keep: (e) => (hint === '' || e.hint === hint) && (downstream === undefined || e.downstream === downstream),
  };
}

/** The entry fields SPIRE's input mask names (`EntryMask`; `revision_number` and `created_at` are never written). */
type Maskable = (typeof MASKABLE_FIELDS)[number];
export const MASKABLE_FIELDS = ['spiffe_id', 'parent_id', 'selectors', 'x509_svid_ttl', 'federates_with', 'admin', 'downstream', 'expires_at', 'dns_names', 'store_svid', 'jwt_svid_ttl', 'hint'] as const;

/**
 * `stored` (Mayfly's entry as read) with the fields of SPIRE's `update` that `inputMask`
 * names (all of them when it is null) replaced, as SPIRE's UpdateRegistrationEntry does.
 * Mayfly's own fields (owner, labels, purpose) are kept as stored, and the revision is the
 * stored one: SPIRE's update has no revision check (last writer wins), so none is made.
 */
export function mergeEntryUpdate(stored: WireEntry, update: Partial<SpireEntry>, inputMask: SpireMask | null | undefined): WireEntry {
  const wants = (k: Maskable): boolean => inputMask === null || inputMask === undefined || inputMask[k] === true;
  // entryFromSpire checks IDs and refuses store_svid; fields the mask leaves out are taken
  // from the stored entry before the check, so only named fields are judged.
  const probe: Partial<SpireEntry> = {
    store_svid: wants('store_svid') ? (update.store_svid ?? false) : false,
    spiffe_id: wants('spiffe_id') ? (update.spiffe_id ?? null) : storedId(stored.spiffe_id),
    parent_id: wants('parent_id') ? (update.parent_id ?? null) : storedId(stored.parent_id),
  };
  const converted = entryFromSpire({ ...update, ...probe });
  const out: WireEntry = { ...stored, selectors: [...stored.selectors], dns_names: [...stored.dns_names], federates_with: [...stored.federates_with] };
  if (wants('spiffe_id')) out.spiffe_id = converted.spiffe_id;
  if (wants('parent_id')) out.parent_id = converted.parent_id;
  if (wants('selectors')) out.selectors = converted.selectors;
  if (wants('x509_svid_ttl')) out.x509_svid_ttl = converted.x509_svid_ttl;
  if (wants('jwt_svid_ttl')) out.jwt_svid_ttl = converted.jwt_svid_ttl;
  if (wants('federates_with')) out.federates_with = converted.federates_with;
  if (wants('admin')) out.admin = converted.admin;
  if (wants('downstream')) out.downstream = converted.downstream;
  if (wants('expires_at')) out.expires_at = converted.expires_at;
  if (wants('dns_names')) out.dns_names = converted.dns_names;
  if (wants('hint')) out.hint = converted.hint;
  return out;
}

function storedId(id: string): SpireSpiffeId {
  const p = SpiffeId.parse(id);
  return { trust_domain: p.trustDomain.name, path: p.path };
}
