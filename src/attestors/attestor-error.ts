/**
 * @module attestors/attestor-error
 *
 * The codes attestors raise (stable: never rename one), part of the contracts the
 * attestors declare:
 * - `ERR_ATTESTATION_FAILED`: the evidence does not hold up (node or workload); the
 *   server's node attestation and the agent's client report it too.
 * - `ERR_ATTESTATION_MALFORMED`: node attestation evidence that cannot even be read (not
 *   the attestor's format, undecodable certificates); INVALID_ARGUMENT, as SPIRE's x509pop.
 * - `ERR_JOIN_TOKEN_INVALID`: a join token that is malformed, unknown, used or expired;
 *   the store behind `JoinTokenConsumer` (the datastore) throws it from `consumeJoinToken`.
 * - `ERR_CALLER_CHANGED`: a workload attestor's `attest` found the caller is no longer the
 *   process that connected; the Workload API endpoint answers it with PERMISSION_DENIED.
 */
export type AttestorErrorCode = 'ERR_ATTESTATION_FAILED' | 'ERR_ATTESTATION_MALFORMED' | 'ERR_JOIN_TOKEN_INVALID' | 'ERR_CALLER_CHANGED';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<AttestorErrorCode, 'attestors'> {}
}
