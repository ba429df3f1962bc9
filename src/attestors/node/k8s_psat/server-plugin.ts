/**
 * @module attestors/node/k8s_psat/server-plugin
 *
 * Server catalog registration of `NodeAttestor "k8s_psat"` (plugin_data read by
 * `parseK8sPsatPluginData`). The attestor's own checks (cluster names,
 * "namespace:serviceaccount" shapes) are reported with the file's other problems, not at
 * start. Each cluster's API server is reached with the pod's in-cluster configuration
 * unless `deps.kubernetesApi` says otherwise (tests point it at a fake).
 */
import { definePlugin } from '../../../config/plugins.js';
import type { KubernetesApi } from './apiserver.js';
import { parseK8sPsatPluginData } from './config.js';
import { K8S_PSAT_TYPE, K8sPsatAttestor } from './k8s_psat.js';

export interface K8sPsatPluginDeps {
  /** How to reach each cluster's API server (default: in-cluster configuration). */
  readonly kubernetesApi?: (cluster: string) => KubernetesApi;
}

export const k8sPsatServerPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: K8S_PSAT_TYPE,
  parseConfig: (data, where) => {
    const parsed = parseK8sPsatPluginData(data, where);
    if (parsed.config === undefined) return parsed;
    try {
      new K8sPsatAttestor(parsed.config);
    } catch (err) {
      return { problems: [`${where}: ${(err as Error).message}`] };
    }
    return parsed;
  },
  build: (config, deps: K8sPsatPluginDeps) => {
    const api = deps.kubernetesApi;
    if (api === undefined) return new K8sPsatAttestor(config);
    return new K8sPsatAttestor({ clusters: Object.fromEntries(Object.entries(config.clusters).map(([n, c]) => [n, { ...c, api: api(n) }])) });
  },
});
