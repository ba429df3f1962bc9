import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OidcRoutes, oidcJwks } from './discovery-routes.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

describe('OIDC JWKS', () => {
  it('publishes each JWT key\'s public half with kty, crv/x/y or n/e, use sig, kid and alg, sorted by kid', () => {
    const jwks = oidcJwks(new Map([['b-rsa', rsa.privateKey], ['a-ec', ec.publicKey], ['c-ec384', ec384.publicKey]]));
    expect(jwks.keys.map((k) => [k.kid, k.kty, k.alg, k.use])).toEqual([
      ['a-ec', 'EC', 'ES256', 'sig'],
      ['b-rsa', 'RSA', 'RS256', 'sig'],
      ['c-ec384', 'EC', 'ES384', 'sig'],
    ]);
    const [a, b] = jwks.keys;
    expect(Object.keys(a ?? {}).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(Object.keys(b ?? {}).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']); // no private d/p/q from the private key given
  });
});

describe('OIDC routes', () => {
  it('serves the document and JWKS below the issuer\'s path only, rebuilt when the key set changes', () => {
    let keys = new Map([['k1', ec.publicKey]]);
    const routes = new OidcRoutes({ issuer: 'https://oidc.example.org/td', keys: { jwtAuthorities: () => keys }, maxAgeSeconds: 30 });
    expect(routes.paths).toEqual(['/td/.well-known/openid-configuration', '/td/keys']);
    const doc = routes.route('/td/.well-known/openid-configuration');
    expect(JSON.parse(doc?.body.toString() ?? '{}')).toMatchObject({ issuer: 'https://oidc.example.org/td', jwks_uri: 'https://oidc.example.org/td/keys', id_token_signing_alg_values_supported: ['ES256'] });
    expect(doc?.headers['cache-control']).toBe('public, max-age=30');
    expect(routes.route('/.well-known/openid-configuration')).toBeUndefined();
    expect(routes.route('/td/keys?x=1')).toBeUndefined();
    const first = routes.route('/td/keys');
    expect(routes.route('/td/keys')).toBe(first); // same key set: the same bytes, not rebuilt
    keys = new Map([['k1', ec.publicKey], ['k2', rsa.publicKey]]);
    const next = routes.route('/td/keys');
    expect(JSON.parse(next?.body.toString() ?? '{}').keys.map((k: { kid: string }) => k.kid)).toEqual(['k1', 'k2']);
    expect(JSON.parse(routes.route('/td/.well-known/openid-configuration')?.body.toString() ?? '{}').id_token_signing_alg_values_supported).toEqual(['ES256', 'RS256']);
  });
});
