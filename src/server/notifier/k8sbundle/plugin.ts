/**
 * @module server/notifier/k8sbundle/plugin
 *
 * Server catalog registration of `Notifier "k8sbundle"` (SPIRE's keys and meaning):
 * - `namespace` (default `mayfly`; SPIRE: `spire`), `config_map` (default `mayfly-bundle`;
 *   SPIRE: `spire-bundle`), `config_map_key` (default `bundle.crt`, as SPIRE): where the
 *   trust bundle's PEM goes;
 * - SPIRE's `kube_config_file_path` is refused: only the in-cluster API server (the pod's
 *   service account) is supported, as for k8s_psat; `webhook_label`, `api_service_label`
 *   and `clusters` are refused too (no webhook or API service CA bundles to fill).
 */
import { checkKeys, str } from '../../../config/accessors.js';
import { definePlugin, parsedConfig } from '../../../config/plugins.js';
import { Problems } from '../../../config/problems.js';
import { inClusterConfig, type ApiServerClientConfig } from '../../../attestors/node/k8s_psat/apiserver.js';
import { K8sBundleNotifier, type K8sBundleConfig, type K8sBundleLogger } from './k8sbundle.js';

export const K8SBUNDLE_DEFAULTS: K8sBundleConfig = { namespace: 'mayfly', configMap: 'mayfly-bundle', configMapKey: 'bundle.crt' };

export interface K8sBundlePluginDeps {
  readonly logger: K8sBundleLogger;
  /** Where the Kubernetes API server is (default: the pod's in-cluster configuration); tests point it at a stand-in. */
  readonly kubernetesApiServer?: () => Promise<ApiServerClientConfig>;
  /** Wait before retrying a failed publish (ms). */
  readonly notifierRetryMs?: number;
}

const REFUSED: Record<string, string> = {
  kube_config_file_path: 'only the in-cluster API server is supported (the server pod\'s service account); run the server in the cluster, or publish the bundle yourself',
  webhook_label: 'Mayfly has no webhook CA bundles to fill',
  api_service_label: 'Mayfly has no API service CA bundles to fill',
  clusters: 'one cluster only: the one the server runs in',
};

export const k8sBundleNotifierPlugin = definePlugin({
  kind: 'Notifier',
  name: 'k8sbundle',
  parseConfig: (data, where, _core) => {
    const p = new Problems();
    for (const [key, why] of Object.entries(REFUSED)) if (data[key] !== undefined) p.add(`${where}.${key} is not supported: ${why}`);
    const rest = Object.fromEntries(Object.entries(data).filter(([k]) => !(k in REFUSED)));
    checkKeys(rest, ['namespace', 'config_map', 'config_map_key'], where, p);
    const config: K8sBundleConfig = {
      namespace: str(data, 'namespace', where, p, { nonEmpty: true }) ?? K8SBUNDLE_DEFAULTS.namespace,
      configMap: str(data, 'config_map', where, p, { nonEmpty: true }) ?? K8SBUNDLE_DEFAULTS.configMap,
      configMapKey: str(data, 'config_map_key', where, p, { nonEmpty: true }) ?? K8SBUNDLE_DEFAULTS.configMapKey,
    };
    // Kubernetes names: namespace and ConfigMap a DNS-1123 label / subdomain, the key [-._a-zA-Z0-9]+.
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(config.namespace)) p.add(`${where}.namespace must be a Kubernetes namespace name (lower-case letters, digits, '-'); got ${JSON.stringify(config.namespace)}`);
    if (!/^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/.test(config.configMap)) p.add(`${where}.config_map must be a Kubernetes object name (lower-case letters, digits, '-', '.'); got ${JSON.stringify(config.configMap)}`);
    if (!/^[-._a-zA-Z0-9]{1,253}$/.test(config.configMapKey)) p.add(`${where}.config_map_key must be a ConfigMap key (letters, digits, '-', '_', '.'); got ${JSON.stringify(config.configMapKey)}`);
    return parsedConfig(p, config);
  },
  build: (config: K8sBundleConfig, deps: K8sBundlePluginDeps) =>
    new K8sBundleNotifier({
      ...config,
      logger: deps.logger,
      apiServer: deps.kubernetesApiServer ?? (() => inClusterConfig()),
      ...(deps.notifierRetryMs !== undefined ? { retryMs: deps.notifierRetryMs } : {}),
    }),
});
