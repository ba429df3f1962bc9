/**
 * @module ca/ca-error
 *
 * The CA's error class (re-exported by `server-ca.ts` and `index.ts`) and the small checks
 * every part of the CA shares.
 */
import { MayflyError } from '../spiffe/errors.js';

export class CaError extends MayflyError {}

export function fail(code: 'ERR_CA_AUTHORITY_NOT_FOUND' | 'ERR_CA_AUTHORITY_STATE' | 'ERR_CA_NOT_READY' | 'ERR_CA_CONFIG', message: string): never {
  throw new CaError(code, message);
}

/** `v` if it is a positive safe integer, `def` if absent; TypeError otherwise. */
export function positive(v: number | undefined, def: number, what: string): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`${what} must be a positive integer number of seconds`);
  return v;
}
