/**
 * @module spiffe/bundle
 *
 * SPIFFE trust bundles: the Bundle of one trust domain, sets of bundles, and the bundle
 * document (JWKS), Workload API (DER, JWKS) and PEM encodings.
 */
export { Bundle, type BundleConfig } from './bundle.js';
export { BundleSet } from './set.js';
export { parseBundle, parseJwtBundleJwks, MAX_BUNDLE_BYTES, MAX_BUNDLE_KEYS, type ParseBundleOptions } from './parse.js';
export { bundleFromX509Der, bundleFromX509Pem } from './x509.js';
export type { SpiffeJwk, SpiffeJwks } from './jwk.js';
