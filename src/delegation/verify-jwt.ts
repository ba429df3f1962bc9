/**
 * @module delegation/verify-jwt
 *
 * Synchronous verification of the JWTs the token exchange takes as `subject_token`: a user
 * token from the pinned upstream issuer (keys from its JWKS, imported once per JWKS
 * document, not per request) or one of our own delegated tokens (keys from our bundle). One
 * `crypto.verify` on the request path instead of jose's WebCrypto pipeline, which cost the
 * exchange about four fifths of its time (bench/delegation).
 *
 * Threats: algorithm confusion (`alg: none`, HS256 keyed with a public key, an EC signature
 * fed to an RSA key): the algorithm must be one the caller pinned AND fit the key's type and
 * curve (spiffe/jwt/algorithms); a JWK that names another `alg` or a non-signing `use` is
 * never a candidate. Key material in the header (`jwk`, `jku`, `x5c`) is ignored; `crit`
 * is refused (we implement no extensions). Lenient base64 and non-object JSON are refused,
 * so one token has one spelling. Expired, not-yet-valid, foreign-issuer and
 * foreign-audience tokens are refused with the clock injected.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { JSONWebKeySet, JWTPayload } from 'jose';
import { algorithmSpec, cryptoOptions, keyFitsAlgorithm, type AlgorithmSpec } from '../spiffe/jwt/algorithms.js';

/** Why a token was refused (the caller maps it to `invalid_grant`). */
export class JwtRefusal extends Error {}

const B64URL = /^[A-Za-z0-9_-]*$/;

function part(s: string, what: string): Buffer {
  if (!B64URL.test(s) || s.length % 4 === 1) throw new JwtRefusal(`the ${what} is not base64url`);
  const b = Buffer.from(s, 'base64url');
  if (b.toString('base64url') !== s) throw new JwtRefusal(`the ${what} is not canonical base64url`);
  return b;
}

function object(s: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(part(s, what).toString('utf8'));
  } catch (err) {
    if (err instanceof JwtRefusal) throw err;
    throw new JwtRefusal(`the ${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JwtRefusal(`the ${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

export interface DecodedJwt {
  readonly header: Record<string, unknown>;
  readonly claims: JWTPayload;
  readonly signingInput: string;
  readonly signature: Buffer;
}

/** Splits and decodes a compact JWS (no signature check). */
export function decodeCompactJwt(token: string): DecodedJwt {
  const a = token.indexOf('.');
  const b = a === -1 ? -1 : token.indexOf('.', a + 1);
  if (a === -1 || b === -1 || token.indexOf('.', b + 1) !== -1) throw new JwtRefusal('a JWT is a compact JWS of three dot-separated parts');
  return { header: object(token.slice(0, a), 'header'), claims: object(token.slice(a + 1, b), 'payload') as JWTPayload, signingInput: token.slice(0, b), signature: part(token.slice(b + 1), 'signature') };
}

/** A verification key, as a JWK would pin it. */
export interface VerificationKey {
  readonly kid: string | undefined;
  /** The JWK's `alg`, when it names one: the only algorithm it serves. */
  readonly alg: string | undefined;
  readonly key: KeyObject;
}

/** Imports a JWKS's signing keys once; keys that are not public signing keys are skipped. */
export function importJwks(jwks: JSONWebKeySet): VerificationKey[] {
  const out: VerificationKey[] = [];
  for (const jwk of jwks.keys) {
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (jwk.d !== undefined || jwk.kty === 'oct') continue; // never a secret or private key as a verifier
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch {
      continue;
    }
    out.push({ kid: jwk.kid, alg: jwk.alg, key });
  }
  return out;
}

export interface VerifyJwtOptions {
  readonly issuer: string;
  readonly audience: string;
  /** Pinned algorithms (asymmetric only). */
  readonly algorithms: readonly string[];
  readonly now: Date;
  readonly clockToleranceSeconds: number;
}

interface Spec {
  readonly alg: string;
  readonly hash: string | null;
  readonly fits: (k: KeyObject) => boolean;
  readonly options: (k: KeyObject) => Parameters<typeof verify>[2];
}

function specOf(alg: string): Spec | undefined {
  if (alg === 'EdDSA' || alg === 'Ed25519') {
    return { alg, hash: null, fits: (k) => k.asymmetricKeyType === 'ed25519', options: (k) => k };
  }
  const s: AlgorithmSpec | undefined = algorithmSpec(alg);
  return s === undefined ? undefined : { alg, hash: s.hash, fits: (k) => keyFitsAlgorithm(k, s), options: (k) => cryptoOptions(s, k) };
}

/**
 * Verifies signature and registered claims; returns the claims. `keys` is every key the
 * issuer signs with (the JWKS, or our bundle's JWT authorities); `token` may come decoded
 * already. Throws JwtRefusal.
 */
export function verifyJwt(token: string | DecodedJwt, keys: readonly VerificationKey[], o: VerifyJwtOptions): JWTPayload {
  const d = typeof token === 'string' ? decodeCompactJwt(token) : token;
  const alg = d.header.alg;
  if (typeof alg !== 'string' || !o.algorithms.includes(alg)) throw new JwtRefusal(`alg ${JSON.stringify(alg)} is not one of the pinned algorithms (${o.algorithms.join(', ')})`);
  const spec = specOf(alg);
  if (spec === undefined) throw new JwtRefusal(`alg ${alg} is not an asymmetric JWS algorithm`);
  if (d.header.crit !== undefined) throw new JwtRefusal('the header lists critical extensions ("crit"), none of which are supported');
  const kid = d.header.kid;
  if (kid !== undefined && typeof kid !== 'string') throw new JwtRefusal('"kid" must be a string');
  const candidates = keys.filter((k) => (kid === undefined || k.kid === kid) && (k.alg === undefined || k.alg === alg) && spec.fits(k.key));
  if (candidates.length === 0) throw new JwtRefusal(`no key of the issuer has kid ${JSON.stringify(kid)} for ${alg}`);
  const input = Buffer.from(d.signingInput, 'latin1');
  const ok = candidates.slice(0, 4).some((k) => {
    try {
      return verify(spec.hash, input, spec.options(k.key), d.signature);
    } catch {
      return false;
    }
  });
  if (!ok) throw new JwtRefusal('the signature does not verify');
  const c = d.claims;
  if (c.iss !== o.issuer) throw new JwtRefusal(`iss ${JSON.stringify(c.iss)} is not ${JSON.stringify(o.issuer)}`);
  const aud = typeof c.aud === 'string' ? [c.aud] : Array.isArray(c.aud) ? c.aud : [];
  if (!aud.includes(o.audience)) throw new JwtRefusal(`aud does not name ${JSON.stringify(o.audience)}`);
  if (typeof c.sub !== 'string' || c.sub === '') throw new JwtRefusal('the "sub" claim is missing');
  const now = Math.floor(o.now.getTime() / 1000);
  const tol = o.clockToleranceSeconds;
  if (typeof c.exp !== 'number' || !Number.isFinite(c.exp)) throw new JwtRefusal('the "exp" claim is missing or not a number');
  if (c.exp <= now - tol) throw new JwtRefusal('the token has expired ("exp")');
  if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf > now + tol)) throw new JwtRefusal('the token is not yet valid ("nbf")');
  if (c.iat !== undefined && (typeof c.iat !== 'number' || !Number.isFinite(c.iat))) throw new JwtRefusal('"iat" is not a number');
  return c;
}
