/**
 * @module agent/config
 *
 * `mayfly-agent run` settings: built-in defaults, then a config file with the core keys of
 * SPIRE's agent.conf (HCL or JSON), then flags. Unknown keys are errors, all reported at
 * once, so a typo never silently falls back to a default.
 *
 * Plugins: `NodeAttestor "join_token"` (the default: the token comes from `join_token` or
 * `-joinToken`) or `NodeAttestor "k8s_psat"` (one of the two); `WorkloadAttestor "unix"`
 * and `WorkloadAttestor "k8s"` (those listed run side by side; none listed = unix);
 * `KeyManager "disk"` / `"memory"` (accepted; the agent keeps its key in its data directory).
 *
 * Mayfly's own `agent { workload_api { … } }` block bounds the Workload API's connections
 * (see `src/workloadapi/connection-limits.ts`; every key optional):
 * `max_connections` (4096), `max_connections_per_uid` (256, below max_connections),
 * `max_connections_per_pid` (64), `connection_idle_timeout` ("5m"), `first_request_timeout` ("5s").
 */
import { parseK8sPsatAgentPluginData } from '../attestors/node/k8s_psat/config.js';
import type { K8sPsatAgentConfig } from '../attestors/node/k8s_psat/agent.js';
import { parseK8sWorkloadPluginData } from '../attestors/workload/k8s/config.js';
import type { K8sWorkloadAttestorConfig } from '../attestors/workload/k8s/k8s.js';
import { ConfigError, type HclObject, type HclValue } from '../server/hcl.js';
import { DEFAULT_BIND_PORT, DEFAULT_TRUST_DOMAIN, parseDurationSeconds, type LogLevel } from '../server/config.js';
import { resolveWorkloadApiLimits, type WorkloadApiLimits } from '../workloadapi/connection-limits.js';
import { defaultSocketPath } from '../securefs/index.js';

export const DEFAULT_AGENT_DATA_DIR = './.mayfly/agent';
export const DEFAULT_SERVER_ADDRESS = '127.0.0.1';

export interface AgentSettings {
  trustDomain: string;
  dataDir: string;
  socketPath: string;
  serverAddress: string;
  serverPort: number;
  logLevel: LogLevel;
  joinToken?: string;
  trustBundlePath?: string;
  insecureBootstrap: boolean;
  /** How the agent attests: a join token (default) or its projected service-account token. */
  nodeAttestor: 'join_token' | 'k8s_psat';
  /** `NodeAttestor "k8s_psat"` plugin_data, when that is the node attestor. */
  k8sPsat?: K8sPsatAgentConfig;
  /** Workload attestors to run, in order (default unix only). */
  workloadAttestors: ('unix' | 'k8s')[];
  unix: { discoverWorkloadPath: boolean; workloadSizeLimit?: number };
  /** `WorkloadAttestor "k8s"` plugin_data, when configured. */
  k8s?: K8sWorkloadAttestorConfig;
  /** `agent { workload_api { … } }`: the Workload API's connection bounds given (defaults for the rest). */
  workloadApi: WorkloadApiLimits;
}

export type AgentOverrides = Partial<Omit<AgentSettings, 'unix' | 'k8s' | 'k8sPsat' | 'nodeAttestor' | 'workloadAttestors' | 'workloadApi'>>;

const AGENT_KEYS = new Set([
  'data_dir', 'log_level', 'server_address', 'server_port', 'socket_path', 'trust_bundle_path',
  'trust_domain', 'insecure_bootstrap', 'join_token', 'log_format', 'workload_api',
]);

/** `agent { workload_api { … } }` keys and the `WorkloadApiLimits` field each sets. */
const WORKLOAD_API_KEYS = {
  max_connections: 'maxConnections',
  max_connections_per_uid: 'maxConnectionsPerUid',
  max_connections_per_pid: 'maxConnectionsPerPid',
  connection_idle_timeout: 'connectionIdleTimeoutMs',
  first_request_timeout: 'firstRequestTimeoutMs',
} as const satisfies Record<string, keyof WorkloadApiLimits>;

/** Reads the `workload_api` block; problems are reported with the config file's spellings. */
function parseWorkloadApiBlock(block: HclValue, problems: string[]): WorkloadApiLimits {
  const where = 'agent.workload_api';
  if (!isObject(block)) {
    problems.push(`${where} must be a block`);
    return {};
  }
  const limits: WorkloadApiLimits = {};
  for (const [key, v] of Object.entries(block)) {
    if (!Object.hasOwn(WORKLOAD_API_KEYS, key)) {
      problems.push(`unknown key ${where}.${key} (expected ${Object.keys(WORKLOAD_API_KEYS).join(', ')})`);
      continue;
    }
    const field = WORKLOAD_API_KEYS[key as keyof typeof WORKLOAD_API_KEYS];
    if (field.endsWith('Ms')) {
      const seconds = parseDurationSeconds(v);
      if (seconds === undefined || seconds < 1) problems.push(`${where}.${key} must be a duration of at least 1s such as "5s" or "5m"; got ${JSON.stringify(v)}`);
      else limits[field] = seconds * 1000;
    } else if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      problems.push(`${where}.${key} must be a positive integer; got ${JSON.stringify(v)}`);
    } else {
      limits[field] = v;
    }
  }
  try {
    resolveWorkloadApiLimits(limits);
  } catch (err) {
    let msg = (err as Error).message;
    // Longest names first: maxConnections is a prefix of maxConnectionsPerUid.
    const names = Object.entries(WORKLOAD_API_KEYS).sort(([, a], [, b]) => b.length - a.length);
    for (const [key, field] of names) msg = msg.replaceAll(field, key);
    problems.push(`${where}: ${msg}`);
  }
  return limits;
}
const PLUGIN_KINDS = new Set(['NodeAttestor', 'KeyManager', 'WorkloadAttestor']);

function isObject(v: HclValue | undefined): v is HclObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const LEVELS: Record<string, LogLevel> = { debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error' };

export function parseLogLevel(v: string): LogLevel | undefined {
  return LEVELS[v.toLowerCase()];
}

/**
 * Resolves the agent's settings; throws ConfigError listing every problem found. `env`
 * (default process.env) is where `WorkloadAttestor "k8s"` reads its node name variable.
 */
export function resolveAgentConfig(file: HclObject | undefined, overrides: AgentOverrides = {}, opts: { env?: NodeJS.ProcessEnv } = {}): AgentSettings {
  const problems: string[] = [];
  const s: AgentSettings = {
    trustDomain: DEFAULT_TRUST_DOMAIN,
    dataDir: DEFAULT_AGENT_DATA_DIR,
    socketPath: defaultSocketPath('agent'),
    serverAddress: DEFAULT_SERVER_ADDRESS,
    serverPort: DEFAULT_BIND_PORT,
    logLevel: 'info',
    insecureBootstrap: false,
    nodeAttestor: 'join_token',
    workloadAttestors: [],
    unix: { discoverWorkloadPath: false },
    workloadApi: {},
  };
  const str = (o: HclObject, k: string, where: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') problems.push(`${where}.${k} must be a non-empty string`);
    else return v;
    return undefined;
  };
  for (const key of Object.keys(file ?? {})) {
    if (key !== 'agent' && key !== 'plugins') problems.push(`unknown top-level block ${JSON.stringify(key)} (expected agent, plugins)`);
  }
  const agent = file?.agent;
  if (agent !== undefined && !isObject(agent)) problems.push('agent must be a block');
  if (isObject(agent)) {
    for (const k of Object.keys(agent)) if (!AGENT_KEYS.has(k)) problems.push(`unknown key agent.${k}`);
    s.trustDomain = str(agent, 'trust_domain', 'agent') ?? s.trustDomain;
    s.dataDir = str(agent, 'data_dir', 'agent') ?? s.dataDir;
    s.socketPath = str(agent, 'socket_path', 'agent') ?? s.socketPath;
    s.serverAddress = str(agent, 'server_address', 'agent') ?? s.serverAddress;
    const bundle = str(agent, 'trust_bundle_path', 'agent');
    if (bundle !== undefined) s.trustBundlePath = bundle;
    const token = str(agent, 'join_token', 'agent');
    if (token !== undefined) s.joinToken = token;
    const port = agent.server_port;
    if (port !== undefined) {
      const n = typeof port === 'string' ? Number(port) : port;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) problems.push('agent.server_port must be a port number from 1 to 65535');
      else s.serverPort = n;
    }
    const level = str(agent, 'log_level', 'agent');
    if (level !== undefined) {
      const l = parseLogLevel(level);
      if (l === undefined) problems.push(`agent.log_level ${JSON.stringify(level)} is not one of DEBUG, INFO, WARN, ERROR`);
      else s.logLevel = l;
    }
    if (agent.workload_api !== undefined) s.workloadApi = parseWorkloadApiBlock(agent.workload_api, problems);
    const insecure = agent.insecure_bootstrap;
    if (insecure !== undefined) {
      if (typeof insecure !== 'boolean') problems.push('agent.insecure_bootstrap must be true or false');
      else s.insecureBootstrap = insecure;
    }
  }
  const plugins = file?.plugins;
  if (plugins !== undefined && !isObject(plugins)) problems.push('plugins must be a block');
  if (isObject(plugins)) {
    for (const [kind, byName] of Object.entries(plugins)) {
      if (!PLUGIN_KINDS.has(kind)) {
        problems.push(`unknown plugin kind ${JSON.stringify(kind)} (Mayfly's agent has ${[...PLUGIN_KINDS].join(', ')})`);
        continue;
      }
      if (!isObject(byName)) continue;
      if (kind === 'NodeAttestor' && Object.keys(byName).length > 1) problems.push(`plugins.NodeAttestor: configure one node attestor; found ${Object.keys(byName).join(', ')}`);
      for (const [name, body] of Object.entries(byName)) {
        const known =
          (kind === 'NodeAttestor' && (name === 'join_token' || name === 'k8s_psat')) ||
          (kind === 'KeyManager' && (name === 'disk' || name === 'memory')) ||
          (kind === 'WorkloadAttestor' && (name === 'unix' || name === 'k8s'));
        if (!known) {
          problems.push(`plugin ${kind} ${JSON.stringify(name)} is not built in`);
          continue;
        }
        if (kind === 'WorkloadAttestor') s.workloadAttestors.push(name as 'unix' | 'k8s');
        if (kind === 'NodeAttestor' && name === 'k8s_psat') {
          s.nodeAttestor = 'k8s_psat';
          const data = isObject(body) ? body.plugin_data : undefined;
          const r = parseK8sPsatAgentPluginData(data ?? {}, 'plugins.NodeAttestor.k8s_psat.plugin_data');
          problems.push(...r.problems);
          if (r.config !== undefined) s.k8sPsat = r.config;
          continue;
        }
        if (kind === 'WorkloadAttestor' && name === 'k8s') {
          const data = isObject(body) ? body.plugin_data : undefined;
          const r = parseK8sWorkloadPluginData(data ?? {}, opts.env === undefined ? {} : { env: opts.env });
          problems.push(...r.problems);
          if (r.config !== undefined) s.k8s = r.config;
          continue;
        }
        if (kind === 'WorkloadAttestor' && isObject(body) && isObject(body.plugin_data)) {
          const d = body.plugin_data;
          for (const k of Object.keys(d)) {
            if (k !== 'discover_workload_path' && k !== 'workload_size_limit') problems.push(`unknown key WorkloadAttestor "unix" plugin_data.${k}`);
          }
          if (d.discover_workload_path !== undefined) {
            if (typeof d.discover_workload_path !== 'boolean') problems.push('discover_workload_path must be true or false');
            else s.unix.discoverWorkloadPath = d.discover_workload_path;
          }
          if (d.workload_size_limit !== undefined) {
            if (typeof d.workload_size_limit !== 'number' || !Number.isInteger(d.workload_size_limit)) problems.push('workload_size_limit must be an integer (bytes)');
            else s.unix.workloadSizeLimit = d.workload_size_limit;
          }
        }
      }
    }
  }
  for (const [k, v] of Object.entries(overrides)) {
    if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  }
  if (s.workloadAttestors.length === 0) s.workloadAttestors.push('unix');
  if (s.nodeAttestor === 'k8s_psat' && s.joinToken !== undefined) {
    problems.push('a join token (join_token / -joinToken) was given but the node attestor is k8s_psat: remove one');
  }
  if (s.insecureBootstrap && s.trustBundlePath !== undefined) problems.push('set either trust_bundle_path (-trustBundle) or insecure_bootstrap (-insecureBootstrap), not both');
  if (problems.length > 0) throw new ConfigError(`invalid agent configuration: ${problems.join('; ')}`);
  return s;
}
