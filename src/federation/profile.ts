/**
 * @module federation/profile
 *
 * How one trust domain's bundle endpoint is reached and authenticated (SPIFFE Trust Domain
 * and Bundle, section 5.2): `https_web` (Web PKI: the system's roots, the URL's host name) or
 * `https_spiffe` (the endpoint presents an X509-SVID of `endpointSpiffeId`, verified against
 * the bundle already stored for that ID's trust domain).
 *
 * Threat: a bundle endpoint URL that sends the fetcher somewhere other than the operator
 * meant (plain http, userinfo that hides the real host, a fragment or query that a proxy
 * reads differently). Only `https://host[:port]/path` is accepted.
 */
import { SpiffeId } from '../spiffe/id.js';
import { FederationError } from './federation-error.js';

export type BundleEndpointProfileName = 'https_web' | 'https_spiffe';

export type BundleEndpointProfile =
  | { readonly name: 'https_web' }
  | { readonly name: 'https_spiffe'; readonly endpointSpiffeId: SpiffeId };

export const BUNDLE_ENDPOINT_PROFILES: readonly BundleEndpointProfileName[] = ['https_web', 'https_spiffe'];

export function isBundleEndpointProfileName(s: string): s is BundleEndpointProfileName {
  return (BUNDLE_ENDPOINT_PROFILES as readonly string[]).includes(s);
}

/** The longest bundle endpoint URL accepted (bytes). */
export const MAX_BUNDLE_ENDPOINT_URL_LENGTH = 2048;

/** Parses a bundle endpoint URL: `https`, a host, no userinfo, query or fragment. */
export function parseBundleEndpointUrl(input: string): URL {
  if (typeof input !== 'string') throw new TypeError('bundle endpoint URL must be a string');
  const bad = (why: string): never => {
    const shown = input.length > 80 ? `${input.slice(0, 77)}...` : input;
    throw new FederationError('ERR_FEDERATION_INVALID', `invalid bundle endpoint URL ${JSON.stringify(shown)}: ${why}`);
  };
  if (input.length === 0) bad('it is empty');
  if (input.length > MAX_BUNDLE_ENDPOINT_URL_LENGTH) bad(`it is longer than ${MAX_BUNDLE_ENDPOINT_URL_LENGTH} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(input)) bad('it holds whitespace or control characters');
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return bad('it does not parse as a URL');
  }
  if (url.protocol !== 'https:') bad(`scheme must be https (got ${url.protocol.replace(/:$/, '')})`);
  if (url.hostname === '') bad('it has no host');
  if (url.username !== '' || url.password !== '') bad('userinfo is not allowed');
  if (url.search !== '' || input.includes('?')) bad('a query is not allowed');
  if (url.hash !== '' || input.includes('#')) bad('a fragment is not allowed');
  return url;
}

/** Builds a profile from its name and (for `https_spiffe`) the endpoint's SPIFFE ID. */
export function bundleEndpointProfile(name: string, endpointSpiffeId?: string): BundleEndpointProfile {
  if (!isBundleEndpointProfileName(name)) {
    throw new FederationError('ERR_FEDERATION_INVALID', `unknown bundle endpoint profile ${JSON.stringify(name)}: use ${BUNDLE_ENDPOINT_PROFILES.join(' or ')}`);
  }
  if (name === 'https_web') {
    if (endpointSpiffeId !== undefined && endpointSpiffeId !== '') {
      throw new FederationError('ERR_FEDERATION_INVALID', 'an endpoint SPIFFE ID is only for the https_spiffe profile');
    }
    return { name };
  }
  if (endpointSpiffeId === undefined || endpointSpiffeId === '') {
    throw new FederationError('ERR_FEDERATION_INVALID', 'the https_spiffe profile needs the endpoint SPIFFE ID the bundle endpoint presents');
  }
  try {
    return { name, endpointSpiffeId: SpiffeId.parse(endpointSpiffeId) };
  } catch (err) {
    throw new FederationError('ERR_FEDERATION_INVALID', `endpoint SPIFFE ID: ${(err as Error).message}`);
  }
}
