/**
 * @module server/server-error
 *
 * The codes the server raises (stable: never rename one); `status.ts` maps them, with the
 * other rooms' codes, to gRPC statuses.
 *
 * `ERR_CONFIG_INVALID` is raised by the config parser (`hcl.ts`, shared with the agent
 * today) and by the agent about its own trust bundle.
 * TODO(issue 17): it moves with `hcl.ts` to the room for config parsing shared by server and
 * agent once that room exists.
 */
export type ServerErrorCode =
  | 'ERR_AGENT_BANNED'
  | 'ERR_AGENT_UNKNOWN'
  | 'ERR_PERMISSION_DENIED'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_REQUEST_INVALID'
  | 'ERR_REQUEST_TOO_LARGE'
  | 'ERR_SERVER_ADDRESS_IN_USE'
  | 'ERR_CONFIG_INVALID'
  // Revoking an X509-SVID that has already expired: nothing to do (FAILED_PRECONDITION).
  | 'ERR_SVID_ALREADY_EXPIRED'
  // Entry.CertifyEntry refused for the entry's state (wrong or no owner, certification off): FAILED_PRECONDITION.
  | 'ERR_CERTIFICATION_REFUSED';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<ServerErrorCode, 'server'> {}
}
