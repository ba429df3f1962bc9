/**
 * @module server/config
 *
 * `mayfly-server run`'s configuration: the core keys of SPIRE's `server.conf` (HCL, or the
 * same tree as JSON), command-line overrides, and defaults that let `run` start with no
 * file at all. Every problem in a file is collected and reported together; an unknown key
 * is a problem (a typo such as `bind_prot` must not silently fall back to a default).
 *
 * Defaults, and why they differ from SPIRE's:
 * - trust domain `example.org`, data in `./.mayfly/server`, admin socket
 *   `defaultSocketPath('server')` (securefs/socket-paths): `/run/mayfly/server/private/api.sock`
 *   as root, else under `$XDG_RUNTIME_DIR/mayfly` (SPIRE: `/tmp/spire-server/private/api.sock`,
 *   which any local user can create first);
 * - the agent API binds `127.0.0.1:8081`, not SPIRE's `0.0.0.0:8081`: a try-out should not
 *   expose a CA on every interface. Set `bind_address = "0.0.0.0"` for agents on other hosts;
 * - metrics and health on `127.0.0.1:9988` (`/metrics`, `/live`, `/ready`).
 *
 * Mapping of SPIRE plugins (Mayfly has one implementation of each):
 * - `DataStore "sql"` (database_type `sqlite3`): Mayfly's LevelDB datastore in
 *   `<data_dir>/datastore`; the connection string is not used. With database_type
 *   `postgres`: the PostgreSQL datastore at `connection_string` (URL or libpq
 *   keyword/value form), which several servers of one trust domain may share.
 * - `KeyManager "disk" { keys_path }`: keys in `<dirname(keys_path)>/keys/` (one PKCS#8 file
 *   per key, mode 0600). `KeyManager "memory"`: keys never touch the disk.
 * - `UpstreamAuthority "disk" { cert_file_path key_file_path bundle_file_path }`.
 * - `NodeAttestor "join_token"`: always available (agents outside any cluster can still be
 *   brought in with `token generate`) unless configured with `enabled = false`.
 * - `NodeAttestor "k8s_psat" { plugin_data { clusters = { ... } } }`: read by
 *   `parseK8sPsatPluginData` (attestors/node/k8s_psat/config), stored as `k8sPsat`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseK8sPsatPluginData } from '../attestors/node/k8s_psat/config.js';
import { K8sPsatAttestor, type K8sPsatAttestorConfig } from '../attestors/node/k8s_psat/k8s_psat.js';
import { defaultSocketPath } from '../securefs/index.js';
import { TrustDomain } from '../spiffe/id.js';
import { isKeyType, type KeyType } from '../spiffe/keys.js';
import { ConfigError, parseConfigText, type HclObject, type HclValue } from './hcl.js';

export { ConfigError } from './hcl.js';

export const DEFAULT_TRUST_DOMAIN = 'example.org';
export const DEFAULT_DATA_DIR = './.mayfly/server';
export const DEFAULT_BIND_ADDRESS = '127.0.0.1';
export const DEFAULT_BIND_PORT = 8081;
export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const DEFAULT_METRICS_PORT = 9988;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface HttpListenerSettings {
  enabled: boolean;
  host: string;
  port: number;
}

export interface ServerSettings {
  trustDomain: string;
  dataDir: string;
  socketPath: string;
  bindAddress: string;
  bindPort: number;
  logLevel: LogLevel;
  caTtlSeconds?: number;
  defaultX509SvidTtl?: number;
  defaultJwtSvidTtl?: number;
  agentTtl?: number;
  caKeyType?: KeyType;
  jwtKeyType?: KeyType;
  caSubject?: { commonName?: string; organization?: string; country?: string };
  /** Where the LevelDB datastore lives. */
  datastorePath: string;
  /** Set when `DataStore "sql"` has database_type `postgres`: the PostgreSQL datastore is used instead of LevelDB. */
  postgres?: { connectionString: string };
  keyManager: { kind: 'disk'; dataDir: string } | { kind: 'memory' };
  upstream?: { certFile: string; keyFile: string; bundleFile?: string };
  /** Enabled node attestor names (`join_token`, `k8s_psat`). */
  nodeAttestors: string[];
  /** `NodeAttestor "k8s_psat"` settings, when that attestor is configured. */
  k8sPsat?: K8sPsatAttestorConfig;
  /** `/metrics` (and `/live`, `/ready`). */
  metrics: HttpListenerSettings;
  /** SPIRE's `health_checks` listener (off unless `listener_enabled = true`). */
  health: HttpListenerSettings & { livePath: string; readyPath: string };
  /** Things worth a log line at start (e.g. a SPIRE setting Mayfly does not use). */
  notices: string[];
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

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * Seconds from a Go duration (`"24h"`, `"1h30m"`, `"90s"`), a number of seconds, or a string of
 * digits. Undefined when the value has neither form; fractions of a second are refused.
 */
export function parseDurationSeconds(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v !== 'string' || v.length > 64) return undefined;
  if (/^-?\d+$/.test(v)) return Number(v);
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(v);
  if (!m) return undefined;
  let total = 0;
  for (const part of (m[2] as string).matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (DURATION_UNITS[part[2] as string] as number);
  }
  total = Math.round(total * 1e6) / 1e6;
  if (!Number.isInteger(total)) return undefined;
  return m[1] === '-' ? -total : total;
}

class Problems {
  readonly list: string[] = [];
  add(msg: string): void {
    if (this.list.length < 50) this.list.push(msg);
  }
}

function isObj(v: HclValue | undefined): v is HclObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(obj: HclObject, allowed: readonly string[], where: string, p: Problems): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) p.add(`unknown key ${where ? `${where}.` : ''}${k} (known: ${allowed.join(', ')})`);
  }
}

function block(obj: HclObject, key: string, where: string, p: Problems): HclObject | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  // HCL1 and SPIRE's JSON form allow a block as a one-element list.
  const one = Array.isArray(v) && v.length === 1 ? v[0] : v;
  if (!isObj(one)) {
    p.add(`${where}${key} must be a block`);
    return undefined;
  }
  return one;
}

function str(obj: HclObject, key: string, where: string, p: Problems): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    p.add(`${where}${key} must be a string`);
    return undefined;
  }
  return v;
}

function bool(obj: HclObject, key: string, where: string, p: Problems): boolean | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') {
    p.add(`${where}${key} must be true or false`);
    return undefined;
  }
  return v;
}

function port(v: unknown, what: string, p: Problems): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    p.add(`${what} must be a port number from 0 to 65535; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return n;
}

function duration(obj: HclObject, key: string, where: string, p: Problems): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  const s = parseDurationSeconds(v);
  if (s === undefined || s <= 0) {
    p.add(`${where}${key} must be a positive duration such as "1h" or "90s"; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return s;
}

function keyType(obj: HclObject, key: string, where: string, p: Problems): KeyType | undefined {
  const v = str(obj, key, where, p);
  if (v === undefined) return undefined;
  if (!isKeyType(v)) {
    p.add(`${where}${key} must be one of ec-p256, ec-p384, rsa-2048; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return v;
}

function logLevel(v: string, what: string, p: Problems): LogLevel | undefined {
  const l = v.toLowerCase();
  if (l === 'debug' || l === 'info' || l === 'warn' || l === 'error') return l;
  if (l === 'warning') return 'warn';
  p.add(`${what} must be DEBUG, INFO, WARN or ERROR; got ${JSON.stringify(v)}`);
  return undefined;
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

const SERVER_KEYS = [
  'bind_address', 'bind_port', 'trust_domain', 'data_dir', 'log_level', 'log_format', 'socket_path',
  'ca_ttl', 'default_x509_svid_ttl', 'default_jwt_svid_ttl', 'agent_ttl', 'ca_key_type', 'jwt_key_type', 'ca_subject',
] as const;
const PLUGIN_KINDS = ['DataStore', 'KeyManager', 'UpstreamAuthority', 'NodeAttestor'] as const;

function pluginData(kind: string, name: string, body: HclValue | undefined, allowed: readonly string[], p: Problems): HclObject {
  const where = `plugins.${kind}.${name}`;
  if (!isObj(body)) {
    p.add(`${where} must be a block`);
    return {};
  }
  checkKeys(body, ['plugin_data', 'enabled', 'plugin_cmd', 'plugin_checksum'], where, p);
  if (body.plugin_cmd !== undefined) p.add(`${where}.plugin_cmd: external plugins are not supported; Mayfly's plugins are built in`);
  const data = body.plugin_data === undefined ? {} : block(body, 'plugin_data', `${where}.`, p) ?? {};
  checkKeys(data, allowed, `${where}.plugin_data`, p);
  return data;
}

function onePlugin(plugins: HclObject, kind: string, p: Problems): [string, HclValue] | undefined {
  const v = plugins[kind];
  if (v === undefined) return undefined;
  if (!isObj(v)) {
    p.add(`plugins.${kind} must be a block such as ${kind} "name" { ... }`);
    return undefined;
  }
  const entries = Object.entries(v);
  if (entries.length !== 1) {
    p.add(`plugins.${kind}: exactly one ${kind} may be configured; found ${entries.length}`);
    return undefined;
  }
  return entries[0];
}

/**
 * Builds the settings from a parsed config tree (or none) and overrides. Throws one
 * ConfigError listing every problem found.
 */
export function resolveServerConfig(file: HclObject | undefined, overrides: ServerOverrides = {}): ServerSettings {
  const p = new Problems();
  const root = file ?? {};
  checkKeys(root, ['server', 'plugins', 'health_checks', 'telemetry'], '', p);
  const srv = block(root, 'server', '', p) ?? {};
  checkKeys(srv, SERVER_KEYS, 'server', p);
  const w = 'server.';
  const notices: string[] = [];

  const trustDomainRaw = overrides.trustDomain ?? str(srv, 'trust_domain', w, p) ?? DEFAULT_TRUST_DOMAIN;
  let trustDomain = DEFAULT_TRUST_DOMAIN;
  try {
    trustDomain = TrustDomain.parse(trustDomainRaw).name;
  } catch (err) {
    p.add(`trust_domain: ${(err as Error).message}`);
  }
  const dataDir = overrides.dataDir ?? str(srv, 'data_dir', w, p) ?? DEFAULT_DATA_DIR;
  const socketPath = overrides.socketPath ?? str(srv, 'socket_path', w, p) ?? defaultSocketPath('server');
  const bindAddress = overrides.bindAddress ?? str(srv, 'bind_address', w, p) ?? DEFAULT_BIND_ADDRESS;
  const bindPort = overrides.bindPort ?? port(srv.bind_port, 'server.bind_port', p) ?? DEFAULT_BIND_PORT;
  const levelRaw = overrides.logLevel ?? str(srv, 'log_level', w, p) ?? 'info';
  const level = logLevel(levelRaw, overrides.logLevel !== undefined ? '-logLevel' : 'server.log_level', p) ?? 'info';
  const logFormat = str(srv, 'log_format', w, p);
  if (logFormat !== undefined && logFormat.toLowerCase() !== 'json') notices.push(`log_format ${JSON.stringify(logFormat)} ignored: Mayfly logs JSON`);

  const settings: ServerSettings = {
    trustDomain,
    dataDir,
    socketPath,
    bindAddress,
    bindPort,
    logLevel: level,
    datastorePath: join(dataDir, 'datastore'),
    keyManager: { kind: 'disk', dataDir },
    nodeAttestors: ['join_token'],
    metrics: { enabled: true, host: DEFAULT_METRICS_HOST, port: DEFAULT_METRICS_PORT },
    health: { enabled: false, host: '127.0.0.1', port: 8080, livePath: '/live', readyPath: '/ready' },
    notices,
  };
  const caTtl = duration(srv, 'ca_ttl', w, p);
  if (caTtl !== undefined) settings.caTtlSeconds = caTtl;
  const x509Ttl = duration(srv, 'default_x509_svid_ttl', w, p);
  if (x509Ttl !== undefined) settings.defaultX509SvidTtl = x509Ttl;
  const jwtTtl = duration(srv, 'default_jwt_svid_ttl', w, p);
  if (jwtTtl !== undefined) settings.defaultJwtSvidTtl = jwtTtl;
  const agentTtl = duration(srv, 'agent_ttl', w, p);
  if (agentTtl !== undefined) settings.agentTtl = agentTtl;
  const caKeyType = keyType(srv, 'ca_key_type', w, p);
  if (caKeyType !== undefined) settings.caKeyType = caKeyType;
  const jwtKeyType = keyType(srv, 'jwt_key_type', w, p);
  if (jwtKeyType !== undefined) settings.jwtKeyType = jwtKeyType;
  const subject = block(srv, 'ca_subject', w, p);
  if (subject !== undefined) {
    checkKeys(subject, ['country', 'organization', 'common_name'], 'server.ca_subject', p);
    const s: NonNullable<ServerSettings['caSubject']> = {};
    const country = firstString(subject.country, 'server.ca_subject.country', p);
    if (country) s.country = country;
    const org = firstString(subject.organization, 'server.ca_subject.organization', p);
    if (org) s.organization = org;
    const cn = firstString(subject.common_name, 'server.ca_subject.common_name', p);
    if (cn) s.commonName = cn;
    settings.caSubject = s;
  }
  if (settings.caTtlSeconds !== undefined && settings.defaultX509SvidTtl !== undefined && settings.defaultX509SvidTtl >= settings.caTtlSeconds) {
    p.add('server.default_x509_svid_ttl must be shorter than server.ca_ttl');
  }

  const plugins = block(root, 'plugins', '', p);
  if (plugins !== undefined) {
    checkKeys(plugins, PLUGIN_KINDS, 'plugins', p);
    const ds = onePlugin(plugins, 'DataStore', p);
    if (ds !== undefined) {
      const [name, body] = ds;
      if (name !== 'sql') p.add(`plugins.DataStore: only "sql" is supported (stored in LevelDB); got ${JSON.stringify(name)}`);
      else {
        const data = pluginData('DataStore', name, body, ['database_type', 'connection_string'], p);
        const dbType = str(data, 'database_type', 'plugins.DataStore.sql.plugin_data.', p);
        if (dbType === 'postgres') {
          const conn = str(data, 'connection_string', 'plugins.DataStore.sql.plugin_data.', p);
          if (conn !== undefined && conn.trim() !== '') settings.postgres = { connectionString: conn };
          else if (data.connection_string === undefined || conn !== undefined) p.add('plugins.DataStore.sql.plugin_data.connection_string is required with database_type "postgres"');
        } else {
          if (dbType !== undefined && dbType !== 'sqlite3') p.add(`plugins.DataStore.sql.plugin_data.database_type: "sqlite3" (stored in LevelDB) or "postgres"; got ${JSON.stringify(dbType)}`);
          if (data.connection_string !== undefined) notices.push(`DataStore connection_string is not used: the datastore is LevelDB in ${settings.datastorePath}`);
        }
      }
    }
    const km = onePlugin(plugins, 'KeyManager', p);
    if (km !== undefined) {
      const [name, body] = km;
      if (name === 'disk') {
        const data = pluginData('KeyManager', name, body, ['keys_path'], p);
        const keysPath = str(data, 'keys_path', 'plugins.KeyManager.disk.plugin_data.', p);
        if (keysPath === undefined) p.add('plugins.KeyManager.disk.plugin_data.keys_path is required');
        else settings.keyManager = { kind: 'disk', dataDir: dirname(keysPath) };
      } else if (name === 'memory') {
        pluginData('KeyManager', name, body, [], p);
        settings.keyManager = { kind: 'memory' };
      } else p.add(`plugins.KeyManager: only "disk" and "memory" are supported; got ${JSON.stringify(name)}`);
    }
    const up = onePlugin(plugins, 'UpstreamAuthority', p);
    if (up !== undefined) {
      const [name, body] = up;
      if (name !== 'disk') p.add(`plugins.UpstreamAuthority: only "disk" is supported; got ${JSON.stringify(name)}`);
      else {
        const where = 'plugins.UpstreamAuthority.disk.plugin_data.';
        const data = pluginData('UpstreamAuthority', name, body, ['cert_file_path', 'key_file_path', 'bundle_file_path'], p);
        const certFile = str(data, 'cert_file_path', where, p);
        const keyFile = str(data, 'key_file_path', where, p);
        const bundleFile = str(data, 'bundle_file_path', where, p);
        if (certFile === undefined || keyFile === undefined) p.add(`${where}cert_file_path and key_file_path are required`);
        else settings.upstream = bundleFile === undefined ? { certFile, keyFile } : { certFile, keyFile, bundleFile };
      }
    }
    const na = plugins.NodeAttestor;
    if (na !== undefined) {
      if (!isObj(na)) p.add('plugins.NodeAttestor must be a block such as NodeAttestor "join_token" { }');
      else {
        for (const [name, body] of Object.entries(na)) {
          const enabled = isObj(body) ? bool(body, 'enabled', `plugins.NodeAttestor.${name}.`, p) : undefined;
          if (name === 'join_token') {
            pluginData('NodeAttestor', name, body, [], p);
            if (enabled === false) settings.nodeAttestors = settings.nodeAttestors.filter((n) => n !== 'join_token');
          } else if (name === 'k8s_psat') {
            const data = pluginData('NodeAttestor', name, body, ['clusters'], p);
            if (enabled === false) continue;
            const parsed = parseK8sPsatPluginData({ clusters: data.clusters }, `plugins.NodeAttestor.${name}.plugin_data`);
            for (const problem of parsed.problems) p.add(problem);
            if (parsed.config !== undefined) {
              // The attestor's own checks (cluster names, "namespace:serviceaccount" shapes)
              // are reported here, with the file's other problems, not at start.
              try {
                new K8sPsatAttestor(parsed.config);
              } catch (err) {
                p.add(`plugins.NodeAttestor.${name}.plugin_data: ${(err as Error).message}`);
                continue;
              }
              settings.k8sPsat = parsed.config;
              settings.nodeAttestors.push(name);
            }
          } else p.add(`plugins.NodeAttestor: only "join_token" and "k8s_psat" are supported; got ${JSON.stringify(name)}`);
        }
        if (settings.nodeAttestors.length === 0) p.add('plugins.NodeAttestor: every node attestor is disabled; agents could never attest');
      }
    }
  }

  const hc = block(root, 'health_checks', '', p);
  if (hc !== undefined) {
    checkKeys(hc, ['listener_enabled', 'bind_address', 'bind_port', 'live_path', 'ready_path'], 'health_checks', p);
    const wh = 'health_checks.';
    settings.health.enabled = bool(hc, 'listener_enabled', wh, p) ?? false;
    settings.health.host = str(hc, 'bind_address', wh, p) ?? settings.health.host;
    settings.health.port = port(hc.bind_port, 'health_checks.bind_port', p) ?? settings.health.port;
    for (const k of ['live_path', 'ready_path'] as const) {
      const v = str(hc, k, wh, p);
      if (v === undefined) continue;
      if (!/^\/[A-Za-z0-9._~\-/]{0,255}$/.test(v)) p.add(`health_checks.${k} must be a path starting with '/'`);
      else if (k === 'live_path') settings.health.livePath = v;
      else settings.health.readyPath = v;
    }
  }

  const tel = block(root, 'telemetry', '', p);
  if (tel !== undefined) {
    checkKeys(tel, ['Prometheus'], 'telemetry', p);
    const prom = block(tel, 'Prometheus', 'telemetry.', p);
    if (prom !== undefined) {
      checkKeys(prom, ['host', 'port'], 'telemetry.Prometheus', p);
      settings.metrics.host = str(prom, 'host', 'telemetry.Prometheus.', p) ?? settings.metrics.host;
      settings.metrics.port = port(prom.port, 'telemetry.Prometheus.port', p) ?? settings.metrics.port;
    } else settings.metrics.enabled = false;
  }

  if (p.list.length > 0) throw new ConfigError(`invalid configuration: ${p.list.join('; ')}`);
  return settings;
}

/**
 * Reads and parses a config file (HCL or JSON), passing its text through `transform`
 * first when given (the CLI's -expandEnv). ConfigError on any problem.
 */
export async function loadConfigFile(path: string, transform?: (text: string) => string): Promise<HclObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseConfigText(transform === undefined ? text : transform(text));
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
}
