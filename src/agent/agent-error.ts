/**
 * @module agent/agent-error
 *
 * The codes the agent raises (stable: never rename one): node attestation client, entry
 * sync, SVID cache, its state directory and peer credentials.
 */
export type AgentErrorCode =
  | 'ERR_AGENT_SVID_EXPIRED'
  | 'ERR_AGENT_NOT_READY'
  | 'ERR_AGENT_SERVER_CALL'
  | 'ERR_AGENT_STATE_INVALID'
  | 'ERR_PEER_CREDENTIALS';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<AgentErrorCode, 'agent'> {}
}
