/**
 * @module server/config-delegation
 *
 * `server { delegation { … } }`: the RFC 8693 token exchange endpoint (src/delegation),
 * off unless the block is there (or `enabled = false`). Keys: `address` (default
 * 127.0.0.1), `port` (default 8445), `spiffe_id` of the endpoint's own X509-SVID (default
 * `spiffe://<td>/spire/server`), `max_ttl` (cap of an issued token's life, default and
 * ceiling 5m), `upstream { … }` (the one pinned user token issuer, its keys a static JWKS
 * file or OIDC discovery: server/config-delegation-upstream), `rate_limit { per_actor
 * per_actor_burst per_address per_address_burst enabled }` (token buckets, on by default)
 * and `rules = [ { agents users groups audiences scopes max_ttl_seconds } ]` (delegation/policy's parser; its errors are reported under
 * `server.delegation.`). Problems go to the caller's collection.
 *
 * Threat: a delegation endpoint started with a policy or issuer other than the one written.
 * Every problem refuses the start; nothing falls back to a permissive default.
 */
import { block, bool, checkKeys, duration, port, str } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';
import { DEFAULT_MAX_TTL_SECONDS, parseDelegationPolicy, type DelegationPolicy } from '../delegation/policy.js';
import { SpiffeId } from '../spiffe/id.js';
import { readUpstreamBlock, type UpstreamSettings } from './config-delegation-upstream.js';

export interface DelegationSettings {
  address: string;
  port: number;
  /** SPIFFE ID of the endpoint's X509-SVID; default the server's. */
  spiffeId?: string;
  maxTtlSeconds: number;
  upstream: UpstreamSettings;
  /** Token buckets of the token endpoint; absent when `rate_limit { enabled = false }`. */
  rateLimit?: RateLimitSettings;
  policy: DelegationPolicy;
}

export const DEFAULT_DELEGATION_ADDRESS = '127.0.0.1';
export const DEFAULT_DELEGATION_PORT = 8445;

export interface RateLimitSettings {
  /** Exchanges per second per actor SPIFFE ID, and the burst. */
  perActor: { ratePerSecond: number; burst: number };
  /** Requests per second per source address, and the burst. */
  perAddress: { ratePerSecond: number; burst: number };
}

export const DEFAULT_RATE_LIMIT: RateLimitSettings = { perActor: { ratePerSecond: 10, burst: 20 }, perAddress: { ratePerSecond: 50, burst: 100 } };

function positive(obj: HclObject, key: string, where: string, p: Problems, integer: boolean): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1_000_000 || (integer && !Number.isInteger(v))) {
    p.add(`${where}.${key} must be a ${integer ? 'positive whole number' : 'positive number'} (at most 1000000)`);
    return undefined;
  }
  return v;
}

/** `server.delegation.rate_limit`: defaults when absent, undefined when `enabled = false`. */
function readRateLimit(d: HclObject, w: string, p: Problems): RateLimitSettings | undefined {
  const r = block(d, 'rate_limit', w, p);
  if (r === undefined) return DEFAULT_RATE_LIMIT;
  const wr = `${w}.rate_limit`;
  checkKeys(r, ['enabled', 'per_actor', 'per_actor_burst', 'per_address', 'per_address_burst'], wr, p);
  if (bool(r, 'enabled', wr, p) === false) return undefined;
  const d0 = DEFAULT_RATE_LIMIT;
  return {
    perActor: { ratePerSecond: positive(r, 'per_actor', wr, p, false) ?? d0.perActor.ratePerSecond, burst: positive(r, 'per_actor_burst', wr, p, true) ?? d0.perActor.burst },
    perAddress: { ratePerSecond: positive(r, 'per_address', wr, p, false) ?? d0.perAddress.ratePerSecond, burst: positive(r, 'per_address_burst', wr, p, true) ?? d0.perAddress.burst },
  };
}

/** `server.delegation`, when configured and enabled. */
export function readDelegationBlock(srv: HclObject, trustDomain: string, p: Problems): DelegationSettings | undefined {
  const d = block(srv, 'delegation', 'server', p);
  if (d === undefined) return undefined;
  const w = 'server.delegation';
  checkKeys(d, ['enabled', 'address', 'port', 'spiffe_id', 'max_ttl', 'upstream', 'rate_limit', 'rules'], w, p);
  if (bool(d, 'enabled', w, p) === false) return undefined;
  const address = str(d, 'address', w, p, { nonEmpty: true }) ?? DEFAULT_DELEGATION_ADDRESS;
  const portN = port(d.port, `${w}.port`, p) ?? DEFAULT_DELEGATION_PORT;
  const spiffeId = str(d, 'spiffe_id', w, p, { nonEmpty: true });
  if (spiffeId !== undefined) {
    try {
      if (SpiffeId.parse(spiffeId).trustDomain.name !== trustDomain) p.add(`${w}.spiffe_id must be in this trust domain (${trustDomain}); got ${spiffeId}`);
    } catch (err) {
      p.add(`${w}.spiffe_id: ${(err as Error).message}`);
    }
  }
  const maxTtl = duration(d, 'max_ttl', w, p) ?? DEFAULT_MAX_TTL_SECONDS;
  if (maxTtl <= 0 || maxTtl > DEFAULT_MAX_TTL_SECONDS) p.add(`${w}.max_ttl must be between 1s and ${DEFAULT_MAX_TTL_SECONDS}s (delegated tokens are short)`);
  const upstream = readUpstreamBlock(d, w, p);
  const rateLimit = readRateLimit(d, w, p);
  let policy: DelegationPolicy | undefined;
  try {
    policy = parseDelegationPolicy({ rules: d.rules }, Math.min(maxTtl, DEFAULT_MAX_TTL_SECONDS));
  } catch (err) {
    p.add(`${w}.${(err as Error).message.replace(/^delegation policy /, '')}`);
  }
  if (upstream === undefined || policy === undefined) return undefined;
  return { address, port: portN, ...(spiffeId !== undefined ? { spiffeId } : {}), maxTtlSeconds: maxTtl, upstream, ...(rateLimit !== undefined ? { rateLimit } : {}), policy };
}
