/**
 * @module spiffe/jwt/validate
 *
 * JWT-SVID validation (JWT-SVID standard §4 and the SPIFFE wire contract).
 *
 * Threats: forged tokens (signature by a key not in the subject's trust domain bundle,
 * algorithm confusion such as HS256 keyed with the public key, `alg: none`), replay to a
 * different service (audience), and stale tokens (exp/nbf/iat). The signing key is looked
 * up only by `kid` in the bundle of the trust domain named by `sub` — never from header
 * parameters and never across trust domains — and must be the key type the allowed `alg`
 * requires. Synchronous on purpose: the Workload API's ValidateJWTSVID and SDK callers
 * validate on the request path, and one `crypto.verify` is cheaper than jose's async
 * pipeline; jose verifies the same tokens in the tests.
 */
import { verify } from 'node:crypto';
import { Bundle } from '../bundle/bundle.js';
import type { TrustDomain } from '../id.js';
import { cryptoOptions, keyFitsAlgorithm } from './algorithms.js';
import { checkClaimShapes, decodeJwtSvid, jwtFail } from './decode.js';
import type { JwtSvid } from './svid.js';

export interface ValidateJwtSvidConfig {
  /** Expected audience(s): the token must name at least one of them. */
  audience: string | readonly string[];
  /** The bundles to find the signing key in (a single Bundle, a BundleSet, or any map-like). */
  bundles: { get(td: TrustDomain): Bundle | undefined } | Bundle;
  now?: Date;
  /** Clock skew tolerated on exp/nbf/iat (default 60 s). */
  leewaySeconds?: number;
}

export const DEFAULT_LEEWAY_SECONDS = 60;

/** Validates a JWT-SVID and returns it; throws JwtSvidError with a stable code otherwise. */
export function validateJwtSvid(token: string, cfg: ValidateJwtSvidConfig): JwtSvid {
  const expected = typeof cfg.audience === 'string' ? [cfg.audience] : cfg.audience;
  if (!Array.isArray(expected) || expected.length === 0 || !expected.every((a) => typeof a === 'string' && a !== '')) {
    throw new TypeError('validateJwtSvid needs at least one non-empty expected audience');
  }
  const leeway = cfg.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS;
  if (!Number.isFinite(leeway) || leeway < 0) throw new TypeError('leewaySeconds must be a non-negative number');

  const d = decodeJwtSvid(token);
  const td = d.spiffeId.trustDomain;
  const bundle = cfg.bundles instanceof Bundle ? (cfg.bundles.trustDomain.equals(td) ? cfg.bundles : undefined) : cfg.bundles.get(td);
  if (bundle === undefined) jwtFail('ERR_JWT_NO_BUNDLE', `no bundle for trust domain ${td.name} (the token's subject is ${d.spiffeId.toString()})`);
  const key = bundle.jwtAuthorities.get(d.kid);
  if (key === undefined) jwtFail('ERR_JWT_KID_UNKNOWN', `key ID ${JSON.stringify(d.kid)} is not in the bundle of ${td.name}; the bundle may be stale or the token forged`);
  if (!keyFitsAlgorithm(key, d.spec)) jwtFail('ERR_JWT_ALG_NOT_ALLOWED', `alg ${d.spec.alg} does not fit the ${key.asymmetricKeyType ?? 'unknown'} key ${JSON.stringify(d.kid)}`);
  if (d.spec.signatureLength !== undefined && d.signature.length !== d.spec.signatureLength) {
    jwtFail('ERR_JWT_SIGNATURE', `an ${d.spec.alg} signature is ${d.spec.signatureLength} bytes, not ${d.signature.length}`);
  }
  let ok = false;
  try {
    ok = verify(d.spec.hash, Buffer.from(d.signingInput, 'latin1'), cryptoOptions(d.spec, key), d.signature);
  } catch (cause) {
    jwtFail('ERR_JWT_SIGNATURE', 'signature could not be verified', cause);
  }
  if (!ok) jwtFail('ERR_JWT_SIGNATURE', `signature does not verify with key ${JSON.stringify(d.kid)} of ${td.name}`);

  const { audience, exp } = checkClaimShapes(d.claims);
  const now = (cfg.now ?? new Date()).getTime() / 1000;
  if (now > exp + leeway) jwtFail('ERR_JWT_EXPIRED', `token expired at ${new Date(exp * 1000).toISOString()}`);
  const nbf = d.claims.nbf as number | undefined;
  if (nbf !== undefined && nbf > now + leeway) jwtFail('ERR_JWT_NOT_YET_VALID', `token is not valid before ${new Date(nbf * 1000).toISOString()}`);
  const iat = d.claims.iat as number | undefined;
  if (iat !== undefined && iat > now + leeway) jwtFail('ERR_JWT_NOT_YET_VALID', `token was issued in the future (${new Date(iat * 1000).toISOString()}); check clocks`);
  if (!audience.some((a) => expected.includes(a))) {
    jwtFail('ERR_JWT_AUDIENCE', `audience ${JSON.stringify(audience)} does not include any of ${JSON.stringify(expected)}`);
  }
  return { token, spiffeId: d.spiffeId, audience, expiry: new Date(exp * 1000), claims: d.claims, header: d.header };
}
