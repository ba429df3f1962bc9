/**
 * @module attestors/node/k8s_psat/agent-plugin
 *
 * Agent catalog registration of `NodeAttestor "k8s_psat"`: plugin_data `cluster` (required),
 * `token_path`, `audience` (see `parseK8sPsatAgentPluginData`); the evidence is the
 * projected service-account token, re-read for every attestation.
 */
import { definePlugin } from '../../../config/plugins.js';
import { K8sPsatAgentAttestor } from './agent.js';
import { parseK8sPsatAgentPluginData } from './config.js';
import { K8S_PSAT_TYPE } from './payload.js';

export interface K8sPsatAgentDeps {
  readonly now?: () => Date;
}

export const k8sPsatAgentPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: K8S_PSAT_TYPE,
  parseConfig: (data, where) => parseK8sPsatAgentPluginData(data, where),
  build: (config, deps: K8sPsatAgentDeps) => new K8sPsatAgentAttestor(deps.now === undefined ? config : { ...config, now: deps.now }),
});
