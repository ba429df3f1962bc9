/**
 * @module attestors/workload/k8s/plugin
 *
 * Agent catalog registration of `WorkloadAttestor "k8s"` (plugin_data read by
 * `parseK8sWorkloadPluginData`; the node name comes from `node_name` or the variable
 * `node_name_env` names, in the agent's environment).
 */
import { definePlugin } from '../../../config/plugins.js';
import { parseK8sWorkloadPluginData } from './config.js';
import { K8S_SELECTOR_TYPE, K8sWorkloadAttestor } from './k8s.js';

export const k8sWorkloadPlugin = definePlugin({
  kind: 'WorkloadAttestor',
  name: K8S_SELECTOR_TYPE,
  parseConfig: (data, where, core) => parseK8sWorkloadPluginData(data, { where, env: core.env }),
  build: (config) => new K8sWorkloadAttestor(config),
});
