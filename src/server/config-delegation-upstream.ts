/**
 * @module server/config-delegation-upstream
 *
 * `server.delegation.upstream { issuer audience algorithms (jwks_file | discovery_url
 * [ca_file] [refresh_interval]) }`: the one pinned issuer of user tokens and where its keys
 * come from — a static JWKS file read at start, or an OIDC discovery URL fetched at run time
 * (delegation/upstream-jwks). Exactly one of `jwks_file` and `discovery_url`.
 *
 * Threat: keys taken from somewhere other than what the operator pinned. `discovery_url`
 * must be https (no userinfo, no fragment); `ca_file` must hold at least one certificate and
 * is the only trust for the fetch when given; a problem refuses the start naming the key.
 * An unreachable issuer is no config problem: it is retried at run time.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import { block, checkKeys, duration, str } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';
import { JWT_SVID_ALGORITHMS } from '../spiffe/jwt/algorithms.js';

export const DEFAULT_UPSTREAM_REFRESH_SECONDS = 300;
export const MIN_UPSTREAM_REFRESH_SECONDS = 10;
export const MAX_UPSTREAM_REFRESH_SECONDS = 86_400;

export interface UpstreamDiscovery {
  url: string;
  /** PEM roots from `ca_file` (trusted instead of the system roots). */
  ca?: string;
  caFile?: string;
  refreshIntervalSeconds: number;
}

export interface UpstreamSettings {
  issuer: string;
  audience: string;
  algorithms: string[];
  /** With `jwks_file`: the static JWKS read at start. */
  jwks?: JSONWebKeySet;
  jwksFile?: string;
  /** With `discovery_url`. */
  discovery?: UpstreamDiscovery;
}

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

function readCaFile(file: string, where: string, p: Problems): string | undefined {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    p.add(`${where}: cannot read ${file}: ${(err as Error).message}`);
    return undefined;
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    p.add(`${where}: ${file} holds no PEM certificate`);
    return undefined;
  }
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (err) {
      p.add(`${where}: certificate ${i} of ${file} does not parse: ${(err as Error).message}`);
      return undefined;
    }
  }
  return blocks.join('\n');
}

function discoveryUrl(raw: string, where: string, p: Problems): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    p.add(`${where}: ${JSON.stringify(raw)} is not a URL`);
    return undefined;
  }
  if (u.protocol !== 'https:') p.add(`${where} must be an https URL (keys are fetched over https only); got ${u.protocol}`);
  else if (u.username !== '' || u.password !== '') p.add(`${where} must not carry userinfo`);
  else if (u.hash !== '') p.add(`${where} must not carry a fragment`);
  else return u.href;
  return undefined;
}

/** `server.delegation.upstream` (required); undefined with problems recorded when wrong. */
export function readUpstreamBlock(d: HclObject, w: string, p: Problems): UpstreamSettings | undefined {
  const u = block(d, 'upstream', w, p);
  const wu = `${w}.upstream`;
  if (u === undefined) {
    p.add(`${wu} is required: the user token issuer { issuer, audience, algorithms, jwks_file or discovery_url }`);
    return undefined;
  }
  checkKeys(u, ['issuer', 'audience', 'algorithms', 'jwks_file', 'discovery_url', 'ca_file', 'refresh_interval'], wu, p);
  const issuer = str(u, 'issuer', wu, p, { nonEmpty: true });
  const audience = str(u, 'audience', wu, p, { nonEmpty: true });
  for (const [k, v] of [['issuer', issuer], ['audience', audience]] as const) if (v === undefined) p.add(`${wu}.${k} is required`);
  const algs = u.algorithms;
  let algorithms: string[] | undefined;
  if (!Array.isArray(algs) || algs.length === 0 || !algs.every((a) => typeof a === 'string')) {
    p.add(`${wu}.algorithms must be a non-empty list of JWS algorithms (e.g. ["RS256"])`);
  } else {
    const bad = algs.filter((a) => !(JWT_SVID_ALGORITHMS as readonly string[]).includes(a));
    if (bad.length > 0) p.add(`${wu}.algorithms: ${bad.join(', ')} not allowed (one of ${JWT_SVID_ALGORITHMS.join(', ')})`);
    else algorithms = algs;
  }

  const jwksFile = str(u, 'jwks_file', wu, p, { nonEmpty: true });
  const rawUrl = str(u, 'discovery_url', wu, p, { nonEmpty: true });
  const caFile = str(u, 'ca_file', wu, p, { nonEmpty: true });
  const refresh = duration(u, 'refresh_interval', wu, p);
  let keys: Pick<UpstreamSettings, 'jwks' | 'jwksFile' | 'discovery'> | undefined;
  if ((jwksFile === undefined) === (rawUrl === undefined)) {
    p.add(`${wu}: set exactly one of jwks_file (a static JWKS) and discovery_url (OIDC discovery)`);
  } else if (jwksFile !== undefined) {
    if (caFile !== undefined) p.add(`${wu}.ca_file applies to discovery_url only`);
    if (refresh !== undefined) p.add(`${wu}.refresh_interval applies to discovery_url only`);
    const jwks = readJwks(jwksFile, `${wu}.jwks_file`, p);
    if (jwks !== undefined) keys = { jwks, jwksFile };
  } else if (rawUrl !== undefined) {
    const url = discoveryUrl(rawUrl, `${wu}.discovery_url`, p);
    const ca = caFile !== undefined ? readCaFile(caFile, `${wu}.ca_file`, p) : undefined;
    const refreshIntervalSeconds = refresh ?? DEFAULT_UPSTREAM_REFRESH_SECONDS;
    const refreshOk = refreshIntervalSeconds >= MIN_UPSTREAM_REFRESH_SECONDS && refreshIntervalSeconds <= MAX_UPSTREAM_REFRESH_SECONDS;
    if (!refreshOk) p.add(`${wu}.refresh_interval must be between ${MIN_UPSTREAM_REFRESH_SECONDS}s and ${MAX_UPSTREAM_REFRESH_SECONDS}s`);
    if (url !== undefined && refreshOk && (caFile === undefined || ca !== undefined)) {
      keys = { discovery: { url, refreshIntervalSeconds, ...(ca !== undefined && caFile !== undefined ? { ca, caFile } : {}) } };
    }
  }
  if (issuer === undefined || audience === undefined || algorithms === undefined || keys === undefined) return undefined;
  return { issuer, audience, algorithms, ...keys };
}
