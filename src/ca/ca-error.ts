/**
 * @module ca/ca-error
 *
 * The CA's error codes and class (re-exported by `server-ca.ts` and `index.ts`) and the
 * small checks every part of the CA shares.
 */
import { MayflyError } from '../spiffe/errors.js';

/** The codes the CA raises (stable: never rename one). */
export type CaErrorCode =
  | 'ERR_CA_NOT_READY'
  | 'ERR_CA_MINT_CHECK'
  | 'ERR_CA_AUTHORITY_NOT_FOUND'
  | 'ERR_CA_AUTHORITY_STATE'
  | 'ERR_CA_CONFIG'
  | 'ERR_CA_KEY_PERMISSIONS'
  | 'ERR_CA_JOURNAL_INVALID'
  | 'ERR_CA_UPSTREAM_INVALID';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<CaErrorCode, 'ca'> {}
}

export class CaError extends MayflyError<CaErrorCode> {}

/**
 * Verifies what the CA has just minted (SPIRE's rule: never hand out an SVID that does not
 * verify against our own bundle). A failure is the CA's fault — a CA/bundle mismatch, a
 * signing fault — so it becomes `ERR_CA_MINT_CHECK` (INTERNAL), never the caller's bad input.
 */
export function checkMinted<T>(verify: () => T): T {
  try {
    return verify();
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new CaError('ERR_CA_MINT_CHECK', `an SVID just minted failed verification against this server's own bundle (${why}); none was returned; check the CA's authorities and bundle (localauthority x509 show)`, { cause });
  }
}

export function fail(code: Extract<CaErrorCode, 'ERR_CA_AUTHORITY_NOT_FOUND' | 'ERR_CA_AUTHORITY_STATE' | 'ERR_CA_NOT_READY' | 'ERR_CA_CONFIG'>, message: string): never {
  throw new CaError(code, message);
}

/** `v` if it is a positive safe integer, `def` if absent; TypeError otherwise. */
export function positive(v: number | undefined, def: number, what: string): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`${what} must be a positive integer number of seconds`);
  return v;
}
