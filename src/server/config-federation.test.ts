import { describe, expect, it } from 'vitest';
import { parseHcl } from '../config/hcl.js';
import { resolveServerConfig, type ServerSettings } from './config.js';

const load = (text: string): ServerSettings => resolveServerConfig(parseHcl(text), { dataDir: '/nonexistent/mayfly-config-federation' });
const problems = (text: string): string => {
  try {
    load(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('accepted');
};

describe('server.federation.bundle_endpoint', () => {
  it('reads SPIRE\'s spelling: https_web with serving_cert_file', () => {
    const s = load(`server {
      trust_domain = "mayfly.test"
      federation {
        bundle_endpoint {
          address = "127.0.0.1"
          port = 8443
          refresh_hint = "2m"
          profile "https_web" {
            serving_cert_file {
              cert_file_path = "/etc/mayfly/be.crt"
              key_file_path = "/etc/mayfly/be.key"
              file_sync_interval = "30s"
            }
          }
        }
        federates_with "other.test" {
          bundle_endpoint_url = "https://x"
          bundle_endpoint_profile "https_web" {}
        }
      }
    }`);
    expect(s.bundleEndpoint).toEqual({
      address: '127.0.0.1',
      port: 8443,
      refreshHintSeconds: 120,
      profile: { name: 'https_web', servingCert: { certFile: '/etc/mayfly/be.crt', keyFile: '/etc/mayfly/be.key', syncIntervalSeconds: 30 } },
    });
    // The same block's relationships, read by server/config-federates-with.
    expect(s.federatesWith?.map((r) => r.trustDomain)).toEqual(['other.test']);
  });

  it('defaults to https_spiffe on 0.0.0.0:443; the SVID\'s ID is configurable within the trust domain', () => {
    expect(load('server { federation { bundle_endpoint {} } }').bundleEndpoint).toEqual({ address: '0.0.0.0', port: 443, profile: { name: 'https_spiffe' } });
    const s = load('server { trust_domain = "mayfly.test" federation { bundle_endpoint { profile "https_spiffe" { spiffe_id = "spiffe://mayfly.test/be" } } } }');
    expect(s.bundleEndpoint?.profile).toEqual({ name: 'https_spiffe', spiffeId: 'spiffe://mayfly.test/be' });
    expect(problems('server { trust_domain = "mayfly.test" federation { bundle_endpoint { profile "https_spiffe" { spiffe_id = "spiffe://other.test/be" } } } }')).toContain('must be in this trust domain');
  });

  it('refuses ACME, saying Mayfly does not speak it, wherever SPIRE puts it', () => {
    expect(problems('server { federation { bundle_endpoint { profile "https_web" { acme { domain_name = "x" } } } } }')).toContain('does not obtain certificates with ACME');
    expect(problems('server { federation { bundle_endpoint { acme { domain_name = "x" } } } }')).toContain('does not obtain certificates with ACME');
  });

  it('refuses an unknown profile, two profiles, and https_web without files', () => {
    expect(problems('server { federation { bundle_endpoint { profile "https_acme" {} } } }')).toContain('unknown key server.federation.bundle_endpoint.profile.https_acme');
    expect(problems('server { federation { bundle_endpoint { profile "https_web" {} } } }')).toContain('needs serving_cert_file');
    expect(problems('server { federation { bundle_endpoint { profile "https_web" { serving_cert_file { cert_file_path = "a" } } } } }')).toContain('key_file_path is required');
  });

  it('a refresh hint under SPIRE\'s minimum is kept, with a notice', () => {
    const s = load('server { federation { bundle_endpoint { refresh_hint = "1s" } } }');
    expect(s.bundleEndpoint?.refreshHintSeconds).toBe(1);
    expect(s.notices.join('\n')).toContain('counts as 60s');
  });
});

describe('server.jwt_issuer and server.oidc_discovery', () => {
  it('jwt_issuer alone sets the iss of JWT-SVIDs', () => {
    expect(load('server { jwt_issuer = "https://oidc.mayfly.test" }').jwtIssuer).toBe('https://oidc.mayfly.test');
    expect(load('server {}').jwtIssuer).toBeUndefined();
    expect(problems('server { jwt_issuer = "https://oidc.mayfly.test/" }')).toContain("may not end with '/'");
  });

  it('the issuer comes from jwt_issuer, and jwt_issuer from the issuer', () => {
    const a = load('server { jwt_issuer = "https://oidc.mayfly.test" oidc_discovery { insecure_http = true } }');
    expect(a.oidcDiscovery).toEqual({ address: '127.0.0.1', port: 8444, issuer: 'https://oidc.mayfly.test' });
    const b = load('server { oidc_discovery { port = 9000 issuer = "http://127.0.0.1:9000" insecure_http = true } }');
    expect(b.jwtIssuer).toBe('http://127.0.0.1:9000');
  });

  it('refuses a mismatch, a missing issuer, http without insecure_http, and both or neither of TLS and insecure_http', () => {
    expect(problems('server { jwt_issuer = "https://a.test" oidc_discovery { issuer = "https://b.test" insecure_http = true } }')).toContain('differ');
    expect(problems('server { oidc_discovery { insecure_http = true } }')).toContain('needs an issuer');
    expect(problems('server { oidc_discovery { issuer = "http://a.test" serving_cert_file { cert_file_path = "c" key_file_path = "k" } } }')).toContain('must use https');
    expect(problems('server { oidc_discovery { issuer = "https://a.test" } }')).toContain('or insecure_http = true');
    expect(problems('server { oidc_discovery { issuer = "https://a.test" insecure_http = true serving_cert_file { cert_file_path = "c" key_file_path = "k" } } }')).toContain('not both');
  });
});
