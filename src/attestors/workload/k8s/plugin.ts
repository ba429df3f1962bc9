/**
 * @module attestors/workload/k8s/plugin
 *
 * Agent catalog registration of `WorkloadAttestor "k8s"` (plugin_data read by
 * `parseK8sWorkloadPluginData`; the node name comes from `node_name` or the variable
 * `node_name_env` names, in the agent's environment). The kubelet is reached as configured
 * unless `deps.podLister` says otherwise, and /proc is read at `deps.procRoot` (default
 * /proc): both for tests.
 */
import { definePlugin } from '../../../config/plugins.js';
import { parseK8sWorkloadPluginData } from './config.js';
import { K8S_SELECTOR_TYPE, K8sWorkloadAttestor, type PodLister } from './k8s.js';

export interface K8sWorkloadPluginDeps {
  readonly podLister?: PodLister;
  readonly procRoot?: string;
}

export const k8sWorkloadPlugin = definePlugin({
  kind: 'WorkloadAttestor',
  name: K8S_SELECTOR_TYPE,
  parseConfig: (data, where, core) => parseK8sWorkloadPluginData(data, { where, env: core.env }),
  build: (config, deps: K8sWorkloadPluginDeps) =>
    new K8sWorkloadAttestor({
      ...config,
      ...(deps.podLister !== undefined ? { podLister: deps.podLister } : {}),
      ...(deps.procRoot !== undefined ? { procRoot: deps.procRoot } : {}),
    }),
});
