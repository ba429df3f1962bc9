/**
 * @module spiffe/bundle/jwk
 *
 * JWK shapes of a SPIFFE bundle and conversions between public KeyObjects and JWKs.
 *
 * Threat: a bundle that smuggles a secret (a private `d`, an `oct` symmetric key) or a key
 * that the validator would use for the wrong algorithm. Only EC (P-256/384/521) and RSA
 * (≥ 2048 bits) public keys become JWT authorities; private members are always refused.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { MIN_RSA_BITS } from '../jwt/algorithms.js';

/** One key of a SPIFFE bundle, as it appears in JSON. */
export interface SpiffeJwk {
  kty: string;
  use: 'x509-svid' | 'jwt-svid';
  kid?: string;
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  x5c?: string[];
}

/** A SPIFFE bundle document (a JWK Set with SPIFFE parameters). */
export interface SpiffeJwks {
  keys: SpiffeJwk[];
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

/** JWK members that only private or symmetric keys carry (RFC 7518 §6.2.2, §6.3.2, §6.4). */
export const PRIVATE_JWK_MEMBERS: readonly string[] = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Public key parameters of `key` as JWK members (kty, crv/x/y or n/e); EC coordinates full length. */
export function publicJwkParams(key: KeyObject): Pick<SpiffeJwk, 'kty' | 'crv' | 'x' | 'y' | 'n' | 'e'> {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  // Node pads EC coordinates to the field size (checked by a test), as RFC 7518 §6.2.1.2 requires.
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.kty === 'EC') return { kty: 'EC', crv: jwk.crv as string, x: jwk.x as string, y: jwk.y as string };
  if (jwk.kty === 'RSA') return { kty: 'RSA', n: jwk.n as string, e: jwk.e as string };
  if (jwk.kty === 'OKP') return { kty: 'OKP', crv: jwk.crv as string, x: jwk.x as string };
  throw new TypeError(`key type ${String(jwk.kty)} cannot be expressed as a public JWK`);
}

/** Why `key` cannot be a JWT-SVID authority, or undefined when it can. */
export function jwtAuthorityProblem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType === 'ec') {
    const c = key.asymmetricKeyDetails?.namedCurve;
    if (c === 'prime256v1' || c === 'secp384r1' || c === 'secp521r1' || c === 'P-256' || c === 'P-384' || c === 'P-521') return undefined;
    return `EC curve ${c ?? 'unknown'} is not usable for JWT-SVIDs (use P-256, P-384 or P-521)`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= MIN_RSA_BITS ? undefined : `RSA key of ${bits} bits is too weak (at least ${MIN_RSA_BITS})`;
  }
  return `key type ${key.asymmetricKeyType ?? 'unknown'} is not usable for JWT-SVIDs (use EC or RSA)`;
}

/** Big-endian magnitude of a base64url value with leading zero bytes removed (for comparing). */
export function magnitude(b64url: string): Buffer {
  const b = Buffer.from(b64url, 'base64url');
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}
