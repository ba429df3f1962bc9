/**
 * @module spiffe/jwt
 *
 * JWT-SVIDs: minting (JwtSvidSigner), validation against trust bundles, insecure parsing,
 * and the audience limits every room shares.
 */
export { JWT_SVID_ALGORITHMS, type JwtSvidAlgorithm } from './algorithms.js';
export { MAX_JWT_SVID_LENGTH } from './decode.js';
export { audienceLimitProblem, MAX_JWT_SVID_AUDIENCE_LENGTH, MAX_JWT_SVID_AUDIENCES } from './limits.js';
export { JwtSvidSigner, type JwtSvidSignerConfig, type MintRequest } from './signer.js';
export { parseJwtSvidInsecure, type JwtSvid } from './svid.js';
export { validateJwtSvid, DEFAULT_LEEWAY_SECONDS, type ValidateJwtSvidConfig } from './validate.js';
