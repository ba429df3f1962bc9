import { describe, expect, it } from 'vitest';
import { checkIssuer, discoveryDocument } from './discovery-document.js';

describe('OIDC discovery document', () => {
  it('points below the issuer and lists each algorithm once', () => {
    const doc = discoveryDocument({ issuer: 'https://oidc.example.org', algorithms: ['RS256', 'ES256', 'ES256'] });
    expect(doc.issuer).toBe('https://oidc.example.org');
    expect(doc.jwks_uri).toBe('https://oidc.example.org/keys');
    expect(doc.id_token_signing_alg_values_supported).toEqual(['ES256', 'RS256']);
    expect(doc.response_types_supported).toEqual(['id_token']);
    expect(doc.subject_types_supported).toEqual(['public']);
  });

  it.each([
    ['oidc.example.org', 'not a URL'],
    ['http://oidc.example.org', 'must use https'],
    ['https://oidc.example.org/', "may not end with '/'"],
    ['https://oidc.example.org?x=1', 'query or fragment'],
    ['https://oidc.example.org#x', 'query or fragment'],
    ['https://u:p@oidc.example.org', 'userinfo'],
  ])('refuses issuer %j', (issuer, why) => {
    expect(() => checkIssuer(issuer)).toThrow(why);
  });

  it('takes http only when allowed (behind a TLS-terminating proxy)', () => {
    expect(checkIssuer('http://127.0.0.1:8080', { allowHttp: true }).port).toBe('8080');
    expect(checkIssuer('https://oidc.example.org/td').pathname).toBe('/td');
  });
});
