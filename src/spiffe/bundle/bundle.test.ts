import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateKeyPairSync, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMayflyError, type ErrorCode } from '../errors.js';
import { TrustDomain } from '../id.js';
import { makeHostileCert } from '../x509/testing.js';
import { Bundle, BundleSet, bundleFromX509Der, bundleFromX509Pem, MAX_BUNDLE_BYTES, parseBundle, parseJwtBundleJwks, type SpiffeJwk } from './index.js';

const td = TrustDomain.parse('example.org');
const other = TrustDomain.parse('other.org');

async function selfSignedCa(alg: 'ec' | 'rsa', name: string): Promise<Buffer> {
  const algorithm =
    alg === 'ec'
      ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
      : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: `O=${name}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${name}` }]),
      ],
    },
  );
  return Buffer.from(cert.rawData);
}

function expectCode(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected ${code}`).toBeDefined();
  if (!isMayflyError(thrown, code)) throw new Error(`expected ${code}, got ${String(thrown)}`);
}

let ecRoot: Buffer;
let rsaRoot: Buffer;
let jwtEc: KeyObject;
let jwtRsa: KeyObject;

beforeAll(async () => {
  ecRoot = await selfSignedCa('ec', 'example.org');
  rsaRoot = await selfSignedCa('rsa', 'example.org');
  jwtEc = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  jwtRsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
});

function fullBundle(): Bundle {
  return new Bundle({
    trustDomain: td,
    x509Authorities: [ecRoot, rsaRoot],
    jwtAuthorities: [
      ['k-ec', jwtEc],
      ['k-rsa', jwtRsa],
    ],
    sequence: 7,
    refreshHintSeconds: 300,
  });
}

/** A valid document to break in one place per test. */
function doc(): { keys: Record<string, unknown>[]; spiffe_sequence?: unknown; spiffe_refresh_hint?: unknown } {
  return JSON.parse(fullBundle().toJson()) as { keys: Record<string, unknown>[] };
}

describe('Bundle document (JWKS)', () => {
  it('emits x509-svid keys with one base64 x5c, no kid, and key params from the certificate', () => {
    const jwks = fullBundle().toJwks();
    expect(jwks.spiffe_sequence).toBe(7);
    expect(jwks.spiffe_refresh_hint).toBe(300);
    const x = jwks.keys.filter((k) => k.use === 'x509-svid');
    expect(x).toHaveLength(2);
    for (const [i, k] of x.entries()) {
      expect(k.kid).toBeUndefined();
      expect(k.x5c).toHaveLength(1);
      const der = i === 0 ? ecRoot : rsaRoot;
      expect(k.x5c?.[0]).toBe(der.toString('base64'));
      const certJwk = new X509Certificate(der).publicKey.export({ format: 'jwk' });
      expect(k.kty).toBe(certJwk.kty);
      if (k.kty === 'EC') {
        expect([k.crv, k.x, k.y]).toEqual([certJwk.crv, certJwk.x, certJwk.y]);
      } else {
        expect([k.n, k.e]).toEqual([certJwk.n, certJwk.e]);
      }
    }
    const j = jwks.keys.filter((k) => k.use === 'jwt-svid');
    expect(j.map((k) => k.kid)).toEqual(['k-ec', 'k-rsa']);
    expect(j.every((k) => k.x5c === undefined)).toBe(true);
  });

  it('writes EC coordinates full length (43 base64url chars for P-256) for every key', () => {
    // Roughly 1 in 128 keys has a leading zero byte in a coordinate; 400 keys make it near-certain
    // that one is covered.
    const keys = Array.from({ length: 400 }, (_, i) => [`k${i}`, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey] as [string, KeyObject]);
    const jwks = new Bundle({ trustDomain: td, jwtAuthorities: keys }).toJwks();
    for (const k of jwks.keys) {
      expect(k.x).toHaveLength(43);
      expect(k.y).toHaveLength(43);
    }
  });

  it('round-trips through JSON, and equals() sees the same bundle', () => {
    const b = fullBundle();
    const back = parseBundle(b.toJson(), td);
    expect(back.equals(b)).toBe(true);
    expect(back.sequence).toBe(7);
    expect(back.refreshHintSeconds).toBe(300);
    expect(back.x509Authorities.map((c) => c.toString('hex'))).toEqual([ecRoot.toString('hex'), rsaRoot.toString('hex')]);
    expect(back.jwtAuthorities.get('k-ec')?.equals(jwtEc)).toBe(true);
    expect(parseBundle(Buffer.from(b.toJson()), td).equals(b)).toBe(true);
  });

  it('equals() notices every kind of difference', () => {
    const b = fullBundle();
    const base = { trustDomain: td, x509Authorities: [ecRoot, rsaRoot], jwtAuthorities: [['k-ec', jwtEc], ['k-rsa', jwtRsa]] as [string, KeyObject][], sequence: 7, refreshHintSeconds: 300 };
    expect(new Bundle({ ...base, x509Authorities: [rsaRoot, ecRoot] }).equals(b)).toBe(true);
    expect(new Bundle({ ...base, trustDomain: other }).equals(b)).toBe(false);
    expect(new Bundle({ ...base, sequence: 8 }).equals(b)).toBe(false);
    expect(new Bundle({ ...base, refreshHintSeconds: 60 }).equals(b)).toBe(false);
    expect(new Bundle({ ...base, x509Authorities: [ecRoot] }).equals(b)).toBe(false);
    expect(new Bundle({ ...base, jwtAuthorities: [['k-ec', jwtRsa], ['k-rsa', jwtEc]] }).equals(b)).toBe(false);
    expect(new Bundle({ ...base, jwtAuthorities: [['k-ec', jwtEc], ['k-other', jwtRsa]] }).equals(b)).toBe(false);
  });

  it('stores only the public half of a private JWT authority', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const b = new Bundle({ trustDomain: td, jwtAuthorities: new Map([['k', privateKey]]) });
    expect(b.jwtAuthorities.get('k')?.type).toBe('public');
    expect(b.jwtAuthorities.get('k')?.equals(publicKey)).toBe(true);
    expect(b.toJson()).not.toContain('"d"');
  });

  it('refuses misuse in the constructor with TypeError', () => {
    expect(() => new Bundle({ trustDomain: td, x509Authorities: [Buffer.from('not a cert')] })).toThrow(TypeError);
    expect(() => new Bundle({ trustDomain: td, sequence: -1 })).toThrow(TypeError);
    expect(() => new Bundle({ trustDomain: td, jwtAuthorities: [['', jwtEc]] })).toThrow(TypeError);
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    expect(() => new Bundle({ trustDomain: td, jwtAuthorities: [['k', weak]] })).toThrow(TypeError);
    const ed = generateKeyPairSync('ed25519').publicKey;
    expect(() => new Bundle({ trustDomain: td, jwtAuthorities: [['k', ed]] })).toThrow(TypeError);
  });
});

describe('Workload API and PEM forms', () => {
  it('DER concatenation both ways', () => {
    const b = fullBundle();
    const der = b.x509AuthoritiesDer();
    expect(der.equals(Buffer.concat([ecRoot, rsaRoot]))).toBe(true);
    const back = bundleFromX509Der(td, der);
    expect(back.x509Authorities.map((c) => c.toString('hex'))).toEqual([ecRoot.toString('hex'), rsaRoot.toString('hex')]);
    expect(back.jwtAuthorities.size).toBe(0);
    expect(bundleFromX509Der(td, new Uint8Array()).x509Authorities).toHaveLength(0);
  });

  it('PEM both ways, and OpenSSL-readable PEM', () => {
    const pem = fullBundle().x509AuthoritiesPem();
    expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(Buffer.from(new X509Certificate(pem).raw).equals(ecRoot)).toBe(true);
    const back = bundleFromX509Pem(td, pem);
    expect(back.x509Authorities.map((c) => c.toString('hex'))).toEqual([ecRoot.toString('hex'), rsaRoot.toString('hex')]);
  });

  it('rejects junk DER and PEM with ERR_BUNDLE_MALFORMED', () => {
    expectCode(() => bundleFromX509Der(td, Buffer.concat([ecRoot, Buffer.from([0x30, 0x05, 1])])), 'ERR_BUNDLE_MALFORMED');
    expectCode(() => bundleFromX509Der(td, Buffer.from([0x30, 0x03, 1, 2, 3])), 'ERR_BUNDLE_MALFORMED');
    expectCode(() => bundleFromX509Pem(td, 'no pem here'), 'ERR_BUNDLE_MALFORMED');
    expectCode(() => bundleFromX509Pem(td, '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n'), 'ERR_BUNDLE_MALFORMED');
  });

  it('jwksForWorkloadApi holds only jwt-svid keys, all with kid, and parses back', () => {
    const bytes = fullBundle().jwksForWorkloadApi();
    const parsed = JSON.parse(bytes.toString('utf8')) as { keys: SpiffeJwk[]; spiffe_sequence?: number };
    expect(parsed.keys).toHaveLength(2);
    expect(parsed.keys.every((k) => typeof k.kid === 'string' && k.x5c === undefined)).toBe(true);
    expect(parsed.spiffe_sequence).toBeUndefined();
    const back = parseJwtBundleJwks(bytes, td);
    expect(back.x509Authorities).toHaveLength(0);
    expect(back.jwtAuthorities.get('k-rsa')?.equals(jwtRsa)).toBe(true);
  });

  it('parseJwtBundleJwks accepts keys without use, ignores other uses, refuses missing kid and secrets', () => {
    const jwk = { kty: 'EC', ...jwtEc.export({ format: 'jwk' }) };
    const b = parseJwtBundleJwks(JSON.stringify({ keys: [{ ...jwk, kid: 'a' }, { ...jwk, kid: 'b', use: 'enc' }] }), td);
    expect([...b.jwtAuthorities.keys()]).toEqual(['a']);
    expectCode(() => parseJwtBundleJwks(JSON.stringify({ keys: [jwk] }), td), 'ERR_BUNDLE_KEY_INVALID');
    expectCode(() => parseJwtBundleJwks(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }), td), 'ERR_BUNDLE_KEY_INVALID');
    expectCode(() => parseJwtBundleJwks(JSON.stringify({ keys: [{ ...jwk, kid: 'a' }, { ...jwk, kid: 'a' }] }), td), 'ERR_BUNDLE_KEY_INVALID');
    expectCode(() => parseJwtBundleJwks('{"nokeys":1}', td), 'ERR_BUNDLE_MALFORMED');
  });
});

describe('parseBundle refuses hostile documents', () => {
  const cases: Array<[string, () => unknown, ErrorCode]> = [
    ['non-JSON', () => 'not json {', 'ERR_BUNDLE_MALFORMED'],
    ['JSON array', () => '[]', 'ERR_BUNDLE_MALFORMED'],
    ['JSON null', () => 'null', 'ERR_BUNDLE_MALFORMED'],
    ['keys missing', () => ({ spiffe_sequence: 1 }), 'ERR_BUNDLE_MALFORMED'],
    ['keys not an array', () => ({ keys: { a: 1 } }), 'ERR_BUNDLE_MALFORMED'],
    ['key entry not an object', () => ({ keys: ['x'] }), 'ERR_BUNDLE_MALFORMED'],
    ['negative sequence', () => ({ ...doc(), spiffe_sequence: -1 }), 'ERR_BUNDLE_MALFORMED'],
    ['fractional sequence', () => ({ ...doc(), spiffe_sequence: 1.5 }), 'ERR_BUNDLE_MALFORMED'],
    ['sequence beyond 2^53', () => ({ ...doc(), spiffe_sequence: 2 ** 60 }), 'ERR_BUNDLE_MALFORMED'],
    ['string refresh hint', () => ({ ...doc(), spiffe_refresh_hint: '300' }), 'ERR_BUNDLE_MALFORMED'],
    ['missing use', () => mutate(0, (k) => delete k.use), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid key with kid', () => mutate(0, (k) => (k.kid = 'x')), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid key without x5c', () => mutate(0, (k) => delete k.x5c), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid key with empty x5c', () => mutate(0, (k) => (k.x5c = [])), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid key with two x5c', () => mutate(0, (k) => (k.x5c = [ecRoot.toString('base64'), rsaRoot.toString('base64')])), 'ERR_BUNDLE_KEY_INVALID'],
    ['x5c in base64url', () => mutate(1, (k) => (k.x5c = [rsaRoot.toString('base64url')])), 'ERR_BUNDLE_KEY_INVALID'],
    ['x5c not a certificate', () => mutate(0, (k) => (k.x5c = [Buffer.from('hello world!').toString('base64')])), 'ERR_BUNDLE_KEY_INVALID'],
    ['x5c with trailing bytes', () => mutate(0, (k) => (k.x5c = [Buffer.concat([ecRoot, Buffer.from([0, 0, 0])]).toString('base64')])), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid x param of another key', () => mutate(0, (k) => (k.x = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }).x)), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid missing y', () => mutate(0, (k) => delete k.y), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid wrong crv', () => mutate(0, (k) => (k.crv = 'P-384')), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid kty RSA on an EC cert', () => mutate(0, (k) => (k.kty = 'RSA')), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid n of another key', () => mutate(1, (k) => (k.n = jwtRsa.export({ format: 'jwk' }).n)), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid cert swapped for another', () => mutate(0, (k) => (k.x5c = [rsaRoot.toString('base64')])), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid key without kid', () => mutate(2, (k) => delete k.kid), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid key with empty kid', () => mutate(2, (k) => (k.kid = '')), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid duplicate kid', () => mutate(3, (k) => (k.kid = 'k-ec')), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid private EC key (d)', () => mutate(2, (k) => (k.d = 'AAAA')), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid private RSA key (p, q)', () => mutate(3, (k) => Object.assign(k, { p: 'AQAB', q: 'AQAB' })), 'ERR_BUNDLE_KEY_INVALID'],
    ['x509-svid carrying d', () => mutate(0, (k) => (k.d = 'AAAA')), 'ERR_BUNDLE_KEY_INVALID'],
    ['symmetric oct key', () => mutate(2, () => ({ use: 'jwt-svid', kid: 'h', kty: 'oct' })), 'ERR_BUNDLE_KEY_INVALID'],
    ['EC point not on the curve', () => mutate(2, (k) => (k.y = Buffer.alloc(32, 1).toString('base64url'))), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid weak RSA key', () => mutate(3, (k) => Object.assign(k, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }))), 'ERR_BUNDLE_KEY_INVALID'],
    ['jwt-svid missing kty', () => mutate(2, (k) => delete k.kty), 'ERR_BUNDLE_KEY_INVALID'],
  ];

  function mutate(i: number, fn: (k: Record<string, unknown>) => unknown): unknown {
    const d = doc();
    const k = d.keys[i] as Record<string, unknown>;
    const r = fn(k);
    if (r !== undefined && typeof r === 'object' && r !== null && 'kty' in r) d.keys[i] = r as Record<string, unknown>;
    return d;
  }

  for (const [name, make, code] of cases) {
    it(`${name} → ${code}`, () => {
      const input = make();
      const json = typeof input === 'string' ? input : JSON.stringify(input);
      expectCode(() => parseBundle(json, td), code);
    });
  }

  it('refuses a root that Node parses but the X.509-SVID verifier cannot (negative serial)', () => {
    // Accepted, it would make every later verifyX509Svid against this bundle fail.
    const negative = makeHostileCert({ isCA: true, serial: Buffer.from([0xff, 0x01]), subject: { commonName: 'negative serial root' } }).certificate;
    expect(() => new X509Certificate(negative)).not.toThrow();
    const json = new Bundle({ trustDomain: td, x509Authorities: [ecRoot, negative] }).toJson();
    expectCode(() => parseBundle(json, td), 'ERR_BUNDLE_KEY_INVALID');
    expectCode(() => bundleFromX509Der(td, Buffer.concat([ecRoot, negative])), 'ERR_BUNDLE_MALFORMED');
  });

  it('refuses a huge document before parsing it', () => {
    const huge = '{"keys":[' + ' '.repeat(MAX_BUNDLE_BYTES) + ']}';
    expectCode(() => parseBundle(huge, td), 'ERR_BUNDLE_MALFORMED');
    expectCode(() => parseBundle(Buffer.from(huge), td), 'ERR_BUNDLE_MALFORMED');
    expect(() => parseBundle(huge, td, { maxBytes: 2 * MAX_BUNDLE_BYTES })).not.toThrow();
  });

  it('ignores keys with an unknown use or an unknown jwt-svid key type, as the standard says', () => {
    const d = doc();
    d.keys.push({ use: 'wit-svid', kty: 'EC', kid: 'w', crv: 'P-256', x: 'garbage', y: 'garbage' });
    d.keys.push({ use: 'jwt-svid', kid: 'okp', ...generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) });
    const b = parseBundle(JSON.stringify(d), td);
    expect(b.x509Authorities).toHaveLength(2);
    expect([...b.jwtAuthorities.keys()]).toEqual(['k-ec', 'k-rsa']);
  });

  it('accepts an x509-svid key whose coordinates carry extra leading zeros (same value)', () => {
    const d = doc();
    const k = d.keys[1] as Record<string, string>;
    k.n = Buffer.concat([Buffer.from([0]), Buffer.from(k.n as string, 'base64url')]).toString('base64url');
    expect(parseBundle(JSON.stringify(d), td).x509Authorities).toHaveLength(2);
  });

  it('accepts an empty key list', () => {
    const b = parseBundle('{"keys":[]}', td);
    expect(b.x509Authorities).toHaveLength(0);
    expect(b.jwtAuthorities.size).toBe(0);
    expect(b.sequence).toBeUndefined();
  });

  it('imports jwt-svid keys as public KeyObjects', () => {
    const b = parseBundle(fullBundle().toJson(), td);
    for (const k of b.jwtAuthorities.values()) expect(k.type).toBe('public');
  });
});

describe('BundleSet', () => {
  it('maps trust domain names to bundles and replaces whole bundles', () => {
    const a = new Bundle({ trustDomain: td, jwtAuthorities: [['a', jwtEc]] });
    const b = new Bundle({ trustDomain: other });
    const set = new BundleSet({ bundles: [a, b] });
    expect(set.size).toBe(2);
    expect(set.get(td)).toBe(a);
    expect(set.get('other.org')).toBe(b);
    expect(set.get(TrustDomain.parse('nope.org'))).toBeUndefined();
    const a2 = new Bundle({ trustDomain: td, jwtAuthorities: [['b', jwtRsa]] });
    set.set(a2);
    expect(set.get(td)).toBe(a2);
    expect([...set.values()]).toHaveLength(2);
    expect(set.delete(other)).toBe(true);
    expect(set.has(other)).toBe(false);
  });
});
