/**
 * @module federation/federation-error
 *
 * The codes the federation room raises (stable: never rename one), and the class that
 * carries them.
 */
import { MayflyError } from '../spiffe/errors.js';

export type FederationErrorCode =
  /** A bundle endpoint URL, profile or endpoint SPIFFE ID that cannot be used. */
  | 'ERR_FEDERATION_INVALID'
  /** A peer's bundle endpoint could not be fetched, or what it served was refused (the previous bundle is kept). */
  | 'ERR_FEDERATION_FETCH_FAILED';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<FederationErrorCode, 'federation'> {}
}

export class FederationError extends MayflyError<FederationErrorCode> {}
