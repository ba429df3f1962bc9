/**
 * @module spiffe/jwt/decode
 *
 * Strict decoding of a compact JWS carrying a JWT-SVID, shared by the validator and the
 * insecure parser. Nothing here checks a signature.
 *
 * Threat: a hostile token that crashes or confuses the parser (huge input, lenient
 * base64, non-object JSON, header parameters we do not understand). The token is size-
 * bounded before any work, every part must be canonical unpadded base64url, the header
 * must name an allowed `alg`, a `typ` of JWT/JOSE if any, no `crit` (we implement no
 * extensions, so RFC 7515 §4.1.11 says reject), and a `kid`. Key-carrying header
 * parameters (`jwk`, `jku`, `x5c`, `x5u`) are ignored: keys come only from bundles.
 */
import { JwtSvidError, type SpiffeErrorCode } from '../errors.js';
import { SpiffeId } from '../id.js';
import { algorithmSpec, type AlgorithmSpec } from './algorithms.js';

/** Tokens longer than this are rejected before parsing (characters). */
export const MAX_JWT_SVID_LENGTH = 64 * 1024;

const B64URL = /^[A-Za-z0-9_-]*$/;

export interface DecodedJwtSvid {
  readonly token: string;
  readonly header: Record<string, unknown>;
  readonly claims: Record<string, unknown>;
  readonly spec: AlgorithmSpec;
  readonly kid: string;
  readonly spiffeId: SpiffeId;
  /** `header.payload`, the bytes the signature covers */
  readonly signingInput: string;
  readonly signature: Buffer;
}

export function jwtFail(code: SpiffeErrorCode, why: string, cause?: unknown): never {
  throw new JwtSvidError(code, `JWT-SVID rejected: ${why}`, cause === undefined ? undefined : { cause });
}

function decodePart(part: string, what: string): Buffer {
  // Buffer's base64url decoder skips bad characters silently; check the alphabet first.
  // Length ≡ 1 (mod 4) cannot come from any byte string.
  if (!B64URL.test(part) || part.length % 4 === 1) jwtFail('ERR_JWT_MALFORMED', `${what} is not base64url`);
  const bytes = Buffer.from(part, 'base64url');
  // Reject non-canonical encodings (non-zero padding bits): two spellings of one token.
  if (bytes.toString('base64url') !== part) jwtFail('ERR_JWT_MALFORMED', `${what} is not canonical base64url`);
  return bytes;
}

function decodeJsonObject(part: string, what: string): Record<string, unknown> {
  const bytes = decodePart(part, what);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    jwtFail('ERR_JWT_MALFORMED', `${what} is not JSON`, cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) jwtFail('ERR_JWT_MALFORMED', `${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Largest NumericDate accepted (seconds): the edge of what a JS Date holds (±8.64e15 ms).
 * Beyond it `new Date(v * 1000)` is Invalid Date, and formatting one throws a RangeError.
 */
export const MAX_NUMERIC_DATE = 8.64e12;

function checkNumericDate(claims: Record<string, unknown>, name: string): void {
  const v = claims[name];
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) jwtFail('ERR_JWT_CLAIM_INVALID', `"${name}" must be a NumericDate (a number of seconds)`);
  if (typeof v === 'number' && Math.abs(v) > MAX_NUMERIC_DATE) jwtFail('ERR_JWT_CLAIM_INVALID', `"${name}" is ${v}, outside the range of dates (±${MAX_NUMERIC_DATE} seconds)`);
}

/** The `aud` claim as a list, checked for shape. */
export function audienceOf(claims: Record<string, unknown>): string[] {
  const aud = claims.aud;
  if (aud === undefined) jwtFail('ERR_JWT_CLAIM_MISSING', 'the "aud" claim is missing');
  if (typeof aud === 'string') {
    if (aud === '') jwtFail('ERR_JWT_CLAIM_INVALID', '"aud" is empty');
    return [aud];
  }
  if (!Array.isArray(aud) || aud.length === 0 || !aud.every((a) => typeof a === 'string' && a !== '')) {
    jwtFail('ERR_JWT_CLAIM_INVALID', '"aud" must be a non-empty string or a non-empty array of non-empty strings');
  }
  return [...(aud as string[])];
}

/** The `exp` claim, required. */
export function expiryOf(claims: Record<string, unknown>): number {
  if (claims.exp === undefined) jwtFail('ERR_JWT_CLAIM_MISSING', 'the "exp" claim is missing');
  checkNumericDate(claims, 'exp');
  return claims.exp as number;
}

/**
 * Decodes the token and checks the header and the `sub` claim. Everything the validator
 * needs to pick a key is checked here; the other claims are checked by `checkClaimShapes`.
 */
export function decodeJwtSvid(token: string): DecodedJwtSvid {
  if (typeof token !== 'string') throw new TypeError('JWT-SVID must be a string');
  if (token.length > MAX_JWT_SVID_LENGTH) jwtFail('ERR_JWT_MALFORMED', `token is ${token.length} characters; the limit is ${MAX_JWT_SVID_LENGTH}`);
  const first = token.indexOf('.');
  const second = first === -1 ? -1 : token.indexOf('.', first + 1);
  if (first === -1 || second === -1 || token.indexOf('.', second + 1) !== -1) {
    jwtFail('ERR_JWT_MALFORMED', 'a JWT-SVID is a compact JWS of exactly three dot-separated parts');
  }
  const header = decodeJsonObject(token.slice(0, first), 'header');
  if (header.alg === undefined) jwtFail('ERR_JWT_MALFORMED', 'header has no "alg"');
  const spec = algorithmSpec(header.alg);
  if (spec === undefined) {
    jwtFail('ERR_JWT_ALG_NOT_ALLOWED', `alg ${JSON.stringify(header.alg)} is not allowed; JWT-SVIDs use RS256/384/512, ES256/384/512 or PS256/384/512`);
  }
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    jwtFail('ERR_JWT_TYP_INVALID', `typ ${JSON.stringify(header.typ)} is not "JWT" or "JOSE"`);
  }
  if (header.crit !== undefined) jwtFail('ERR_JWT_CRIT', 'header lists critical extensions ("crit"), none of which are supported');
  const kid = header.kid;
  if (kid === undefined || kid === '') jwtFail('ERR_JWT_KID_MISSING', 'header has no "kid"; the signing key cannot be found in the bundle');
  if (typeof kid !== 'string') jwtFail('ERR_JWT_MALFORMED', '"kid" must be a string');

  const claims = decodeJsonObject(token.slice(first + 1, second), 'payload');
  const signature = decodePart(token.slice(second + 1), 'signature');
  const sub = claims.sub;
  if (sub === undefined) jwtFail('ERR_JWT_CLAIM_MISSING', 'the "sub" claim is missing');
  if (typeof sub !== 'string') jwtFail('ERR_JWT_CLAIM_INVALID', '"sub" must be a string');
  let spiffeId: SpiffeId;
  try {
    spiffeId = SpiffeId.parseWorkload(sub);
  } catch (cause) {
    jwtFail('ERR_JWT_CLAIM_INVALID', `"sub" is not a workload SPIFFE ID: ${(cause as Error).message}`, cause);
  }
  return { token, header, claims, spec, kid, spiffeId, signingInput: token.slice(0, second), signature };
}

/** Checks the shapes of aud/exp/nbf/iat (presence of aud and exp, numeric dates). */
export function checkClaimShapes(claims: Record<string, unknown>): { audience: string[]; exp: number } {
  const audience = audienceOf(claims);
  const exp = expiryOf(claims);
  checkNumericDate(claims, 'nbf');
  checkNumericDate(claims, 'iat');
  return { audience, exp };
}
