/**
 * @module attestors/node/join_token/agent-plugin
 *
 * Agent catalog registration of `NodeAttestor "join_token"` (the agent's default): no
 * plugin_data; the token comes from `join_token` in the agent block or `-joinToken`, and is
 * sent once, as `{ type: "join_token", payload: <token> }`. A token is single use, so the
 * evidence never re-attests. Without a token there is nothing to build: the agent resumes
 * with the SVID it stored.
 */
import { definePlugin, parseNoConfig } from '../../../config/plugins.js';
import { JOIN_TOKEN_TYPE } from './join_token.js';

export interface JoinTokenAgentDeps {
  /** The token given to the agent, if any. */
  readonly joinToken?: string;
}

/** Join-token evidence for one AttestAgent call. */
export interface JoinTokenEvidence {
  readonly canReattest: false;
  attestationData(): Promise<{ readonly type: string; readonly payload: Buffer }>;
}

export const joinTokenAgentPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: JOIN_TOKEN_TYPE,
  parseConfig: parseNoConfig,
  defaultConfig: () => ({}),
  build: (_config, deps: JoinTokenAgentDeps): JoinTokenEvidence | undefined => {
    const token = deps.joinToken;
    if (token === undefined || token === '') return undefined;
    return { canReattest: false, attestationData: async () => ({ type: JOIN_TOKEN_TYPE, payload: Buffer.from(token, 'utf8') }) };
  },
});
