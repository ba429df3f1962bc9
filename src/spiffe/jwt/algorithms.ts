/**
 * @module spiffe/jwt/algorithms
 *
 * The JWS algorithms a JWT-SVID may use, and which keys may serve each one.
 *
 * Threat: algorithm confusion. A verifier that lets the token's `alg` pick the primitive
 * can be made to run HMAC with a public key as the secret (the classic HS256 forgery), to
 * accept `none`, or to feed an EC signature to an RSA key. The table below is the whole
 * allow-list (the JWT-SVID standard's RS/ES/PS families and nothing else), and
 * `keyFitsAlgorithm` pins each algorithm to one key type and, for ECDSA, one curve.
 */
import { constants, type KeyObject } from 'node:crypto';

export type JwtSvidAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512';

export interface AlgorithmSpec {
  readonly alg: JwtSvidAlgorithm;
  /** node:crypto digest name */
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly family: 'ecdsa' | 'rsa-pkcs1' | 'rsa-pss';
  /** node's name of the curve for ECDSA algorithms */
  readonly curve?: 'prime256v1' | 'secp384r1' | 'secp521r1';
  /** exact R‖S signature length for ECDSA algorithms */
  readonly signatureLength?: number;
}

const SPECS: Readonly<Record<JwtSvidAlgorithm, AlgorithmSpec>> = {
  ES256: { alg: 'ES256', hash: 'sha256', family: 'ecdsa', curve: 'prime256v1', signatureLength: 64 },
  ES384: { alg: 'ES384', hash: 'sha384', family: 'ecdsa', curve: 'secp384r1', signatureLength: 96 },
  ES512: { alg: 'ES512', hash: 'sha512', family: 'ecdsa', curve: 'secp521r1', signatureLength: 132 },
  RS256: { alg: 'RS256', hash: 'sha256', family: 'rsa-pkcs1' },
  RS384: { alg: 'RS384', hash: 'sha384', family: 'rsa-pkcs1' },
  RS512: { alg: 'RS512', hash: 'sha512', family: 'rsa-pkcs1' },
  PS256: { alg: 'PS256', hash: 'sha256', family: 'rsa-pss' },
  PS384: { alg: 'PS384', hash: 'sha384', family: 'rsa-pss' },
  PS512: { alg: 'PS512', hash: 'sha512', family: 'rsa-pss' },
};

/** Every algorithm a JWT-SVID may carry. */
export const JWT_SVID_ALGORITHMS: readonly JwtSvidAlgorithm[] = Object.keys(SPECS) as JwtSvidAlgorithm[];

/** Smallest RSA modulus accepted for signing or verifying (bits). */
export const MIN_RSA_BITS = 2048;

/** The spec of an allowed algorithm, or undefined for anything else (`none`, HS*, EdDSA ...). */
export function algorithmSpec(alg: unknown): AlgorithmSpec | undefined {
  return typeof alg === 'string' && Object.prototype.hasOwnProperty.call(SPECS, alg) ? SPECS[alg as JwtSvidAlgorithm] : undefined;
}

function curveOf(key: KeyObject): string | undefined {
  const c = key.asymmetricKeyDetails?.namedCurve;
  if (c === 'P-256') return 'prime256v1';
  if (c === 'P-384') return 'secp384r1';
  if (c === 'P-521') return 'secp521r1';
  return c;
}

/** True when `key` (public or private) is the key type and size `spec` requires. */
export function keyFitsAlgorithm(key: KeyObject, spec: AlgorithmSpec): boolean {
  if (spec.family === 'ecdsa') return key.asymmetricKeyType === 'ec' && curveOf(key) === spec.curve;
  // An `rsa-pss` key (restricted OID) is not accepted: JWKs cannot express it and no SPIFFE
  // implementation emits one.
  return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS;
}

/** The default algorithm for a signing key: P-256→ES256, P-384→ES384, P-521→ES512, RSA→RS256. */
export function defaultAlgorithmFor(key: KeyObject): JwtSvidAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ec') {
    const c = curveOf(key);
    if (c === 'prime256v1') return 'ES256';
    if (c === 'secp384r1') return 'ES384';
    if (c === 'secp521r1') return 'ES512';
    return undefined;
  }
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS) return 'RS256';
  return undefined;
}

/** Options for node:crypto sign/verify with `key` under `spec` (built once per key). */
export function cryptoOptions(spec: AlgorithmSpec, key: KeyObject): {
  key: KeyObject;
  dsaEncoding?: 'ieee-p1363';
  padding?: number;
  saltLength?: number;
} {
  switch (spec.family) {
    case 'ecdsa':
      // JWS carries ECDSA signatures as fixed-length R‖S (RFC 7518 §3.4), not DER.
      return { key, dsaEncoding: 'ieee-p1363' };
    case 'rsa-pss':
      // RFC 7518 §3.5: MGF1 with the same hash, salt length equal to the hash length.
      return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST };
    default:
      return { key, padding: constants.RSA_PKCS1_PADDING };
  }
}
