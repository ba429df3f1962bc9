import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { bundleEndpointProfile, parseBundleEndpointUrl } from './profile.js';

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isMayflyError(err, 'ERR_FEDERATION_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('bundle endpoint URL', () => {
  it('accepts https with host, port and path', () => {
    expect(parseBundleEndpointUrl('https://example.org:8443/bundle').href).toBe('https://example.org:8443/bundle');
    expect(parseBundleEndpointUrl('https://127.0.0.1:8443').host).toBe('127.0.0.1:8443');
  });

  it.each([
    ['', 'empty'],
    ['http://example.org/', 'scheme must be https'],
    ['https://user:pw@example.org/', 'userinfo'],
    ['https://example.org/?a=b', 'query'],
    ['https://example.org/#x', 'fragment'],
    ['https://exa mple.org/', 'whitespace'],
    ['not a url', 'whitespace'],
    ['notaurl', 'does not parse'],
    [`https://example.org/${'a'.repeat(2100)}`, 'longer than'],
  ])('refuses %j naming the problem', (url, why) => {
    expect(refused(() => parseBundleEndpointUrl(url))).toContain(why);
  });
});

describe('bundle endpoint profile', () => {
  it('https_web takes no SPIFFE ID; https_spiffe needs one', () => {
    expect(bundleEndpointProfile('https_web')).toEqual({ name: 'https_web' });
    const p = bundleEndpointProfile('https_spiffe', 'spiffe://partner.org/spire/server');
    expect(p.name === 'https_spiffe' && p.endpointSpiffeId.toString()).toBe('spiffe://partner.org/spire/server');
    expect(refused(() => bundleEndpointProfile('https_spiffe'))).toContain('needs the endpoint SPIFFE ID');
    expect(refused(() => bundleEndpointProfile('https_web', 'spiffe://a.org/x'))).toContain('only for the https_spiffe');
    expect(refused(() => bundleEndpointProfile('https_spiffe', 'spiffe://A.org/x'))).toContain('endpoint SPIFFE ID');
    expect(refused(() => bundleEndpointProfile('acme'))).toContain('unknown bundle endpoint profile');
  });
});
