/**
 * @module spiffe/errors
 *
 * One error base class for all of Mayfly, with a stable machine-readable `code`.
 * Callers branch on `code`, never on the message; messages are for operators and say
 * what was wrong and, where it helps, what to do about it.
 *
 * Convention (as in panva/jose): misuse of an API by the calling code (wrong argument
 * type, impossible option) throws a plain `TypeError`; bad *data* (a malformed SPIFFE ID,
 * a forged token, an expired certificate) throws a `MayflyError` subclass.
 */

/** Every stable error code Mayfly emits. Add new codes here; never rename one. */
export type ErrorCode =
  // SPIFFE ID and trust domain parsing (one code per rule of the standard)
  | 'ERR_SPIFFE_ID_EMPTY'
  | 'ERR_SPIFFE_ID_TOO_LONG'
  | 'ERR_SPIFFE_ID_WRONG_SCHEME'
  | 'ERR_SPIFFE_ID_MISSING_TRUST_DOMAIN'
  | 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG'
  | 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'
  | 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR'
  | 'ERR_SPIFFE_ID_DOT_SEGMENT'
  | 'ERR_SPIFFE_ID_EMPTY_SEGMENT'
  | 'ERR_SPIFFE_ID_TRAILING_SLASH'
  | 'ERR_SPIFFE_ID_NO_LEADING_SLASH'
  | 'ERR_SPIFFE_ID_NOT_MEMBER'
  | 'ERR_SPIFFE_ID_PATH_REQUIRED'
  // Keys
  | 'ERR_KEY_INVALID'
  | 'ERR_KEY_UNSUPPORTED'
  // X.509-SVID parsing and path validation
  | 'ERR_X509_MALFORMED'
  | 'ERR_X509_SVID_INVALID'
  | 'ERR_X509_CHAIN_INVALID'
  | 'ERR_X509_NO_TRUST'
  | 'ERR_X509_EXPIRED'
  | 'ERR_X509_NOT_YET_VALID'
  | 'ERR_X509_BAD_SIGNATURE'
  | 'ERR_X509_NAME_CONSTRAINTS'
  | 'ERR_X509_KEY_MISMATCH'
  | 'ERR_X509_BUILD'
  | 'ERR_CSR_INVALID'
  // JWT-SVID
  | 'ERR_JWT_MALFORMED'
  | 'ERR_JWT_ALG_NOT_ALLOWED'
  | 'ERR_JWT_TYP_INVALID'
  | 'ERR_JWT_CRIT'
  | 'ERR_JWT_KID_MISSING'
  | 'ERR_JWT_KID_UNKNOWN'
  | 'ERR_JWT_SIGNATURE'
  | 'ERR_JWT_CLAIM_MISSING'
  | 'ERR_JWT_CLAIM_INVALID'
  | 'ERR_JWT_EXPIRED'
  | 'ERR_JWT_NOT_YET_VALID'
  | 'ERR_JWT_AUDIENCE'
  | 'ERR_JWT_NO_BUNDLE'
  // Trust bundles
  | 'ERR_BUNDLE_MALFORMED'
  | 'ERR_BUNDLE_KEY_INVALID'
  | 'ERR_BUNDLE_TRUST_DOMAIN'
  // Datastore
  | 'ERR_DATASTORE_NOT_FOUND'
  | 'ERR_DATASTORE_ALREADY_EXISTS'
  | 'ERR_DATASTORE_CONFLICT'
  | 'ERR_DATASTORE_INVALID'
  | 'ERR_DATASTORE_UNAVAILABLE'
  // CA
  | 'ERR_CA_NOT_READY'
  | 'ERR_CA_MINT_CHECK'
  | 'ERR_CA_AUTHORITY_NOT_FOUND'
  | 'ERR_CA_AUTHORITY_STATE'
  | 'ERR_CA_CONFIG'
  | 'ERR_CA_KEY_PERMISSIONS'
  | 'ERR_CA_JOURNAL_INVALID'
  | 'ERR_CA_UPSTREAM_INVALID'
  // Attestation and authorisation
  | 'ERR_ATTESTATION_FAILED'
  | 'ERR_JOIN_TOKEN_INVALID'
  | 'ERR_AGENT_BANNED'
  | 'ERR_AGENT_UNKNOWN'
  | 'ERR_PERMISSION_DENIED'
  | 'ERR_PEER_CREDENTIALS'
  | 'ERR_CALLER_CHANGED'
  | 'ERR_SELECTOR_INVALID'
  | 'ERR_ENTRY_INVALID'
  | 'ERR_CONFIG_INVALID'
  // Agent (node attestation client, entry sync, SVID cache)
  | 'ERR_AGENT_SVID_EXPIRED'
  | 'ERR_AGENT_NOT_READY'
  | 'ERR_AGENT_SERVER_CALL'
  | 'ERR_AGENT_STATE_INVALID'
  // Server API requests (mapped to gRPC statuses in src/server/status.ts)
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_REQUEST_INVALID'
  | 'ERR_REQUEST_TOO_LARGE'
  | 'ERR_SERVER_ADDRESS_IN_USE'
  // Workload API client (SDK) and command line
  | 'ERR_WORKLOAD_API_ENDPOINT'
  | 'ERR_WORKLOAD_API_CALL'
  | 'ERR_WORKLOAD_API_RESPONSE'
  | 'ERR_WORKLOAD_API_HTTP2'
  | 'ERR_PEER_UNAUTHORIZED'
  | 'ERR_CLI_USAGE'
  // Files, directories and socket paths (src/securefs)
  | 'ERR_FILE_PERMISSIONS'
  | 'ERR_FILE_NOT_REGULAR'
  | 'ERR_FILE_NOT_DIRECTORY'
  | 'ERR_PATH_UNTRUSTED';

/** Base class of every data error Mayfly throws. */
export class MayflyError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A SPIFFE ID or trust domain name that breaks a rule of the SPIFFE ID standard. */
export class SpiffeIdError extends MayflyError {}

/** Key material that cannot be used (wrong type, size, curve or encoding). */
export class KeyError extends MayflyError {}

/** An X.509 certificate, chain or CSR that fails parsing or SPIFFE path validation. */
export class X509SvidError extends MayflyError {}

/** A JWT-SVID that fails parsing or validation. */
export class JwtSvidError extends MayflyError {}

/** A trust bundle that does not follow the SPIFFE bundle format. */
export class BundleError extends MayflyError {}

/** True when `err` is a MayflyError carrying `code` (or any code when omitted). */
export function isMayflyError(err: unknown, code?: ErrorCode): err is MayflyError {
  return err instanceof MayflyError && (code === undefined || err.code === code);
}
