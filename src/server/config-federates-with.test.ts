import { describe, expect, it } from 'vitest';
import { parseHcl } from '../config/hcl.js';
import { resolveServerConfig } from './config.js';

const conf = (federation: string): string => `server {\n  trust_domain = "example.org"\n  federation {\n${federation}\n  }\n}\n`;
const settings = (text: string) => resolveServerConfig(parseHcl(text), { dataDir: '/nonexistent/mayfly-fed-conf' });
function problems(text: string): string {
  try {
    settings(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('server.federation.federates_with', () => {
  it('reads SPIRE spellings of both profiles', () => {
    const s = settings(
      conf(`
    federates_with "partner.org" {
      bundle_endpoint_url = "https://partner.org:8443"
      bundle_endpoint_profile "https_spiffe" {
        endpoint_spiffe_id = "spiffe://partner.org/spire/server"
      }
    }
    federates_with "web.org" {
      bundle_endpoint_url = "https://web.org/bundle"
      bundle_endpoint_profile "https_web" {}
    }`),
    );
    expect(s.federatesWith).toEqual([
      { trustDomain: 'partner.org', bundleEndpointUrl: 'https://partner.org:8443', bundleEndpointProfile: 'https_spiffe', endpointSpiffeId: 'spiffe://partner.org/spire/server' },
      { trustDomain: 'web.org', bundleEndpointUrl: 'https://web.org/bundle', bundleEndpointProfile: 'https_web', endpointSpiffeId: '' },
    ]);
    expect(settings(conf('')).federatesWith).toBeUndefined();
  });

  it.each([
    ['our own trust domain', `federates_with "example.org" {\n bundle_endpoint_url = "https://example.org/"\n bundle_endpoint_profile "https_web" {}\n}`, "example.org is the server's own trust domain"],
    ['an http URL', `federates_with "p.org" {\n bundle_endpoint_url = "http://p.org/"\n bundle_endpoint_profile "https_web" {}\n}`, 'scheme must be https'],
    ['no URL', `federates_with "p.org" {\n bundle_endpoint_profile "https_web" {}\n}`, 'bundle_endpoint_url is required'],
    ['no profile', `federates_with "p.org" {\n bundle_endpoint_url = "https://p.org/"\n}`, 'bundle_endpoint_profile is required'],
    ['an unknown profile', `federates_with "p.org" {\n bundle_endpoint_url = "https://p.org/"\n bundle_endpoint_profile "acme" {}\n}`, 'unknown key server.federation.federates_with.p.org.bundle_endpoint_profile.acme'],
    ['https_spiffe without endpoint ID', `federates_with "p.org" {\n bundle_endpoint_url = "https://p.org/"\n bundle_endpoint_profile "https_spiffe" {}\n}`, 'needs the endpoint SPIFFE ID'],
    ['a bad trust domain', `federates_with "P.org" {\n bundle_endpoint_url = "https://p.org/"\n bundle_endpoint_profile "https_web" {}\n}`, 'is not a trust domain name'],
    ['a SPIRE 1.0 bundle_endpoint block', `federates_with "p.org" {\n bundle_endpoint { address = "1.2.3.4" }\n}`, 'unknown key server.federation.federates_with.p.org.bundle_endpoint'],
  ])('refuses %s', (_why, body, message) => {
    expect(problems(conf(body))).toContain(message);
  });
});
