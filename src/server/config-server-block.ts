/**
 * @module server/config-server-block
 *
 * The `server { … }` block of `server.conf`: trust domain, data directory, admin socket,
 * the agent API's address, logging, and the CA's lifetimes, key types and subject.
 * Command-line overrides win over the block. Problems go to the caller's collection.
 */
import { at, block, bool, checkKeys, duration, port, str } from '../config/accessors.js';
import { DEFAULT_SERVER_PORT, DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import type { HclObject, HclValue } from '../config/hcl.js';
import { parseLogLevel, type LogLevel } from '../config/log-level.js';
import type { Problems } from '../config/problems.js';
import { defaultSocketPath } from '../securefs/index.js';
import { TrustDomain } from '../spiffe/id.js';
import { isKeyType, type KeyType } from '../spiffe/keys.js';
import type { NewFederationRelationship } from '../datastore/datastore.js';
import { readFederatesWith } from './config-federates-with.js';

export const DEFAULT_DATA_DIR = './.mayfly/server';
export const DEFAULT_BIND_ADDRESS = '127.0.0.1';

/** What the `server` block sets (and the overrides below). */
export interface ServerCoreSettings {
  trustDomain: string;
  dataDir: string;
  socketPath: string;
  bindAddress: string;
  bindPort: number;
  logLevel: LogLevel;
  /** `log_format`: json (default) or text. */
  logFormat?: 'json' | 'text';
  /** `log_file`: append logs here instead of stderr. */
  logFile?: string;
  caTtlSeconds?: number;
  defaultX509SvidTtl?: number;
  defaultJwtSvidTtl?: number;
  agentTtl?: number;
  caKeyType?: KeyType;
  jwtKeyType?: KeyType;
  caSubject?: { commonName?: string; organization?: string; country?: string };
  /** `jwt_issuer`: the `iss` of every minted JWT-SVID (none when unset). */
  jwtIssuer?: string;
  /** Static federation relationships (`federation { federates_with "td" { ... } }`, server/config-federates-with). */
  federatesWith?: NewFederationRelationship[];
  /** `require_owner` (issue 11): entries without an owner are refused. */
  requireOwner?: boolean;
}

/** Command-line overrides (all optional); they win over the file. */
export interface ServerOverrides {
  trustDomain?: string;
  dataDir?: string;
  socketPath?: string;
  bindAddress?: string;
  bindPort?: number;
  logLevel?: string;
}

const SERVER_KEYS = [
  'bind_address', 'bind_port', 'trust_domain', 'data_dir', 'log_level', 'log_format', 'log_file', 'socket_path',
  'ca_ttl', 'default_x509_svid_ttl', 'default_jwt_svid_ttl', 'agent_ttl', 'ca_key_type', 'jwt_key_type', 'ca_subject',
  'jwt_issuer', 'federation', 'oidc_discovery', 'delegation', 'console', 'require_owner', 'registrars', 'certification',
] as const;

/** Duration keys of the `server` block and the settings they set (seconds). */
const DURATIONS = [
  ['ca_ttl', 'caTtlSeconds'],
  ['default_x509_svid_ttl', 'defaultX509SvidTtl'],
  ['default_jwt_svid_ttl', 'defaultJwtSvidTtl'],
  ['agent_ttl', 'agentTtl'],
] as const satisfies readonly (readonly [string, keyof ServerCoreSettings])[];

function keyType(obj: HclObject, key: string, where: string, p: Problems): KeyType | undefined {
  const v = str(obj, key, where, p);
  if (v === undefined) return undefined;
  if (!isKeyType(v)) {
    p.add(`${at(where, key)} must be one of ec-p256, ec-p384, rsa-2048; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return v;
}

function firstString(v: HclValue | undefined, what: string, p: Problems): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) {
    if (v.length > 1) p.add(`${what} may hold one value (Mayfly writes one RDN of each kind)`);
    return v[0] as string | undefined;
  }
  p.add(`${what} must be a string or a list of strings`);
  return undefined;
}

function caSubject(srv: HclObject, p: Problems): ServerCoreSettings['caSubject'] {
  const subject = block(srv, 'ca_subject', 'server', p);
  if (subject === undefined) return undefined;
  const w = 'server.ca_subject';
  checkKeys(subject, ['country', 'organization', 'common_name'], w, p);
  const s: NonNullable<ServerCoreSettings['caSubject']> = {};
  const country = firstString(subject.country, `${w}.country`, p);
  if (country) s.country = country;
  const org = firstString(subject.organization, `${w}.organization`, p);
  if (org) s.organization = org;
  const cn = firstString(subject.common_name, `${w}.common_name`, p);
  if (cn) s.commonName = cn;
  return s;
}

/** The settings the `server` block (`{}` when absent) and the overrides give. */
export function readServerBlock(srv: HclObject, overrides: ServerOverrides, p: Problems, _notices: string[]): ServerCoreSettings {
  const w = 'server';
  checkKeys(srv, SERVER_KEYS, w, p);
  const trustDomainRaw = overrides.trustDomain ?? str(srv, 'trust_domain', w, p) ?? DEFAULT_TRUST_DOMAIN;
  let trustDomain = DEFAULT_TRUST_DOMAIN;
  try {
    trustDomain = TrustDomain.parse(trustDomainRaw).name;
  } catch (err) {
    p.add(`trust_domain: ${(err as Error).message}`);
  }
  const levelRaw = overrides.logLevel ?? str(srv, 'log_level', w, p) ?? 'info';
  const logLevel = parseLogLevel(levelRaw);
  if (logLevel === undefined) p.add(`${overrides.logLevel !== undefined ? '-logLevel' : 'server.log_level'} must be DEBUG, INFO, WARN or ERROR; got ${JSON.stringify(levelRaw)}`);
  const logFormat = str(srv, 'log_format', w, p);
  const fmt = logFormat?.toLowerCase();
  if (fmt !== undefined && fmt !== 'json' && fmt !== 'text') p.add(`server.log_format must be "json" or "text"; got ${JSON.stringify(logFormat)}`);
  const logFile = str(srv, 'log_file', w, p);

  const s: ServerCoreSettings = {
    trustDomain,
    dataDir: overrides.dataDir ?? str(srv, 'data_dir', w, p) ?? DEFAULT_DATA_DIR,
    socketPath: overrides.socketPath ?? str(srv, 'socket_path', w, p) ?? defaultSocketPath('server'),
    bindAddress: overrides.bindAddress ?? str(srv, 'bind_address', w, p) ?? DEFAULT_BIND_ADDRESS,
    bindPort: overrides.bindPort ?? port(srv.bind_port, 'server.bind_port', p) ?? DEFAULT_SERVER_PORT,
    logLevel: logLevel ?? 'info',
    ...(fmt === 'text' || fmt === 'json' ? { logFormat: fmt } : {}),
    ...(logFile !== undefined ? { logFile } : {}),
  };
  for (const [key, field] of DURATIONS) {
    const v = duration(srv, key, w, p);
    if (v !== undefined) s[field] = v;
  }
  for (const [key, field] of [['ca_key_type', 'caKeyType'], ['jwt_key_type', 'jwtKeyType']] as const) {
    const v = keyType(srv, key, w, p);
    if (v !== undefined) s[field] = v;
  }
  const requireOwner = bool(srv, 'require_owner', w, p);
  if (requireOwner !== undefined) s.requireOwner = requireOwner;
  const jwtIssuer = str(srv, 'jwt_issuer', w, p, { nonEmpty: true });
  if (jwtIssuer !== undefined) s.jwtIssuer = jwtIssuer;
  const subject = caSubject(srv, p);
  if (subject !== undefined) s.caSubject = subject;
  // The federation block's keys are checked, and its bundle_endpoint read, by server/config-federation.
  const fed = block(srv, 'federation', w, p);
  if (fed !== undefined) {
    const rels = readFederatesWith(fed, trustDomain, 'server.federation', p);
    if (rels.length > 0) s.federatesWith = rels;
  }
  if (s.caTtlSeconds !== undefined && s.defaultX509SvidTtl !== undefined && s.defaultX509SvidTtl >= s.caTtlSeconds) {
    p.add('server.default_x509_svid_ttl must be shorter than server.ca_ttl');
  }
  return s;
}
