/**
 * @module oidc/discovery-document
 *
 * The OpenID Provider metadata (OpenID Connect Discovery 1.0, section 3) a relying party
 * reads from `<issuer>/.well-known/openid-configuration` to find the keys that verify
 * JWT-SVIDs. Mayfly issues no tokens through OAuth flows, so the document names only what a
 * verifier needs: the issuer, the JWKS, and the signing algorithms its keys use.
 *
 * Threat: a discovery document whose `issuer` differs from the URL it was fetched under, which
 * a careful client refuses (section 4.3) and a careless one lets an attacker's issuer pass.
 * The issuer is checked here once: https (or http only when the operator says the listener
 * sits behind a TLS-terminating proxy), no query, no fragment, no trailing slash.
 */
export interface DiscoveryDocumentInput {
  /** The issuer URL; JWT-SVIDs carry it as `iss`. */
  readonly issuer: string;
  /** Signing algorithms of the JWT authorities (e.g. `ES256`, `RS256`). */
  readonly algorithms: readonly string[];
}

export interface DiscoveryDocument {
  readonly issuer: string;
  readonly jwks_uri: string;
  /** OIDC Discovery requires it; there is no authorization endpoint, so a URN says so. */
  readonly authorization_endpoint: string;
  readonly response_types_supported: readonly string[];
  readonly subject_types_supported: readonly string[];
  readonly id_token_signing_alg_values_supported: readonly string[];
}

/** Where the JWKS is served, below the issuer. */
export const JWKS_PATH = '/keys';
export const DISCOVERY_PATH = '/.well-known/openid-configuration';

/** Checks an issuer URL (TypeError: it is configuration, checked before use). */
export function checkIssuer(issuer: string, opts: { allowHttp?: boolean } = {}): URL {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new TypeError(`OIDC issuer ${JSON.stringify(issuer)} is not a URL`);
  }
  if (url.protocol !== 'https:' && !(opts.allowHttp === true && url.protocol === 'http:')) {
    throw new TypeError(`OIDC issuer ${JSON.stringify(issuer)} must use https${opts.allowHttp === true ? ' or http' : ''}`);
  }
  if (url.search !== '' || url.hash !== '' || issuer.includes('?') || issuer.includes('#')) throw new TypeError(`OIDC issuer ${JSON.stringify(issuer)} may not have a query or fragment`);
  if (url.username !== '' || url.password !== '') throw new TypeError(`OIDC issuer ${JSON.stringify(issuer)} may not hold userinfo`);
  if (issuer.endsWith('/')) throw new TypeError(`OIDC issuer ${JSON.stringify(issuer)} may not end with '/': JWT-SVIDs carry it as iss, compared byte for byte`);
  return url;
}

/** The discovery document for `issuer` (which `checkIssuer` must have accepted). */
export function discoveryDocument(input: DiscoveryDocumentInput): DiscoveryDocument {
  return {
    issuer: input.issuer,
    jwks_uri: `${input.issuer}${JWKS_PATH}`,
    authorization_endpoint: 'urn:spiffe:no-authorization-endpoint',
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [...new Set(input.algorithms)].sort(),
  };
}
