/**
 * @module spiffe/errors
 *
 * One error base class for all of Mayfly, with a stable machine-readable `code`.
 * Callers branch on `code`, never on the message; messages are for operators and say
 * what was wrong and, where it helps, what to do about it. This module declares the
 * standard's codes; every other room declares its own (`MayflyErrorCodes` below).
 *
 * Convention (as in panva/jose): misuse of an API by the calling code (wrong argument
 * type, impossible option) throws a plain `TypeError`; bad *data* (a malformed SPIFFE ID,
 * a forged token, an expired certificate) throws a `MayflyError` subclass.
 */

/** The codes the standard's own code raises (SPIFFE ID, keys, X.509-SVID, JWT-SVID, bundles). */
export type SpiffeErrorCode =
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
  | 'ERR_BUNDLE_TRUST_DOMAIN';

/**
 * Every stable error code of the program, one key per code, the value naming the room that
 * owns it. Each room declares its own codes beside its error class and adds them here by
 * module augmentation, e.g. in `src/ca/ca-error.ts`:
 *
 *     export type CaErrorCode = 'ERR_CA_NOT_READY' | ...;
 *     declare module '../spiffe/errors.js' {
 *       interface MayflyErrorCodes extends Record<CaErrorCode, 'ca'> {}
 *     }
 *
 * So this module imports nothing of Mayfly's and, used alone, knows only its own codes,
 * while in the whole program `ErrorCode` is the union of every room's codes: a misspelt
 * code is a type error everywhere (`new MayflyError(...)`, `isMayflyError(err, ...)`), and a
 * code declared by two rooms is one too (the two `Record`s disagree on the owner).
 * Codes are a stable API: add new ones in the room that raises them; never rename one.
 */
export interface MayflyErrorCodes extends Record<SpiffeErrorCode, 'spiffe'> {}

/** Every code registered in `MayflyErrorCodes`: the codes of every room in the program. */
export type ErrorCode = keyof MayflyErrorCodes & string;

/**
 * Base class of every data error Mayfly throws. `C` narrows the codes a subclass may carry
 * (a room's error class takes its room's union, e.g. `CaError extends MayflyError<CaErrorCode>`).
 */
export class MayflyError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A SPIFFE ID or trust domain name that breaks a rule of the SPIFFE ID standard. */
export class SpiffeIdError extends MayflyError<SpiffeErrorCode> {}

/** Key material that cannot be used (wrong type, size, curve or encoding). */
export class KeyError extends MayflyError<SpiffeErrorCode> {}

/** An X.509 certificate, chain or CSR that fails parsing or SPIFFE path validation. */
export class X509SvidError extends MayflyError<SpiffeErrorCode> {}

/** A JWT-SVID that fails parsing or validation. */
export class JwtSvidError extends MayflyError<SpiffeErrorCode> {}

/** A trust bundle that does not follow the SPIFFE bundle format. */
export class BundleError extends MayflyError<SpiffeErrorCode> {}

/** True when `err` is a MayflyError carrying `code` (or any code when omitted). */
export function isMayflyError<C extends ErrorCode = ErrorCode>(err: unknown, code?: C): err is MayflyError<C> {
  return err instanceof MayflyError && (code === undefined || err.code === code);
}
