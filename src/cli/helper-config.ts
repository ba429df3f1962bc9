/**
 * @module cli/helper-config
 *
 * `helper.conf` for `mayfly-agent helper`: spiffe-helper's keys (docs/helper.md lists every
 * one, its default and where Mayfly differs), read with config/hcl and the typed accessors
 * so one pass reports every problem. Unknown keys are refused: a misspelt `key_file_mode`
 * must not silently fall back to a default.
 *
 * Threat: a file name in the config escaping `cert_dir` (`../../etc/cron.d/x`) and turning
 * the helper into a writer of arbitrary files: every file name must be a plain name.
 */
import { basename, isAbsolute, resolve } from 'node:path';
import { at, block, bool, checkKeys, duration, port, str } from '../config/accessors.js';
import { loadConfigFile } from '../config/file.js';
import { isHclObject, type HclObject } from '../config/hcl.js';
import { Problems } from '../config/problems.js';

export const HELPER_KEYS = [
  'agent_address', 'cmd', 'cmd_args', 'cert_dir', 'daemon_mode', 'add_intermediates_to_bundle', 'renew_signal', 'pid_file_name',
  'svid_file_name', 'svid_key_file_name', 'svid_bundle_file_name', 'jwt_svids', 'jwt_bundle_file_name', 'include_federated_domains',
  'cert_file_mode', 'key_file_mode', 'jwt_bundle_file_mode', 'jwt_svid_file_mode', 'hint', 'health_checks',
  // Mayfly's own additions.
  'crl_file_name', 'timeout',
] as const;
export const HEALTH_KEYS = ['listener_enabled', 'bind_address', 'bind_port', 'liveness_path', 'readiness_path'] as const;
export const JWT_SVID_KEYS = ['jwt_audience', 'jwt_extra_audiences', 'jwt_svid_file_name'] as const;

/** Modes securefs writes files with (group/other never get write). */
export type FileMode = 0o600 | 0o644;

export interface JwtSvidFile {
  audience: string[];
  fileName: string;
}

export interface HealthChecks {
  enabled: boolean;
  bindAddress: string;
  port: number;
  livenessPath: string;
  readinessPath: string;
}

export interface HelperConfig {
  /** `agent_address` as given (a socket path or `unix://`/`tcp://` URI); undefined: SPIFFE_ENDPOINT_SOCKET, then the default. */
  agentAddress?: string;
  cmd?: string;
  cmdArgs: string[];
  /** Absolute. */
  certDir: string;
  daemonMode: boolean;
  addIntermediatesToBundle: boolean;
  renewSignal?: NodeJS.Signals;
  /** Absolute. */
  pidFileName?: string;
  svidFileName?: string;
  svidKeyFileName?: string;
  svidBundleFileName?: string;
  jwtSvids: JwtSvidFile[];
  jwtBundleFileName?: string;
  crlFileName?: string;
  includeFederatedDomains: boolean;
  certFileMode: FileMode;
  keyFileMode: FileMode;
  jwtBundleFileMode: FileMode;
  jwtSvidFileMode: FileMode;
  hint?: string;
  health: HealthChecks;
  /** One-shot mode: how long to wait for the SVID (ms). */
  timeoutMs: number;
}

export const DEFAULT_HEALTH_PORT = 8081;
export const DEFAULT_ONESHOT_TIMEOUT_MS = 30_000;

const SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGWINCH', 'SIGCONT', 'SIGKILL'];

/** Splits `cmd_args` like a shell would words (single and double quotes, backslash), without expansion. */
export function splitArgs(s: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (q === "'") {
      if (c === "'") q = undefined;
      else cur += c;
    } else if (q === '"') {
      if (c === '"') q = undefined;
      else if (c === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1] as string)) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
    }
  }
  if (q !== undefined) return undefined;
  if (has || cur !== '') out.push(cur);
  return out;
}

function fileMode(obj: HclObject, key: string, def: FileMode, p: Problems): FileMode {
  const v = obj[key];
  if (v === undefined) return def;
  // `0644` in HCL reaches us as the number 644 (our parser reads decimal): its digits are the octal mode.
  const digits = typeof v === 'number' && Number.isInteger(v) ? String(v) : typeof v === 'string' ? v.replace(/^0o?/, '') : undefined;
  const mode = digits !== undefined && /^[0-7]{3}$/.test(digits) ? parseInt(digits, 8) : undefined;
  if (mode === 0o600 || mode === 0o644) return mode;
  p.add(`${key} must be 0600 or 0644 (files are written owner-only or world-readable, never group/other-writable)`);
  return def;
}

function fileName(obj: HclObject, key: string, where: string, p: Problems): string | undefined {
  const v = str(obj, key, where, p);
  if (v === undefined || v === '') return undefined;
  if (v !== basename(v) || v === '.' || v === '..') {
    p.add(`${at(where, key)} must be a plain file name inside cert_dir, not a path (got ${JSON.stringify(v)})`);
    return undefined;
  }
  return v;
}

function jwtSvids(root: HclObject, p: Problems): JwtSvidFile[] {
  const v = root.jwt_svids;
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    p.add('jwt_svids must be a list of { jwt_audience, jwt_svid_file_name }');
    return [];
  }
  const out: JwtSvidFile[] = [];
  v.forEach((item, i) => {
    const where = `jwt_svids[${i}]`;
    if (!isHclObject(item)) {
      p.add(`${where} must be an object { jwt_audience, jwt_svid_file_name }`);
      return;
    }
    checkKeys(item, JWT_SVID_KEYS, where, p);
    const aud = str(item, 'jwt_audience', where, p, { nonEmpty: true });
    const name = fileName(item, 'jwt_svid_file_name', where, p);
    if (aud === undefined) p.add(`${where}.jwt_audience is required`);
    if (name === undefined) p.add(`${where}.jwt_svid_file_name is required`);
    const extra = item.jwt_extra_audiences;
    const extras: string[] = [];
    if (extra !== undefined) {
      if (!Array.isArray(extra) || extra.some((e) => typeof e !== 'string' || e === '')) p.add(`${where}.jwt_extra_audiences must be a list of non-empty strings`);
      else extras.push(...(extra as string[]));
    }
    if (aud !== undefined && name !== undefined) out.push({ audience: [aud, ...extras], fileName: name });
  });
  return out;
}

function health(root: HclObject, p: Problems): HealthChecks {
  const h = block(root, 'health_checks', '', p) ?? {};
  checkKeys(h, HEALTH_KEYS, 'health_checks', p);
  const path = (key: string, def: string): string => {
    const v = str(h, key, 'health_checks', p) ?? def;
    if (!v.startsWith('/')) p.add(`health_checks.${key} must start with /`);
    return v;
  };
  return {
    enabled: bool(h, 'listener_enabled', 'health_checks', p) ?? false,
    bindAddress: str(h, 'bind_address', 'health_checks', p, { nonEmpty: true }) ?? '0.0.0.0',
    port: port(h.bind_port, 'health_checks.bind_port', p) ?? DEFAULT_HEALTH_PORT,
    livenessPath: path('liveness_path', '/live'),
    readinessPath: path('readiness_path', '/ready'),
  };
}

/** Reads a parsed helper.conf; relative `cert_dir` and `pid_file_name` are taken from `baseDir`. ConfigError listing every problem. */
export function resolveHelperConfig(root: HclObject, baseDir: string): HelperConfig {
  const p = new Problems();
  checkKeys(root, HELPER_KEYS, '', p);
  const certDir = str(root, 'cert_dir', '', p, { nonEmpty: true });
  if (certDir === undefined) p.add('cert_dir is required: the directory the certificates, key and bundle are written into');
  const argsText = str(root, 'cmd_args', '', p) ?? '';
  const cmdArgs = splitArgs(argsText);
  if (cmdArgs === undefined) p.add('cmd_args has an unclosed quote');
  const sig = str(root, 'renew_signal', '', p);
  let renewSignal: NodeJS.Signals | undefined;
  if (sig !== undefined && sig !== '') {
    const name = (sig.startsWith('SIG') ? sig : `SIG${sig}`).toUpperCase() as NodeJS.Signals;
    if (SIGNALS.includes(name)) renewSignal = name;
    else p.add(`renew_signal ${JSON.stringify(sig)} is not a signal this helper sends (one of ${SIGNALS.join(', ')})`);
  }
  const cmd = str(root, 'cmd', '', p);
  const pidFile = str(root, 'pid_file_name', '', p);
  if (pidFile && renewSignal === undefined) p.add('pid_file_name needs renew_signal: the signal to send to that process');
  if (pidFile && cmd) p.add('give cmd or pid_file_name, not both: the helper signals the process it started, or the one in the pid file');
  const timeoutS = duration(root, 'timeout', '', p);
  const svidFileName = fileName(root, 'svid_file_name', '', p);
  const svidKeyFileName = fileName(root, 'svid_key_file_name', '', p);
  if ((svidFileName === undefined) !== (svidKeyFileName === undefined)) p.add('svid_file_name and svid_key_file_name go together: give both, or neither');
  const cfg: HelperConfig = {
    ...(str(root, 'agent_address', '', p, { nonEmpty: true }) !== undefined ? { agentAddress: root.agent_address as string } : {}),
    ...(cmd ? { cmd } : {}),
    cmdArgs: cmdArgs ?? [],
    certDir: resolve(baseDir, certDir ?? '.'),
    daemonMode: bool(root, 'daemon_mode', '', p) ?? true,
    addIntermediatesToBundle: bool(root, 'add_intermediates_to_bundle', '', p) ?? false,
    ...(renewSignal ? { renewSignal } : {}),
    ...(pidFile ? { pidFileName: isAbsolute(pidFile) ? pidFile : resolve(baseDir, pidFile) } : {}),
    ...(svidFileName ? { svidFileName } : {}),
    ...(svidKeyFileName ? { svidKeyFileName } : {}),
    ...(fileName(root, 'svid_bundle_file_name', '', p) !== undefined ? { svidBundleFileName: root.svid_bundle_file_name as string } : {}),
    jwtSvids: jwtSvids(root, p),
    ...(fileName(root, 'jwt_bundle_file_name', '', p) !== undefined ? { jwtBundleFileName: root.jwt_bundle_file_name as string } : {}),
    ...(fileName(root, 'crl_file_name', '', p) !== undefined ? { crlFileName: root.crl_file_name as string } : {}),
    includeFederatedDomains: bool(root, 'include_federated_domains', '', p) ?? false,
    certFileMode: fileMode(root, 'cert_file_mode', 0o644, p),
    keyFileMode: fileMode(root, 'key_file_mode', 0o600, p),
    jwtBundleFileMode: fileMode(root, 'jwt_bundle_file_mode', 0o600, p),
    jwtSvidFileMode: fileMode(root, 'jwt_svid_file_mode', 0o600, p),
    ...(str(root, 'hint', '', p) ? { hint: root.hint as string } : {}),
    health: health(root, p),
    timeoutMs: timeoutS !== undefined ? timeoutS * 1000 : DEFAULT_ONESHOT_TIMEOUT_MS,
  };
  const names = [cfg.svidFileName, cfg.svidKeyFileName, cfg.svidBundleFileName, cfg.jwtBundleFileName, cfg.crlFileName, ...cfg.jwtSvids.map((j) => j.fileName)].filter((n) => n !== undefined);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) p.add(`file name ${JSON.stringify(dup)} is used twice: each file needs its own name`);
  if (names.length === 0) p.add('nothing to write: set svid_file_name and svid_key_file_name, svid_bundle_file_name, jwt_svids or jwt_bundle_file_name');
  p.throwIfAny('invalid helper configuration');
  return cfg;
}

/** Reads `path` (HCL or JSON) into a HelperConfig; relative paths in it are relative to the working directory, as spiffe-helper's. */
export async function loadHelperConfig(path: string, baseDir = process.cwd()): Promise<HelperConfig> {
  return resolveHelperConfig(await loadConfigFile(path), baseDir);
}
