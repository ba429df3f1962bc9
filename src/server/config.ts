/**
 * @module server/config
 *
 * `mayfly-server run`'s configuration: the core keys of SPIRE's `server.conf` (HCL, or the
 * same tree as JSON), command-line overrides, and defaults that let `run` start with no
 * file at all. Every problem in a file is collected and reported together; an unknown key
 * is a problem (a typo such as `bind_prot` must not silently fall back to a default).
 * Block by block: `server` (server/config-server-block), `plugins` (read through the
 * server's catalog, server/catalog), `health_checks` and `telemetry`
 * (config/listeners).
 *
 * Defaults, and why they differ from SPIRE's:
 * - trust domain `example.org`, data in `./.mayfly/server`, admin socket
 *   `defaultSocketPath('server')` (wire/workload/socket-paths): `/run/mayfly/server/private/api.sock`
 *   as root, else under `$XDG_RUNTIME_DIR/mayfly` (SPIRE: `/tmp/spire-server/private/api.sock`,
 *   which any local user can create first);
 * - the agent API binds `127.0.0.1:8081`, not SPIRE's `0.0.0.0:8081`: a try-out should not
 *   expose a CA on every interface. Set `bind_address = "0.0.0.0"` for agents on other hosts;
 * - metrics and health on `127.0.0.1:9988` (`/metrics`, `/live`, `/ready`);
 * - plugins: `DataStore "sql"` (LevelDB in `<data_dir>/datastore`), `KeyManager "disk"`
 *   (keys in `<data_dir>/keys`), and `NodeAttestor "join_token"`, always on (agents outside
 *   any cluster can still be brought in with `token generate`) unless configured with
 *   `enabled = false`. Each plugin's folder documents its plugin_data.
 */
import { join } from 'node:path';
import type { K8sPsatAttestorConfig } from '../attestors/node/k8s_psat/k8s_psat.js';
import { block, checkKeys } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import { configOf, configurePlugin, pluginsOfKind, selectPlugins, type PluginCore } from '../config/plugins.js';
import { Problems } from '../config/problems.js';
import { readAuditBlock, type AuditSettings } from './config-audit.js';
import type { DiskUpstreamAuthorityPluginConfig } from '../ca/upstreamauthority/disk/plugin.js';
import type { SqlDataStoreConfig } from '../datastore/sql/plugin.js';
import { SERVER_CATALOG, SERVER_PLUGIN_KINDS, type ConfiguredServerPlugin, type ServerPlugin, type ServerPluginKind } from './catalog.js';
import { readListeners, type ListenerSettings } from '../config/listeners.js';
import { readServerBlock, type ServerCoreSettings, type ServerOverrides } from './config-server-block.js';
import { readDelegationBlock, type DelegationSettings } from './config-delegation.js';
import { readConsoleBlock, type ConsoleSettings } from './console/config.js';
import { readRegistrarsBlock } from './config-registrars.js';
import { readCertificationBlock } from './config-certification.js';
import type { CertificationSettings } from './certification.js';
import type { RegistrarScope } from './registrar-scope.js';
import { readFederationBlock, readOidcBlock, type BundleEndpointSettings, type OidcDiscoverySettings } from './config-federation.js';

export { ConfigError } from '../config/hcl.js';
export { loadConfigFile } from '../config/file.js';
export { parseDurationSeconds } from '../config/duration.js';
export type { LogLevel } from '../config/log-level.js';
export { DEFAULT_TRUST_DOMAIN, DEFAULT_SERVER_PORT as DEFAULT_BIND_PORT } from '../config/defaults.js';
export { DEFAULT_BIND_ADDRESS, DEFAULT_DATA_DIR, type ServerCoreSettings, type ServerOverrides } from './config-server-block.js';
export { DEFAULT_METRICS_HOST, DEFAULT_METRICS_PORT, type HttpListenerSettings } from '../config/listeners.js';

export interface ServerSettings extends ServerCoreSettings, ListenerSettings {
  /** The top-level `audit` block (server/config-audit). */
  audit: AuditSettings;
  /** Where the LevelDB datastore lives (`<data_dir>/datastore`), when that is the datastore. */
  datastorePath: string;
  /**
   * The plugins the server runs, each with its parsed config, in kind order (datastore, key
   * manager, upstream authority, node attestors). `ServerRunner` builds these.
   */
  plugins: ConfiguredServerPlugin[];
  /** Things worth a log line at start (e.g. a SPIRE setting Mayfly does not use). */
  notices: string[];
  /** `server.federation.bundle_endpoint`, when configured (server/config-federation). */
  bundleEndpoint?: BundleEndpointSettings;
  /** `server.oidc_discovery`, when configured (server/config-federation). */
  oidcDiscovery?: OidcDiscoverySettings;
  /** `server.delegation`, when configured (server/config-delegation). */
  delegation?: DelegationSettings;
  /** `server.console`: the read-only web console (server/console), when configured. */
  console?: ConsoleSettings;
  /** `server.registrars`: scoped registrars by admin SPIFFE ID (server/config-registrars), when configured. */
  registrars?: ReadonlyMap<string, RegistrarScope>;
  /** `server.certification`: owner certification (server/config-certification), when configured. */
  certification?: CertificationSettings;

  // Views of `plugins` for readers (`validate`, tests); always current, never stored.
  /** Set when `DataStore "sql"` has database_type `postgres`. */
  readonly postgres?: { connectionString: string };
  /** The key manager: its name as `kind`, and its config (`dataDir` for `disk`). */
  readonly keyManager: { readonly kind: string; readonly dataDir?: string };
  /** The upstream authority's config, when one is configured. */
  readonly upstream?: DiskUpstreamAuthorityPluginConfig;
  /** Names of the node attestors that run (`join_token`, `k8s_psat`). */
  readonly nodeAttestors: string[];
  /** `NodeAttestor "k8s_psat"` settings, when that attestor runs. */
  readonly k8sPsat?: K8sPsatAttestorConfig;
}

/** What the config of a server's plugins may depend on. */
export function serverPluginCore(dataDir: string, notices: string[] = []): PluginCore {
  return { dataDir, env: process.env, notice: (m) => void notices.push(m) };
}

/**
 * Builds the settings from a parsed config tree (or none) and overrides. Throws one
 * ConfigError listing every problem found. `catalog` is the server's (tests add plugins).
 */
export function resolveServerConfig(
  file: HclObject | undefined,
  overrides: ServerOverrides = {},
  opts: { catalog?: readonly ServerPlugin[] } = {},
): ServerSettings {
  const p = new Problems();
  const root = file ?? {};
  checkKeys(root, ['server', 'plugins', 'health_checks', 'telemetry', 'audit'], '', p);
  const notices: string[] = [];
  const srv = block(root, 'server', '', p) ?? {};
  const core = readServerBlock(srv, overrides, p, notices);
  const bundleEndpoint = readFederationBlock(srv, core.trustDomain, p, notices);
  const { oidc: oidcDiscovery, jwtIssuer } = readOidcBlock(srv, core.jwtIssuer, p);
  if (jwtIssuer !== undefined) core.jwtIssuer = jwtIssuer;
  const delegation = readDelegationBlock(srv, core.trustDomain, p);
  const registrars = readRegistrarsBlock(srv, core.trustDomain, p);
  const consoleSettings = readConsoleBlock(srv, p);
  const plugins = selectPlugins(block(root, 'plugins', '', p), opts.catalog ?? SERVER_CATALOG, SERVER_PLUGIN_KINDS, serverPluginCore(core.dataDir, notices), p);
  const listeners = readListeners(root, p);
  const audit = readAuditBlock(root, p);
  const certification = readCertificationBlock(srv, audit, p);
  p.throwIfAny('invalid configuration');
  return {
    ...core,
    ...listeners,
    audit,
    datastorePath: join(core.dataDir, 'datastore'),
    plugins,
    notices,
    ...(bundleEndpoint !== undefined ? { bundleEndpoint } : {}),
    ...(oidcDiscovery !== undefined ? { oidcDiscovery } : {}),
    ...(delegation !== undefined ? { delegation } : {}),
    ...(registrars !== undefined ? { registrars } : {}),
    ...(consoleSettings !== undefined ? { console: consoleSettings } : {}),
    ...(certification !== undefined ? { certification } : {}),
    get postgres() {
      const c = configOf(this.plugins, 'DataStore', 'sql') as SqlDataStoreConfig | undefined;
      return c?.databaseType === 'postgres' ? { connectionString: c.connectionString } : undefined;
    },
    get keyManager() {
      const [km] = pluginsOfKind(this.plugins, 'KeyManager');
      return { kind: km?.name ?? 'none', ...(km?.config as object | undefined) };
    },
    get upstream() {
      return pluginsOfKind(this.plugins, 'UpstreamAuthority')[0]?.config as ServerSettings['upstream'];
    },
    get nodeAttestors() {
      return pluginsOfKind(this.plugins, 'NodeAttestor').map((a) => a.name);
    },
    get k8sPsat() {
      return configOf(this.plugins, 'NodeAttestor', 'k8s_psat') as K8sPsatAttestorConfig | undefined;
    },
  };
}

/**
 * `settings` with the plugin `kind`/`name` (configured from `data`, its plugin_data) in
 * place of the configured ones of that kind (for a `one` kind) or beside them (a node
 * attestor of another name). For programs and tests assembling a server by hand.
 */
export function useServerPlugin(
  settings: ServerSettings,
  kind: ServerPluginKind,
  name: string,
  data: HclObject = {},
  catalog: readonly ServerPlugin[] = SERVER_CATALOG,
): void {
  const configured = configurePlugin(catalog, kind, name, data, serverPluginCore(settings.dataDir, settings.notices));
  const many = SERVER_PLUGIN_KINDS.find((k) => k.kind === kind)?.cardinality === 'many';
  const replaced = (c: ConfiguredServerPlugin): boolean => c.kind === kind && (!many || c.name === name);
  const first = settings.plugins.findIndex(replaced);
  const kept = settings.plugins.filter((c) => !replaced(c));
  if (first >= 0) kept.splice(first, 0, configured);
  else kept.push(configured);
  const order = (c: ConfiguredServerPlugin): number => SERVER_PLUGIN_KINDS.findIndex((k) => k.kind === c.kind);
  settings.plugins = kept.sort((a, b) => order(a) - order(b));
}
