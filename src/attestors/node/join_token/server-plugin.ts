/**
 * @module attestors/node/join_token/server-plugin
 *
 * Server catalog registration of `NodeAttestor "join_token"`: no plugin_data; on unless its
 * block says `enabled = false` (agents outside any cluster can always be brought in with
 * `token generate`).
 */
import { definePlugin, parseNoConfig } from '../../../config/plugins.js';
import { JOIN_TOKEN_TYPE, JoinTokenAttestor, type JoinTokenConsumer } from './join_token.js';

/** What the attestor needs from the server: somewhere to consume a token, once. */
export interface JoinTokenPluginDeps {
  readonly joinTokens: JoinTokenConsumer;
}

export const joinTokenServerPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: JOIN_TOKEN_TYPE,
  parseConfig: parseNoConfig,
  defaultConfig: () => ({}),
  build: (_config, deps: JoinTokenPluginDeps) => new JoinTokenAttestor({ datastore: deps.joinTokens }),
});
