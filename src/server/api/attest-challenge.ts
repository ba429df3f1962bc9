/**
 * @module server/api/attest-challenge
 *
 * How a transport that carries challenge–response (SPIRE's `AttestAgent` stream,
 * server/spire-api/agent-attest) gives Mayfly's one AttestAgent implementation its channel
 * to the agent: it attaches the function to the call object it hands the handler, and the
 * handler passes it to the node attestor as `NodeAttestationContext.challenge`. Mayfly's
 * own unary AttestAgent has none, so attestors that need proof of possession refuse there.
 */

/** The property of a call object that carries its challenge channel. */
export const ATTEST_CHALLENGE: unique symbol = Symbol('mayfly.attest-challenge');

/** Sends the agent `challenge`; resolves with its answer. */
export type AttestChallenge = (challenge: Uint8Array) => Promise<Uint8Array>;

/** The challenge channel attached to `call`, if its transport has one. */
export function challengeOf(call: unknown): AttestChallenge | undefined {
  if (typeof call !== 'object' || call === null) return undefined;
  const c = (call as { [ATTEST_CHALLENGE]?: unknown })[ATTEST_CHALLENGE];
  return typeof c === 'function' ? (c as AttestChallenge) : undefined;
}
