/**
 * @module agent/config
 *
 * `mayfly-agent run` settings: built-in defaults, then a config file with the core keys of
 * SPIRE's agent.conf (HCL or JSON), then flags. Unknown keys are errors, all reported at
 * once, so a typo never silently falls back to a default.
 *
 * Plugins are read through the agent's catalog (agent/catalog): `NodeAttestor "join_token"`
 * (the default: the token comes from `join_token` or `-joinToken`) or `NodeAttestor
 * "k8s_psat"` (one of the two); `WorkloadAttestor "unix"` and `WorkloadAttestor "k8s"`
 * (those listed run side by side; none listed = unix); `KeyManager "disk"` / `"memory"`
 * (accepted; the agent keeps its key in its data directory).
 *
 * Mayfly's own `agent { workload_api { … } }` block bounds the Workload API's connections
 * (see `src/workloadapi/connection-limits.ts`; every key optional):
 * `max_connections` (4096), `max_connections_per_uid` (256, below max_connections),
 * `max_connections_per_pid` (64), `connection_idle_timeout` ("5m"), `first_request_timeout` ("5s").
 *
 * SPIRE's top-level `telemetry { Prometheus { host port } }` and `health_checks {
 * listener_enabled bind_address bind_port live_path ready_path }` blocks are read by the
 * parser the server uses (config/listeners): `/metrics` only when `telemetry { Prometheus
 * { … } }` asks (default 127.0.0.1:9989), SPIRE's health listener off unless enabled.
 *
 * Mayfly's own `agent { server_addresses = ["host1:8081", "host2:8081"] }`: several servers
 * of the trust domain (servers sharing one PostgreSQL), tried in order when one fails
 * (agent/server-pool), instead of SPIRE's one `server_address` + `server_port` (not both).
 * A host name, in either spelling, stands for every address it resolves to.
 *
 * Mayfly's own `agent { server_unreachable_threshold = "…" }`: how long the server may be
 * out of reach (no open authorised-entry stream) before the agent reports itself unhealthy
 * (`healthcheck`, `/ready`). Default: half the agent SVID's lifetime, the point where the
 * agent should have renewed it.
 */
import type { K8sPsatAgentConfig } from '../attestors/node/k8s_psat/agent.js';
import type { K8sWorkloadAttestorConfig } from '../attestors/workload/k8s/k8s.js';
import type { UnixPluginConfig } from '../attestors/workload/unix/plugin.js';
import { block, bool, checkKeys, port, str } from '../config/accessors.js';
import { DEFAULT_SERVER_PORT, DEFAULT_TRUST_DOMAIN } from '../config/defaults.js';
import { parseDurationSeconds } from '../config/duration.js';
import type { HclObject, HclValue } from '../config/hcl.js';
import { parseLogLevel, type LogLevel } from '../config/log-level.js';
import { AGENT_LISTENER_DEFAULTS, readListeners, type ListenerSettings } from '../config/listeners.js';
import { configOf, pluginsOfKind, selectPlugins } from '../config/plugins.js';
import { Problems } from '../config/problems.js';
import { resolveWorkloadApiLimits, type WorkloadApiLimits } from '../workloadapi/connection-limits.js';
import { defaultSocketPath } from '../securefs/index.js';
import { joinHostPort, splitHostPort } from './server-pool.js';
import { parseDeliveryRecordsBlock, type DeliveryRecordSettings } from './config-delivery.js';
import { parseTokenExchangeBlock, type TokenExchangeSettings } from './config-token-exchange.js';
import { AGENT_CATALOG, AGENT_PLUGIN_KINDS, type AgentPlugin, type ConfiguredAgentPlugin } from './catalog.js';

export { parseLogLevel } from '../config/log-level.js';

export const DEFAULT_AGENT_DATA_DIR = './.mayfly/agent';
export const DEFAULT_SERVER_ADDRESS = '127.0.0.1';

export interface AgentSettings extends ListenerSettings {
  trustDomain: string;
  dataDir: string;
  socketPath: string;
  serverAddress: string;
  serverPort: number;
  /** `agent { server_addresses }`: `host:port` of several servers, instead of serverAddress + serverPort. */
  serverAddresses?: string[];
  logLevel: LogLevel;
  /** `log_format`: json (default) or text. */
  logFormat?: 'json' | 'text';
  /** `log_file`: append logs here instead of stderr. */
  logFile?: string;
  joinToken?: string;
  trustBundlePath?: string;
  insecureBootstrap: boolean;
  /** `agent { workload_api { … } }`: the Workload API's connection bounds given (defaults for the rest). */
  workloadApi: WorkloadApiLimits;
  /** `agent { delivery_records { … } }` (agent/config-delivery); defaults for what is not given. */
  deliveryRecords?: DeliveryRecordSettings;
  /** `agent { token_exchange { … } }` (agent/config-token-exchange): serve ExchangeForUser on the Workload API socket. */
  tokenExchange?: TokenExchangeSettings;
  /** `agent { server_unreachable_threshold }` in seconds; undefined: half the agent SVID's lifetime. */
  serverUnreachableThresholdSeconds?: number;
  /** The plugins the agent runs, with their parsed configs, in kind order; `buildAgentPlugins` builds them. */
  plugins: ConfiguredAgentPlugin[];
  /** Things worth a log line at start. */
  notices: string[];

  // Views of `plugins` for readers (tests, logs); always current, never stored.
  /** How the agent attests: `join_token` (default) or `k8s_psat`; undefined when its block says `enabled = false`. */
  readonly nodeAttestor: string | undefined;
  /** `NodeAttestor "k8s_psat"` plugin_data, when that is the node attestor. */
  readonly k8sPsat?: K8sPsatAgentConfig;
  /** Workload attestors that run, in order (default unix only). */
  readonly workloadAttestors: string[];
  /** `WorkloadAttestor "unix"` settings (its defaults when it does not run). */
  readonly unix: UnixPluginConfig;
  /** `WorkloadAttestor "k8s"` plugin_data, when configured. */
  readonly k8s?: K8sWorkloadAttestorConfig;
}

type Views = 'nodeAttestor' | 'k8sPsat' | 'workloadAttestors' | 'unix' | 'k8s';
export type AgentOverrides = Partial<Omit<AgentSettings, Views | 'plugins' | 'notices' | 'workloadApi' | 'metrics' | 'health'>>;

const AGENT_KEYS = [
  'data_dir', 'log_level', 'server_address', 'server_port', 'socket_path', 'trust_bundle_path',
  'trust_domain', 'insecure_bootstrap', 'join_token', 'log_format', 'log_file', 'workload_api', 'server_unreachable_threshold',
  'server_addresses', 'delivery_records', 'token_exchange',
] as const;

/** The `host:port` servers the settings name, in order: `server_addresses`, else `server_address` + `server_port`. */
export function serverTargetsOf(s: Pick<AgentSettings, 'serverAddress' | 'serverPort' | 'serverAddresses'>): string[] {
  return s.serverAddresses ?? [joinHostPort(s.serverAddress, s.serverPort)];
}

/** `agent { server_addresses = [...] }`: a non-empty list of `host:port` strings. */
function readServerAddresses(agent: HclObject, p: Problems): string[] | undefined {
  const v = agent.server_addresses;
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) {
    p.add('agent.server_addresses must be a non-empty list of "host:port" strings, such as ["mayfly-1.internal:8081", "mayfly-2.internal:8081"]');
    return undefined;
  }
  const out: string[] = [];
  v.forEach((t, i) => {
    try {
      splitHostPort(t as string);
      out.push(t as string);
    } catch (err) {
      p.add(`agent.server_addresses[${i}]: ${(err as Error).message}`);
    }
  });
  if (agent.server_address !== undefined || agent.server_port !== undefined) {
    p.add('set agent.server_addresses or agent.server_address / agent.server_port, not both');
  }
  return out.length === v.length ? out : undefined;
}

/** `agent { workload_api { … } }` keys and the `WorkloadApiLimits` field each sets. */
const WORKLOAD_API_KEYS = {
  max_connections: 'maxConnections',
  max_connections_per_uid: 'maxConnectionsPerUid',
  max_connections_per_pid: 'maxConnectionsPerPid',
  connection_idle_timeout: 'connectionIdleTimeoutMs',
  first_request_timeout: 'firstRequestTimeoutMs',
} as const satisfies Record<string, keyof WorkloadApiLimits>;

/** Reads the `workload_api` block; problems are reported with the config file's spellings. */
function parseWorkloadApiBlock(agent: HclObject, p: Problems): WorkloadApiLimits {
  const where = 'agent.workload_api';
  const wa = block(agent, 'workload_api', 'agent', p);
  if (wa === undefined) return {};
  checkKeys(wa, Object.keys(WORKLOAD_API_KEYS), where, p);
  const limits: WorkloadApiLimits = {};
  for (const [key, v] of Object.entries(wa) as [string, HclValue][]) {
    if (!Object.hasOwn(WORKLOAD_API_KEYS, key)) continue;
    const field = WORKLOAD_API_KEYS[key as keyof typeof WORKLOAD_API_KEYS];
    if (field.endsWith('Ms')) {
      const seconds = parseDurationSeconds(v);
      if (seconds === undefined || seconds < 1) p.add(`${where}.${key} must be a duration of at least 1s such as "5s" or "5m"; got ${JSON.stringify(v)}`);
      else limits[field] = seconds * 1000;
    } else if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      p.add(`${where}.${key} must be a positive integer; got ${JSON.stringify(v)}`);
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
    p.add(`${where}: ${msg}`);
  }
  return limits;
}

/** The `agent` block's core keys, over `s`. */
function readAgentBlock(agent: HclObject, s: AgentSettings, p: Problems): void {
  const w = 'agent';
  checkKeys(agent, AGENT_KEYS, w, p);
  const text = (k: string): string | undefined => str(agent, k, w, p, { nonEmpty: true });
  s.trustDomain = text('trust_domain') ?? s.trustDomain;
  s.dataDir = text('data_dir') ?? s.dataDir;
  s.socketPath = text('socket_path') ?? s.socketPath;
  s.serverAddress = text('server_address') ?? s.serverAddress;
  const bundle = text('trust_bundle_path');
  if (bundle !== undefined) s.trustBundlePath = bundle;
  const token = text('join_token');
  if (token !== undefined) s.joinToken = token;
  s.serverPort = port(agent.server_port, 'agent.server_port', p, 1) ?? s.serverPort;
  const list = readServerAddresses(agent, p);
  if (list !== undefined) s.serverAddresses = list;
  const level = text('log_level');
  if (level !== undefined) {
    const l = parseLogLevel(level);
    if (l === undefined) p.add(`agent.log_level ${JSON.stringify(level)} is not one of DEBUG, INFO, WARN, ERROR`);
    else s.logLevel = l;
  }
  const format = text('log_format')?.toLowerCase();
  if (format === 'json' || format === 'text') s.logFormat = format;
  else if (format !== undefined) p.add(`agent.log_format must be "json" or "text"; got ${JSON.stringify(format)}`);
  const logFile = text('log_file');
  if (logFile !== undefined) s.logFile = logFile;
  s.workloadApi = parseWorkloadApiBlock(agent, p);
  s.deliveryRecords = parseDeliveryRecordsBlock(agent, p);
  const tokenExchange = parseTokenExchangeBlock(agent, p);
  if (tokenExchange !== undefined) s.tokenExchange = tokenExchange;
  s.insecureBootstrap = bool(agent, 'insecure_bootstrap', w, p) ?? s.insecureBootstrap;
  if (agent.server_unreachable_threshold !== undefined) {
    const v = agent.server_unreachable_threshold;
    const seconds = parseDurationSeconds(v);
    if (seconds === undefined || seconds < 1) p.add(`agent.server_unreachable_threshold must be a duration of at least 1s such as "30m"; got ${JSON.stringify(v)}`);
    else s.serverUnreachableThresholdSeconds = seconds;
  }
}

/**
 * Resolves the agent's settings; throws ConfigError listing every problem found. `env`
 * (default process.env) is where `WorkloadAttestor "k8s"` reads its node name variable;
 * `catalog` is the agent's (tests add plugins).
 */
export function resolveAgentConfig(
  file: HclObject | undefined,
  overrides: AgentOverrides = {},
  opts: { env?: NodeJS.ProcessEnv; catalog?: readonly AgentPlugin[] } = {},
): AgentSettings {
  const p = new Problems();
  const root = file ?? {};
  const s: AgentSettings = {
    trustDomain: DEFAULT_TRUST_DOMAIN,
    dataDir: DEFAULT_AGENT_DATA_DIR,
    socketPath: defaultSocketPath('agent'),
    serverAddress: DEFAULT_SERVER_ADDRESS,
    serverPort: DEFAULT_SERVER_PORT,
    logLevel: 'info',
    insecureBootstrap: false,
    workloadApi: {},
    metrics: { enabled: false, host: '', port: 0 },
    health: { enabled: false, host: '', port: 0, livePath: '', readyPath: '' },
    plugins: [],
    notices: [],
    get nodeAttestor() {
      return pluginsOfKind(this.plugins, 'NodeAttestor')[0]?.name;
    },
    get k8sPsat() {
      return configOf(this.plugins, 'NodeAttestor', 'k8s_psat') as K8sPsatAgentConfig | undefined;
    },
    get workloadAttestors() {
      return pluginsOfKind(this.plugins, 'WorkloadAttestor').map((a) => a.name);
    },
    get unix() {
      return (configOf(this.plugins, 'WorkloadAttestor', 'unix') as UnixPluginConfig | undefined) ?? { discoverWorkloadPath: false };
    },
    get k8s() {
      return configOf(this.plugins, 'WorkloadAttestor', 'k8s') as K8sWorkloadAttestorConfig | undefined;
    },
  };
  checkKeys(root, ['agent', 'plugins', 'telemetry', 'health_checks'], '', p);
  const agent = block(root, 'agent', '', p);
  if (agent !== undefined) readAgentBlock(agent, s, p);
  const listeners = readListeners(root, p, AGENT_LISTENER_DEFAULTS);
  s.metrics = listeners.metrics;
  s.health = listeners.health;
  if (s.serverAddresses !== undefined && (overrides.serverAddress !== undefined || overrides.serverPort !== undefined)) {
    p.add('-serverAddress / -serverPort cannot be combined with agent.server_addresses in the config file: give the servers in one place');
  }
  for (const [k, v] of Object.entries(overrides)) {
    if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  }
  const core = { dataDir: s.dataDir, env: opts.env ?? process.env, notice: (m: string) => void s.notices.push(m) };
  s.plugins = selectPlugins(block(root, 'plugins', '', p), opts.catalog ?? AGENT_CATALOG, AGENT_PLUGIN_KINDS, core, p);
  if (s.nodeAttestor !== 'join_token' && s.joinToken !== undefined) {
    p.add(`a join token (join_token / -joinToken) was given but the node attestor is ${s.nodeAttestor ?? 'disabled'}: remove one`);
  }
  if (s.serverAddresses === undefined) {
    try {
      splitHostPort(serverTargetsOf(s)[0] as string);
    } catch {
      p.add(`server_address ${JSON.stringify(s.serverAddress)} (-serverAddress) must be a host name or IP address, without a port (the port is server_port)`);
    }
  }
  if (s.insecureBootstrap && s.trustBundlePath !== undefined) p.add('set either trust_bundle_path (-trustBundle) or insecure_bootstrap (-insecureBootstrap), not both');
  p.throwIfAny('invalid agent configuration');
  return s;
}
