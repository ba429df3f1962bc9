/**
 * @module server/config-delegation
 *
 * `server { delegation { … } }`: the RFC 8693 token exchange endpoint (src/delegation),
 * off unless the block is there (or `enabled = false`). Keys: `address` (default
 * 127.0.0.1), `port` (default 8445), `spiffe_id` of the endpoint's own X509-SVID (default
 * `spiffe://<td>/spire/server`), `max_ttl` (cap of an issued token's life, default and
 * ceiling 5m), `upstream { issuer audience algorithms jwks_file }` (the one pinned user
 * token issuer, its keys a static JWKS file) and `rules = [ { agents users groups audiences
 * scopes max_ttl_seconds } ]` (delegation/policy's parser; its errors are reported under
 * `server.delegation.`). Problems go to the caller's collection.
 *
 * Threat: a delegation endpoint started with a policy or issuer other than the one written.
 * Every problem refuses the start; nothing falls back to a permissive default.
 */
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { block, bool, checkKeys, duration, port, str } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';
import { DEFAULT_MAX_TTL_SECONDS, parseDelegationPolicy, type DelegationPolicy } from '../delegation/policy.js';
import { JWT_SVID_ALGORITHMS } from '../spiffe/jwt/algorithms.js';
import { SpiffeId } from '../spiffe/id.js';

export interface DelegationSettings {
  address: string;
  port: number;
  /** SPIFFE ID of the endpoint's X509-SVID; default the server's. */
  spiffeId?: string;
  maxTtlSeconds: number;
  upstream: { issuer: string; audience: string; algorithms: string[]; jwks: JSONWebKeySet; jwksFile: string };
  policy: DelegationPolicy;
}

export const DEFAULT_DELEGATION_ADDRESS = '127.0.0.1';
export const DEFAULT_DELEGATION_PORT = 8445;

function readJwks(file: string, where: string, p: Problems): JSONWebKeySet | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    p.add(`${where}: cannot read a JWKS from ${file}: ${(err as Error).message}`);
    return undefined;
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))) {
    p.add(`${where}: ${file} is no JWKS (expected {"keys": [ … ]} with at least one key)`);
    return undefined;
  }
  return doc as JSONWebKeySet;
}

/** `server.delegation`, when configured and enabled. */
export function readDelegationBlock(srv: HclObject, trustDomain: string, p: Problems): DelegationSettings | undefined {
  const d = block(srv, 'delegation', 'server', p);
  if (d === undefined) return undefined;
  const w = 'server.delegation';
  checkKeys(d, ['enabled', 'address', 'port', 'spiffe_id', 'max_ttl', 'upstream', 'rules'], w, p);
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
  const u = block(d, 'upstream', w, p);
  const wu = `${w}.upstream`;
  if (u === undefined) p.add(`${wu} is required: the user token issuer { issuer, audience, algorithms, jwks_file }`);
  let upstream: DelegationSettings['upstream'] | undefined;
  if (u !== undefined) {
    checkKeys(u, ['issuer', 'audience', 'algorithms', 'jwks_file'], wu, p);
    const issuer = str(u, 'issuer', wu, p, { nonEmpty: true });
    const audience = str(u, 'audience', wu, p, { nonEmpty: true });
    const jwksFile = str(u, 'jwks_file', wu, p, { nonEmpty: true });
    for (const [k, v] of [['issuer', issuer], ['audience', audience], ['jwks_file', jwksFile]] as const) if (v === undefined) p.add(`${wu}.${k} is required`);
    const algs = u.algorithms;
    let algorithms: string[] | undefined;
    if (!Array.isArray(algs) || algs.length === 0 || !algs.every((a) => typeof a === 'string')) {
      p.add(`${wu}.algorithms must be a non-empty list of JWS algorithms (e.g. ["RS256"])`);
    } else {
      const bad = algs.filter((a) => !(JWT_SVID_ALGORITHMS as readonly string[]).includes(a));
      if (bad.length > 0) p.add(`${wu}.algorithms: ${bad.join(', ')} not allowed (one of ${JWT_SVID_ALGORITHMS.join(', ')})`);
      else algorithms = algs;
    }
    const jwks = jwksFile !== undefined ? readJwks(jwksFile, `${wu}.jwks_file`, p) : undefined;
    if (issuer !== undefined && audience !== undefined && jwksFile !== undefined && algorithms !== undefined && jwks !== undefined) {
      upstream = { issuer, audience, algorithms, jwks, jwksFile };
    }
  }
  let policy: DelegationPolicy | undefined;
  try {
    policy = parseDelegationPolicy({ rules: d.rules }, Math.min(maxTtl, DEFAULT_MAX_TTL_SECONDS));
  } catch (err) {
    p.add(`${w}.${(err as Error).message.replace(/^delegation policy /, '')}`);
  }
  if (upstream === undefined || policy === undefined) return undefined;
  return { address, port: portN, ...(spiffeId !== undefined ? { spiffeId } : {}), maxTtlSeconds: maxTtl, upstream, policy };
}
