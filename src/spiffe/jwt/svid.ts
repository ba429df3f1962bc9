/**
 * @module spiffe/jwt/svid
 *
 * The JWT-SVID value returned by parsing and validation, and the insecure parser for
 * clients that only inspect a token they got from the Workload API.
 */
import type { SpiffeId } from '../id.js';
import { checkClaimShapes, decodeJwtSvid } from './decode.js';

export interface JwtSvid {
  token: string;
  spiffeId: SpiffeId;
  audience: string[];
  expiry: Date;
  claims: Record<string, unknown>;
  header: Record<string, unknown>;
}

/**
 * Parses a JWT-SVID WITHOUT checking its signature, audience or times: only for tokens
 * from a trusted source (the Workload API) that the caller wants to read. Header and claim
 * shapes are checked as in validation.
 */
export function parseJwtSvidInsecure(token: string): JwtSvid {
  const d = decodeJwtSvid(token);
  const { audience, exp } = checkClaimShapes(d.claims);
  return { token, spiffeId: d.spiffeId, audience, expiry: new Date(exp * 1000), claims: d.claims, header: d.header };
}
