/**
 * @module spiffe/jwt
 *
 * JWT-SVIDs: minting (JwtSvidSigner), validation against trust bundles, insecure parsing.
 */
export { JWT_SVID_ALGORITHMS, type JwtSvidAlgorithm } from './algorithms.js';
export { MAX_JWT_SVID_LENGTH } from './decode.js';
export { JwtSvidSigner, type JwtSvidSignerConfig, type MintRequest } from './signer.js';
export { parseJwtSvidInsecure, type JwtSvid } from './svid.js';
export { validateJwtSvid, DEFAULT_LEEWAY_SECONDS, type ValidateJwtSvidConfig } from './validate.js';
