/**
 * @module wire/server/agent-standing
 *
 * The trailer a server sets when it refuses an agent because of the agent's standing, so
 * the agent acts on it without parsing messages: `banned` (PERMISSION_DENIED) — the agent
 * stops serving its workloads' SVIDs at once; `evicted` (UNAUTHENTICATED) — the agent has
 * no record on the server and must attest again. Only the authenticated agent the refusal
 * is about receives it, over its mTLS connection to the server.
 */
export const AGENT_STANDING_TRAILER = 'mayfly-agent-standing';

export type AgentStanding = 'banned' | 'evicted';

/** The standing a trailer value names, or undefined for anything else. */
export function parseAgentStanding(value: unknown): AgentStanding | undefined {
  const v = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : undefined;
  return v === 'banned' || v === 'evicted' ? v : undefined;
}
