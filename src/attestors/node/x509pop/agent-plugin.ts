/**
 * @module attestors/node/x509pop/agent-plugin
 *
 * Agent catalog registration of `NodeAttestor "x509pop"`: plugin_data `private_key_path`
 * and `certificate_path` (required), `intermediates_path`. The evidence answers the
 * server's challenge (`answerChallenge`), so the agent attests over SPIRE's
 * Agent.AttestAgent stream, which carries challenges.
 */
import { definePlugin } from '../../../config/plugins.js';
import { X509PopAgentAttestor } from './agent.js';
import { parseX509PopAgentPluginData } from './config.js';
import { X509POP_TYPE } from './pop.js';

export const x509PopAgentPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: X509POP_TYPE,
  parseConfig: (data, where) => parseX509PopAgentPluginData(data, where),
  build: (config, _deps: object) => new X509PopAgentAttestor(config),
});
