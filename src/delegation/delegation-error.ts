/**
 * @module delegation/delegation-error
 *
 * The codes the token exchange (RFC 8693) raises (stable: never rename one). Each maps to
 * the OAuth error its response carries (`oauthError`), with HTTP 400 as RFC 6749 §5.2 says.
 */
import { MayflyError } from '../spiffe/errors.js';

export type DelegationErrorCode =
  /** The request lacks a parameter, repeats one, or carries one of the wrong type or size. */
  | 'ERR_DELEGATION_INVALID_REQUEST'
  /** The subject token (the user's) failed verification: signature, issuer, audience, expiry, alg. */
  | 'ERR_DELEGATION_INVALID_GRANT'
  /** The actor is not authenticated by an SVID of our trust domain, or no policy rule lets it act for this user. */
  | 'ERR_DELEGATION_UNAUTHORIZED_CLIENT'
  /** The `resource`/`audience` asked for is not one the policy allows. */
  | 'ERR_DELEGATION_INVALID_TARGET'
  /** A scope asked for is not granted by both the policy and the user token. */
  | 'ERR_DELEGATION_INVALID_SCOPE'
  /** The delegation config (upstream issuer, policy) is wrong: the server refuses to start. */
  | 'ERR_DELEGATION_CONFIG'
  /** The upstream issuer's keys are not fetched yet (its discovery URL unreachable): retry later (HTTP 503). */
  | 'ERR_DELEGATION_UNAVAILABLE'
  /** The actor or the source address is over its token-bucket rate limit (HTTP 429). */
  | 'ERR_DELEGATION_RATE_LIMITED';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<DelegationErrorCode, 'delegation'> {}
}

export class DelegationError extends MayflyError<DelegationErrorCode> {}

export type OAuthErrorName = 'invalid_request' | 'invalid_grant' | 'unauthorized_client' | 'invalid_target' | 'invalid_scope' | 'server_error' | 'temporarily_unavailable';

/** The RFC 6749/8693 error name for a delegation error code. */
export function oauthError(code: DelegationErrorCode): OAuthErrorName {
  switch (code) {
    case 'ERR_DELEGATION_INVALID_REQUEST': return 'invalid_request';
    case 'ERR_DELEGATION_INVALID_GRANT': return 'invalid_grant';
    case 'ERR_DELEGATION_UNAUTHORIZED_CLIENT': return 'unauthorized_client';
    case 'ERR_DELEGATION_INVALID_TARGET': return 'invalid_target';
    case 'ERR_DELEGATION_INVALID_SCOPE': return 'invalid_scope';
    case 'ERR_DELEGATION_CONFIG': return 'server_error';
    // RFC 6749 §4.1.2.1's name for "temporary overloading or maintenance"; the status tells which.
    case 'ERR_DELEGATION_UNAVAILABLE': return 'temporarily_unavailable';
    case 'ERR_DELEGATION_RATE_LIMITED': return 'temporarily_unavailable';
  }
}

/** The HTTP status of a refusal: 400 (RFC 6749 §5.2), 503 while the issuer's keys are missing, 429 over a rate limit. */
export function httpStatus(code: DelegationErrorCode): 400 | 429 | 500 | 503 {
  if (code === 'ERR_DELEGATION_UNAVAILABLE') return 503;
  if (code === 'ERR_DELEGATION_RATE_LIMITED') return 429;
  if (code === 'ERR_DELEGATION_CONFIG') return 500;
  return 400;
}
