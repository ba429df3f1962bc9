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
  | 'ERR_DELEGATION_CONFIG';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<DelegationErrorCode, 'delegation'> {}
}

export class DelegationError extends MayflyError<DelegationErrorCode> {}

export type OAuthErrorName = 'invalid_request' | 'invalid_grant' | 'unauthorized_client' | 'invalid_target' | 'invalid_scope' | 'server_error';

/** The RFC 6749/8693 error name for a delegation error code. */
export function oauthError(code: DelegationErrorCode): OAuthErrorName {
  switch (code) {
    case 'ERR_DELEGATION_INVALID_REQUEST': return 'invalid_request';
    case 'ERR_DELEGATION_INVALID_GRANT': return 'invalid_grant';
    case 'ERR_DELEGATION_UNAUTHORIZED_CLIENT': return 'unauthorized_client';
    case 'ERR_DELEGATION_INVALID_TARGET': return 'invalid_target';
    case 'ERR_DELEGATION_INVALID_SCOPE': return 'invalid_scope';
    case 'ERR_DELEGATION_CONFIG': return 'server_error';
  }
}
