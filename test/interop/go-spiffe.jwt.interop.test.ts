/**
 * go-spiffe v2 judges Mayfly's JWT-SVIDs and bundles: `jwtsvid.ParseAndValidate` accepts
 * our tokens for every algorithm family against our bundle document, and refuses them for
 * the wrong audience, an unknown key, another trust domain, expiry or a broken signature;
 * `spiffebundle.Parse` and `jwtbundle.Parse` read our bundle JSON and Workload API JWKS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustDomain, SpiffeId } from '../../src/spiffe/id.js';
import { generateKeyPair, type KeyType } from '../../src/spiffe/keys.js';
import { JwtSvidSigner, type JwtSvidAlgorithm } from '../../src/spiffe/jwt/index.js';
import { Bundle } from '../../src/spiffe/bundle/index.js';
import { GoSpiffeJudge, type BundleVerdict, type JwtBundleVerdict, type JwtVerdict } from './go-spiffe/judge.js';

const td = TrustDomain.parse('example.org');
const workload = SpiffeId.parse('spiffe://example.org/ns/prod/sa/web');
const AUDIENCE = ['spiffe://example.org/db', 'billing'];

const ALGORITHMS: readonly [JwtSvidAlgorithm, KeyType][] = [
  ['ES256', 'ec-p256'],
  ['ES384', 'ec-p384'],
  ['RS256', 'rsa-2048'],
  ['PS256', 'rsa-2048'],
];

const authorities = ALGORITHMS.map(([alg, type]) => ({ alg, kid: `kid-${alg.toLowerCase()}`, pair: generateKeyPair(type) }));
const signers = new Map(authorities.map((a) => [a.alg, new JwtSvidSigner({ privateKey: a.pair.privateKey, kid: a.kid, algorithm: a.alg })]));
const KIDS = authorities.map((a) => a.kid);
const bundle = new Bundle({
  trustDomain: td,
  jwtAuthorities: authorities.map((a): [string, typeof a.pair.publicKey] => [a.kid, a.pair.publicKey]),
  sequence: 42,
  refreshHintSeconds: 300,
});

function signer(alg: JwtSvidAlgorithm): JwtSvidSigner {
  const s = signers.get(alg);
  if (!s) throw new Error(`no signer for ${alg}`);
  return s;
}

let judge: GoSpiffeJudge;
beforeAll(async () => {
  judge = await GoSpiffeJudge.start();
});
afterAll(async () => {
  await judge?.close();
});

function validate(token: string, audience: string[], bundleJson = bundle.toJson()): Promise<JwtVerdict> {
  return judge.ask<JwtVerdict>({ op: 'jwt', token, audience, trustDomain: td.name, bundle: bundleJson });
}

describe('jwtsvid.ParseAndValidate accepts Mayfly JWT-SVIDs', () => {
  it.each(ALGORITHMS.map(([alg]) => alg))('%s', async (alg) => {
    const now = new Date();
    const token = signer(alg).mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 300, now });
    const verdict = await validate(token, ['billing']);
    const exp = new Date((Math.floor(now.getTime() / 1000) + 300) * 1000).toISOString().replace('.000Z', 'Z');
    expect(verdict).toEqual({ ok: true, spiffeId: workload.toString(), audience: AUDIENCE, expiry: exp });
  });

  it('with a single audience and extra claims', async () => {
    const token = signer('ES256').mint({ spiffeId: workload, audience: ['one'], ttlSeconds: 60, extraClaims: { iss: 'https://mayfly.example' } });
    expect(await validate(token, ['one'])).toMatchObject({ ok: true, spiffeId: workload.toString(), audience: ['one'] });
  });

  it('against the Workload API JWKS used as the bundle', async () => {
    const token = signer('RS256').mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 60 });
    const verdict = await validate(token, AUDIENCE, bundle.jwksForWorkloadApi().toString('utf8'));
    expect(verdict).toMatchObject({ ok: true, spiffeId: workload.toString() });
  });
});

describe('jwtsvid.ParseAndValidate refuses', () => {
  it('a token for another audience', async () => {
    const token = signer('ES256').mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 60 });
    const verdict = await validate(token, ['somebody-else']);
    expect(verdict).toMatchObject({ ok: false, stage: 'validate', error: expect.stringMatching(/audience/) });
  });

  it('a token whose key is not in the bundle', async () => {
    const stranger = new JwtSvidSigner({ privateKey: generateKeyPair('ec-p256').privateKey, kid: 'not-published' });
    const token = stranger.mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 60 });
    expect(await validate(token, AUDIENCE)).toMatchObject({ ok: false, stage: 'validate', error: expect.stringMatching(/not-published/) });
  });

  it('a token signed with a published kid but another key', async () => {
    const impostor = new JwtSvidSigner({ privateKey: generateKeyPair('ec-p256').privateKey, kid: 'kid-es256' });
    const token = impostor.mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 60 });
    expect(await validate(token, AUDIENCE)).toMatchObject({ ok: false, stage: 'validate' });
  });

  it('a token for another trust domain (no bundle for it)', async () => {
    const other = SpiffeId.parse('spiffe://other.org/ns/prod/sa/web');
    const token = signer('ES256').mint({ spiffeId: other, audience: AUDIENCE, ttlSeconds: 60 });
    expect(await validate(token, AUDIENCE)).toMatchObject({ ok: false, stage: 'validate', error: expect.stringMatching(/other\.org/) });
  });

  it('an expired token', async () => {
    const token = signer('ES384').mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 60, now: new Date(Date.now() - 3_600_000) });
    expect(await validate(token, AUDIENCE)).toMatchObject({ ok: false, stage: 'validate', error: expect.stringMatching(/expired/) });
  });

  it('a token with a flipped signature bit', async () => {
    const token = signer('PS256').mint({ spiffeId: workload, audience: AUDIENCE, ttlSeconds: 60 });
    const dot = token.lastIndexOf('.');
    const sig = Buffer.from(token.slice(dot + 1), 'base64url');
    sig[10]! ^= 0x01;
    expect(await validate(`${token.slice(0, dot + 1)}${sig.toString('base64url')}`, AUDIENCE)).toMatchObject({ ok: false, stage: 'validate' });
  });
});

describe('bundles', () => {
  it('spiffebundle.Parse reads our bundle document: JWT keys, sequence and refresh hint', async () => {
    const verdict = await judge.ask<BundleVerdict>({ op: 'bundle', trustDomain: td.name, bundle: bundle.toJson() });
    expect(verdict.ok).toBe(true);
    if (!verdict.ok) return;
    expect(verdict.x509Authorities).toBe(0);
    expect([...verdict.jwtAuthorities].sort()).toEqual([...KIDS].sort());
    expect(verdict.sequence).toBe(42);
    expect(verdict.refreshHintSeconds).toBe(300);
  });

  it('jwtbundle.Parse reads our Workload API JWKS', async () => {
    const jwks = bundle.jwksForWorkloadApi().toString('utf8');
    const verdict = await judge.ask<JwtBundleVerdict>({ op: 'jwtBundle', trustDomain: td.name, jwks });
    expect(verdict.ok).toBe(true);
    if (!verdict.ok) return;
    expect([...verdict.jwtAuthorities].sort()).toEqual([...KIDS].sort());
  });

  it('the judge does refuse a broken bundle (so the checks above can fail)', async () => {
    const broken = JSON.stringify({ keys: [{ use: 'jwt-svid', kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] });
    expect(await judge.ask<BundleVerdict>({ op: 'bundle', trustDomain: td.name, bundle: broken })).toMatchObject({ ok: false });
  });
});
