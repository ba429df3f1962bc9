/**
 * @module server/spire-api/agent-convert
 *
 * SPIRE's agent filters and agent IDs in Mayfly's terms, with SPIRE's checks and wording
 * (agent/v1 `service.go`, api/id.go). Mayfly's datastore filters agents by ban state and
 * expiry; SPIRE's other filters (attestation type, re-attestability, selectors) become a
 * predicate the paging applies (paging.ts).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { formatSelector } from '../../registration/selector.js';
import { setMatches } from '../../datastore/records.js';
import type { SpiffeId, TrustDomain } from '../../spiffe/id.js';
import type { WireAgent, WireMatch, WireSelector } from '../messages.js';
import { spireError } from './spire-call.js';
import { selectorsFromSpire, type SpireSelectorMatch } from './entry-convert.js';
import { spiffeIdFromSpire, type SpireSpiffeId } from './ids.js';

/** `ListAgentsRequest.Filter` / `CountAgentsRequest.Filter` as proto-loader decodes them. */
export interface SpireAgentFilter {
  by_attestation_type: string;
  by_selector_match: SpireSelectorMatch | null;
  by_banned: { value: boolean } | null;
  by_can_reattest: { value: boolean } | null;
  by_expires_before: string;
}

export interface MayflyAgentFilter {
  by_banned: 'BAN_FILTER_ANY' | 'BAN_FILTER_BANNED' | 'BAN_FILTER_NOT_BANNED';
  by_expired_before: number;
}

export interface ConvertedAgentFilter {
  mayfly: MayflyAgentFilter;
  keep?: (a: WireAgent) => boolean;
  /** No filter at all (a plain count). */
  empty: boolean;
}

const SET_MATCH: Record<WireMatch, 'exact' | 'subset' | 'superset' | 'any'> = {
  MATCH_EXACT: 'exact',
  MATCH_SUBSET: 'subset',
  MATCH_SUPERSET: 'superset',
  MATCH_ANY: 'any',
};

/**
 * SPIRE's `by_expires_before` layout, Go's "2006-01-02 15:04:05 -0700 -07". SPIRE ignores
 * a value it cannot parse (the zero time: no filter), and so does this.
 */
export function expiresBeforeFromSpire(s: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) [+-]\d{2}$/.exec(s);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, se, sign, oh, om] = m.slice(1) as [string, string, string, string, string, string, string, string, string];
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se));
  if (Number.isNaN(utc)) return undefined;
  const offset = (Number(oh) * 60 + Number(om)) * 60 * (sign === '-' ? -1 : 1);
  const t = Math.floor(utc / 1000) - offset;
  return t > 0 ? t : undefined;
}

/** A SPIRE agent filter as Mayfly's, plus the predicate for what Mayfly cannot filter. */
export function agentFilterFromSpire(f: Partial<SpireAgentFilter> | null | undefined): ConvertedAgentFilter {
  const mayfly: MayflyAgentFilter = { by_banned: 'BAN_FILTER_ANY', by_expired_before: 0 };
  if (f === null || f === undefined) return { mayfly, empty: true };
  let empty = true;
  if (f.by_banned) {
    empty = false;
    mayfly.by_banned = f.by_banned.value ? 'BAN_FILTER_BANNED' : 'BAN_FILTER_NOT_BANNED';
  }
  const before = expiresBeforeFromSpire(f.by_expires_before ?? '');
  if (before !== undefined) {
    empty = false;
    mayfly.by_expired_before = before;
  }
  const type = f.by_attestation_type ?? '';
  const reattest = f.by_can_reattest ? f.by_can_reattest.value : undefined;
  let sel: { keys: string[]; match: 'exact' | 'subset' | 'superset' | 'any' } | undefined;
  if (f.by_selector_match) {
    let sels: WireSelector[];
    try {
      sels = selectorsFromSpire(f.by_selector_match.selectors);
    } catch (err) {
      throw spireError(GrpcStatus.INVALID_ARGUMENT, `failed to parse selectors: ${(err as Error).message}`);
    }
    const match = SET_MATCH[f.by_selector_match.match];
    if (match === undefined) throw spireError(GrpcStatus.INTERNAL, `failed to list agents: unhandled match behavior ${JSON.stringify(f.by_selector_match.match)}`);
    sel = { keys: [...new Set(sels.map(formatSelector))], match };
  }
  if (type === '' && reattest === undefined && sel === undefined) return { mayfly, empty };
  const want = sel;
  return {
    mayfly,
    empty: false,
    keep: (a) =>
      (type === '' || a.attestation_type === type) &&
      (reattest === undefined || a.can_reattest === reattest) &&
      (want === undefined || setMatches([...new Set(a.selectors.map(formatSelector))], want.keys, want.match)),
  };
}

/** SPIRE's TrustDomainAgentIDFromProto; INVALID_ARGUMENT "invalid agent ID: ..." otherwise. */
export function agentIdFromSpire(td: TrustDomain, id: SpireSpiffeId | null | undefined): SpiffeId {
  try {
    const parsed = spiffeIdFromSpire(id, 'id');
    if (!parsed.memberOf(td)) throw new Error(`"${parsed.toString()}" is not a member of trust domain "${td.name}"`);
    if (parsed.path === '') throw new Error(`"${parsed.toString()}" is not an agent in trust domain "${td.name}"; path is empty`);
    if (!parsed.path.startsWith('/spire/agent/')) throw new Error(`"${parsed.toString()}" is not an agent in trust domain "${td.name}"; path is not in the agent namespace`);
    return parsed;
  } catch (err) {
    const msg = err instanceof Error ? ((err as { details?: string }).details ?? err.message) : String(err);
    throw spireError(GrpcStatus.INVALID_ARGUMENT, `invalid agent ID: ${msg}`);
  }
}
