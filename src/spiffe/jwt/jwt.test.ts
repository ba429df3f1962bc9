import { constants, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as jose from 'jose';
import { describe, expect, it } from 'vitest';
import { Bundle, BundleSet } from '../bundle/index.js';
import { isMayflyError, type ErrorCode } from '../errors.js';
import { SpiffeId, TrustDomain } from '../id.js';
import { JWT_SVID_ALGORITHMS, JwtSvidSigner, MAX_JWT_SVID_LENGTH, parseJwtSvidInsecure, validateJwtSvid, type JwtSvidAlgorithm } from './index.js';

const td = TrustDomain.parse('example.org');
const otherTd = TrustDomain.parse('other.org');
const alice = SpiffeId.parse('spiffe://example.org/ns/prod/sa/alice');
const NOW = new Date('2030-01-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;

const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherP256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function keyFor(alg: JwtSvidAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  if (alg === 'ES256') return p256;
  if (alg === 'ES384') return p384;
  if (alg === 'ES512') return p521;
  return rsa;
}

const bundle = new Bundle({
  trustDomain: td,
  jwtAuthorities: [
    ['ec256', p256.publicKey],
    ['ec384', p384.publicKey],
    ['ec521', p521.publicKey],
    ['rsa', rsa.publicKey],
  ],
});
const bundles = new BundleSet({ bundles: [bundle, new Bundle({ trustDomain: otherTd, jwtAuthorities: [['o', otherP256.publicKey]] })] });
const kidFor = (alg: JwtSvidAlgorithm): string => (alg === 'ES256' ? 'ec256' : alg === 'ES384' ? 'ec384' : alg === 'ES512' ? 'ec521' : 'rsa');

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs arbitrary header/claims with node:crypto directly (for tokens our signer would never make). */
function craft(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject = p256.privateKey, hash: string | null = 'sha256'): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const opts = key.asymmetricKeyType === 'ec' ? { key, dsaEncoding: 'ieee-p1363' as const } : { key };
  return `${input}.${sign(hash, Buffer.from(input), opts).toString('base64url')}`;
}

const goodHeader = { alg: 'ES256', kid: 'ec256', typ: 'JWT' };
const goodClaims = (): Record<string, unknown> => ({ sub: alice.toString(), aud: ['svc-a'], exp: NOW_S + 300, iat: NOW_S });

function validate(token: string, audience: string | string[] = 'svc-a'): ReturnType<typeof validateJwtSvid> {
  return validateJwtSvid(token, { audience, bundles, now: NOW });
}

function expectCode(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (!isMayflyError(thrown, code)) throw new Error(`expected ${code}, got ${thrown === undefined ? 'no error' : String(thrown)}`);
}

describe('JwtSvidSigner', () => {
  for (const alg of JWT_SVID_ALGORITHMS) {
    it(`${alg}: tokens verify with jose.jwtVerify and with validateJwtSvid`, async () => {
      const signer = new JwtSvidSigner({ privateKey: keyFor(alg).privateKey, kid: kidFor(alg), algorithm: alg, now: () => NOW });
      const token = signer.mint({ spiffeId: alice, audience: ['svc-a', 'svc-b'], ttlSeconds: 300, extraClaims: { iss: 'https://oidc.example.org' } });

      const { payload, protectedHeader } = await jose.jwtVerify(token, keyFor(alg).publicKey, {
        algorithms: [alg],
        audience: 'svc-b',
        subject: alice.toString(),
        typ: 'JWT',
        currentDate: NOW,
      });
      expect(protectedHeader).toEqual({ alg, kid: kidFor(alg), typ: 'JWT' });
      expect(payload).toEqual({ sub: alice.toString(), aud: ['svc-a', 'svc-b'], exp: NOW_S + 300, iat: NOW_S, iss: 'https://oidc.example.org' });

      const svid = validate(token, 'svc-b');
      expect(svid.spiffeId.equals(alice)).toBe(true);
      expect(svid.audience).toEqual(['svc-a', 'svc-b']);
      expect(svid.expiry.getTime()).toBe(NOW.getTime() + 300_000);
      expect(svid.claims.iss).toBe('https://oidc.example.org');
      expect(svid.header.kid).toBe(kidFor(alg));
    });
  }

  it('escapes audiences and extra claims correctly (jose reads the same values)', async () => {
    const signer = new JwtSvidSigner({ privateKey: p256.privateKey, kid: 'ec256', now: () => NOW });
    const aud = ['a"b\\c', 'ünïcødé ✓', '</script>\u2028'];
    const token = signer.mint({ spiffeId: alice, audience: aud, ttlSeconds: 60, extraClaims: { 'x"y': { n: [1, null] } } });
    const { payload } = await jose.jwtVerify(token, p256.publicKey, { algorithms: ['ES256'], currentDate: NOW });
    expect(payload.aud).toEqual(aud);
    expect(payload['x"y']).toEqual({ n: [1, null] });
    expect(validate(token, aud[1]).audience).toEqual(aud);
    expect(parseJwtSvidInsecure(signer.mint({ spiffeId: alice, audience: ['a'], ttlSeconds: 60, extraClaims: {} })).claims).toEqual({ sub: alice.toString(), aud: ['a'], exp: NOW_S + 60, iat: NOW_S });
  });

  it('picks the algorithm from the key and writes raw R‖S ECDSA signatures', () => {
    const cases: Array<[KeyObject, JwtSvidAlgorithm, number | undefined]> = [
      [p256.privateKey, 'ES256', 64],
      [p384.privateKey, 'ES384', 96],
      [p521.privateKey, 'ES512', 132],
      [rsa.privateKey, 'RS256', undefined],
    ];
    for (const [key, alg, sigLen] of cases) {
      const s = new JwtSvidSigner({ privateKey: key, kid: 'k' });
      expect(s.algorithm).toBe(alg);
      const token = s.mint({ spiffeId: alice, audience: ['a'], ttlSeconds: 60 });
      if (sigLen !== undefined) expect(Buffer.from(token.split('.')[2] as string, 'base64url')).toHaveLength(sigLen);
    }
  });

  it('uses the injected clock, or the per-request time', () => {
    const s = new JwtSvidSigner({ privateKey: p256.privateKey, kid: 'ec256', now: () => NOW });
    expect(parseJwtSvidInsecure(s.mint({ spiffeId: alice, audience: ['a'], ttlSeconds: 10 })).claims.iat).toBe(NOW_S);
    const later = new Date(NOW.getTime() + 5000);
    expect(parseJwtSvidInsecure(s.mint({ spiffeId: alice, audience: ['a'], ttlSeconds: 10, now: later })).claims.exp).toBe(NOW_S + 15);
  });

  it('refuses misuse with TypeError', () => {
    expect(() => new JwtSvidSigner({ privateKey: p256.publicKey, kid: 'k' })).toThrow(TypeError);
    expect(() => new JwtSvidSigner({ privateKey: p256.privateKey, kid: '' })).toThrow(TypeError);
    expect(() => new JwtSvidSigner({ privateKey: p256.privateKey, kid: 'k', algorithm: 'RS256' })).toThrow(TypeError);
    expect(() => new JwtSvidSigner({ privateKey: p256.privateKey, kid: 'k', algorithm: 'ES384' })).toThrow(TypeError);
    expect(() => new JwtSvidSigner({ privateKey: rsa.privateKey, kid: 'k', algorithm: 'ES256' })).toThrow(TypeError);
    expect(() => new JwtSvidSigner({ privateKey: p256.privateKey, kid: 'k', algorithm: 'HS256' as JwtSvidAlgorithm })).toThrow(TypeError);
    expect(() => new JwtSvidSigner({ privateKey: generateKeyPairSync('ed25519').privateKey, kid: 'k' })).toThrow(TypeError);
    const s = new JwtSvidSigner({ privateKey: p256.privateKey, kid: 'k' });
    expect(() => s.mint({ spiffeId: td.id, audience: ['a'], ttlSeconds: 60 })).toThrow(TypeError);
    expect(() => s.mint({ spiffeId: alice, audience: [], ttlSeconds: 60 })).toThrow(TypeError);
    expect(() => s.mint({ spiffeId: alice, audience: [''], ttlSeconds: 60 })).toThrow(TypeError);
    expect(() => s.mint({ spiffeId: alice, audience: ['a'], ttlSeconds: 0 })).toThrow(TypeError);
    expect(() => s.mint({ spiffeId: alice, audience: ['a'], ttlSeconds: 60, extraClaims: { sub: 'spiffe://evil.org/x' } })).toThrow(TypeError);
  });
});

describe('validateJwtSvid accepts', () => {
  it('tokens minted by jose (RFC-conformant foreign signer)', async () => {
    const token = await new jose.SignJWT({ aud: 'svc-a' })
      .setProtectedHeader({ alg: 'PS256', kid: 'rsa' })
      .setSubject(alice.toString())
      .setExpirationTime(NOW_S + 60)
      .sign(rsa.privateKey);
    const svid = validate(token);
    expect(svid.audience).toEqual(['svc-a']);
    const es = await new jose.SignJWT({}).setProtectedHeader({ alg: 'ES384', kid: 'ec384', typ: 'JOSE' }).setSubject(alice.toString()).setAudience(['x', 'svc-a']).setExpirationTime(NOW_S + 60).sign(p384.privateKey);
    expect(validate(es).spiffeId.toString()).toBe(alice.toString());
  });

  it('a single Bundle in place of a set, and an audience list that intersects', () => {
    const token = craft(goodHeader, goodClaims());
    expect(validateJwtSvid(token, { audience: ['nope', 'svc-a'], bundles: bundle, now: NOW }).spiffeId.equals(alice)).toBe(true);
  });

  it('exp within the leeway, nbf/iat within the leeway', () => {
    expect(() => validate(craft(goodHeader, { ...goodClaims(), exp: NOW_S - 59 }))).not.toThrow();
    expect(() => validate(craft(goodHeader, { ...goodClaims(), nbf: NOW_S + 59, iat: NOW_S + 59 }))).not.toThrow();
  });
});

describe('validateJwtSvid rejects hostile tokens with a stable code', () => {
  const publicPem = p256.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const publicDer = p256.publicKey.export({ type: 'spki', format: 'der' });
  const hmac = (secret: string | Buffer, header: Record<string, unknown>): string => {
    const input = `${b64(header)}.${b64(goodClaims())}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };

  const cases: Array<[string, () => string, ErrorCode]> = [
    ['alg none with empty signature', () => `${b64({ alg: 'none', kid: 'ec256' })}.${b64(goodClaims())}.`, 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['alg "None"', () => `${b64({ alg: 'None', kid: 'ec256' })}.${b64(goodClaims())}.`, 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['HS256 keyed with the public key PEM', () => hmac(publicPem, { alg: 'HS256', kid: 'ec256', typ: 'JWT' }), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['HS256 keyed with the public key DER', () => hmac(publicDer, { alg: 'HS256', kid: 'ec256' }), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['EdDSA', () => craft({ alg: 'EdDSA', kid: 'ec256' }, goodClaims(), generateKeyPairSync('ed25519').privateKey, null), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['ES256K', () => craft({ alg: 'ES256K', kid: 'ec256' }, goodClaims()), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['alg not a string', () => craft({ alg: ['ES256'], kid: 'ec256' }, goodClaims()), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['alg missing', () => craft({ kid: 'ec256' }, goodClaims()), 'ERR_JWT_MALFORMED'],
    ['typ other than JWT/JOSE', () => craft({ ...goodHeader, typ: 'at+jwt' }, goodClaims()), 'ERR_JWT_TYP_INVALID'],
    ['typ lowercase jwt', () => craft({ ...goodHeader, typ: 'jwt' }, goodClaims()), 'ERR_JWT_TYP_INVALID'],
    ['crit present', () => craft({ ...goodHeader, crit: ['exp'], exp: 1 }, goodClaims()), 'ERR_JWT_CRIT'],
    ['crit empty', () => craft({ ...goodHeader, crit: [] }, goodClaims()), 'ERR_JWT_CRIT'],
    ['kid missing', () => craft({ alg: 'ES256', typ: 'JWT' }, goodClaims()), 'ERR_JWT_KID_MISSING'],
    ['kid unknown', () => craft({ ...goodHeader, kid: 'nope' }, goodClaims()), 'ERR_JWT_KID_UNKNOWN'],
    ['kid of another trust domain', () => craft({ ...goodHeader, kid: 'o' }, goodClaims(), otherP256.privateKey), 'ERR_JWT_KID_UNKNOWN'],
    ['header jwk cannot supply the key', () => craft({ ...goodHeader, kid: 'nope', jwk: otherP256.publicKey.export({ format: 'jwk' }) }, goodClaims(), otherP256.privateKey), 'ERR_JWT_KID_UNKNOWN'],
    ['sub missing', () => craft(goodHeader, { ...goodClaims(), sub: undefined }), 'ERR_JWT_CLAIM_MISSING'],
    ['aud missing', () => craft(goodHeader, { ...goodClaims(), aud: undefined }), 'ERR_JWT_CLAIM_MISSING'],
    ['exp missing', () => craft(goodHeader, { ...goodClaims(), exp: undefined }), 'ERR_JWT_CLAIM_MISSING'],
    ['sub not a SPIFFE ID', () => craft(goodHeader, { ...goodClaims(), sub: 'alice' }), 'ERR_JWT_CLAIM_INVALID'],
    ['sub a trust domain ID (no path)', () => craft(goodHeader, { ...goodClaims(), sub: 'spiffe://example.org' }), 'ERR_JWT_CLAIM_INVALID'],
    ['sub with dot segment', () => craft(goodHeader, { ...goodClaims(), sub: 'spiffe://example.org/a/../admin' }), 'ERR_JWT_CLAIM_INVALID'],
    ['sub not a string', () => craft(goodHeader, { ...goodClaims(), sub: 42 }), 'ERR_JWT_CLAIM_INVALID'],
    ['aud empty array', () => craft(goodHeader, { ...goodClaims(), aud: [] }), 'ERR_JWT_CLAIM_INVALID'],
    ['aud holding a number', () => craft(goodHeader, { ...goodClaims(), aud: ['svc-a', 7] }), 'ERR_JWT_CLAIM_INVALID'],
    ['exp a string', () => craft(goodHeader, { ...goodClaims(), exp: String(NOW_S + 300) }), 'ERR_JWT_CLAIM_INVALID'],
    ['nbf a string', () => craft(goodHeader, { ...goodClaims(), nbf: 'soon' }), 'ERR_JWT_CLAIM_INVALID'],
    // Signed by a bundle key, yet must not crash formatting an out-of-range Date.
    ['nbf far beyond the Date range', () => craft(goodHeader, { ...goodClaims(), nbf: 1e300 }), 'ERR_JWT_CLAIM_INVALID'],
    ['iat far beyond the Date range', () => craft(goodHeader, { ...goodClaims(), iat: 1e300 }), 'ERR_JWT_CLAIM_INVALID'],
    ['exp far before the Date range', () => craft(goodHeader, { ...goodClaims(), exp: -1e300 }), 'ERR_JWT_CLAIM_INVALID'],
    ['exp beyond the Date range (expiry would be Invalid Date)', () => craft(goodHeader, { ...goodClaims(), exp: 1e16 }), 'ERR_JWT_CLAIM_INVALID'],
    ['sub in a trust domain with no bundle', () => craft(goodHeader, { ...goodClaims(), sub: 'spiffe://unknown.org/x' }), 'ERR_JWT_NO_BUNDLE'],
    ['wrong audience', () => craft(goodHeader, { ...goodClaims(), aud: ['svc-b'] }), 'ERR_JWT_AUDIENCE'],
    ['audience as a prefix', () => craft(goodHeader, { ...goodClaims(), aud: 'svc-a-evil' }), 'ERR_JWT_AUDIENCE'],
    ['expired beyond the leeway', () => craft(goodHeader, { ...goodClaims(), exp: NOW_S - 61 }), 'ERR_JWT_EXPIRED'],
    ['nbf in the future', () => craft(goodHeader, { ...goodClaims(), nbf: NOW_S + 120 }), 'ERR_JWT_NOT_YET_VALID'],
    ['iat in the future', () => craft(goodHeader, { ...goodClaims(), iat: NOW_S + 120 }), 'ERR_JWT_NOT_YET_VALID'],
    ['tampered payload', () => {
      const [h, , s] = craft(goodHeader, goodClaims()).split('.');
      return `${h}.${b64({ ...goodClaims(), sub: 'spiffe://example.org/admin' })}.${s}`;
    }, 'ERR_JWT_SIGNATURE'],
    ['tampered header (typ changed after signing)', () => {
      const [, p, s] = craft(goodHeader, goodClaims()).split('.');
      return `${b64({ ...goodHeader, typ: 'JOSE' })}.${p}.${s}`;
    }, 'ERR_JWT_SIGNATURE'],
    ['signed by a key not in the bundle', () => craft(goodHeader, goodClaims(), otherP256.privateKey), 'ERR_JWT_SIGNATURE'],
    ['DER-encoded ECDSA signature', () => {
      const input = `${b64(goodHeader)}.${b64(goodClaims())}`;
      return `${input}.${sign('sha256', Buffer.from(input), p256.privateKey).toString('base64url')}`;
    }, 'ERR_JWT_SIGNATURE'],
    ['ES256 alg with an RSA key (kid)', () => craft({ ...goodHeader, kid: 'rsa' }, goodClaims()), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['RS256 alg with an EC key (kid)', () => craft({ alg: 'RS256', kid: 'ec256' }, goodClaims(), rsa.privateKey), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['ES384 alg with a P-256 key', () => craft({ alg: 'ES384', kid: 'ec256' }, goodClaims(), p256.privateKey, 'sha384'), 'ERR_JWT_ALG_NOT_ALLOWED'],
    ['PS256 signature labelled RS256', () => {
      const input = `${b64({ alg: 'RS256', kid: 'rsa' })}.${b64(goodClaims())}`;
      const sig = sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      return `${input}.${sig.toString('base64url')}`;
    }, 'ERR_JWT_SIGNATURE'],
    ['two parts', () => `${b64(goodHeader)}.${b64(goodClaims())}`, 'ERR_JWT_MALFORMED'],
    ['four parts', () => `${craft(goodHeader, goodClaims())}.x`, 'ERR_JWT_MALFORMED'],
    ['empty string', () => '', 'ERR_JWT_MALFORMED'],
    ['bad base64url in header', () => `e y!.${b64(goodClaims())}.AAAA`, 'ERR_JWT_MALFORMED'],
    ['standard base64 with padding', () => `${Buffer.from(JSON.stringify(goodHeader)).toString('base64')}.${b64(goodClaims())}.AAAA`, 'ERR_JWT_MALFORMED'],
    ['non-canonical base64url (stray low bits)', () => {
      const t = craft(goodHeader, goodClaims());
      const [h, p, s] = t.split('.') as [string, string, string];
      const last = s.at(-1) as string;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const idx = alphabet.indexOf(last);
      return `${h}.${p}.${s.slice(0, -1)}${alphabet[idx ^ 1]}`;
    }, 'ERR_JWT_MALFORMED'],
    ['non-JSON header', () => `${b64('not json')}.${b64(goodClaims())}.AAAA`, 'ERR_JWT_MALFORMED'],
    ['header a JSON array', () => `${b64([1])}.${b64(goodClaims())}.AAAA`, 'ERR_JWT_MALFORMED'],
    ['payload JSON null', () => craft(goodHeader, null as unknown as Record<string, unknown>), 'ERR_JWT_MALFORMED'],
    ['token over 64 KiB', () => craft(goodHeader, { ...goodClaims(), pad: 'x'.repeat(MAX_JWT_SVID_LENGTH) }), 'ERR_JWT_MALFORMED'],
  ];

  for (const [name, make, code] of cases) {
    it(`${name} → ${code}`, () => {
      expectCode(() => validate(make()), code);
    });
  }

  it('a token for another trust domain is refused when only one Bundle is given', () => {
    const token = craft({ alg: 'ES256', kid: 'o' }, { ...goodClaims(), sub: 'spiffe://other.org/bob' }, otherP256.privateKey);
    expect(validate(token).spiffeId.toString()).toBe('spiffe://other.org/bob');
    expectCode(() => validateJwtSvid(token, { audience: 'svc-a', bundles: bundle, now: NOW }), 'ERR_JWT_NO_BUNDLE');
  });

  it('binary garbage never crashes', () => {
    for (let i = 0; i < 200; i++) {
      const junk = Buffer.from(Array.from({ length: 1 + (i % 90) }, (_, j) => (i * 31 + j * 17) % 256)).toString('latin1');
      try {
        validate(junk);
        throw new Error('accepted junk');
      } catch (err) {
        expect(isMayflyError(err)).toBe(true);
      }
    }
  });

  it('misuse (no audience, bad leeway) is a TypeError', () => {
    const token = craft(goodHeader, goodClaims());
    expect(() => validateJwtSvid(token, { audience: [], bundles, now: NOW })).toThrow(TypeError);
    expect(() => validateJwtSvid(token, { audience: 'svc-a', bundles, now: NOW, leewaySeconds: -1 })).toThrow(TypeError);
    expect(() => validateJwtSvid(42 as unknown as string, { audience: 'svc-a', bundles })).toThrow(TypeError);
  });

  it('leeway is configurable', () => {
    const token = craft(goodHeader, { ...goodClaims(), exp: NOW_S - 10 });
    expectCode(() => validateJwtSvid(token, { audience: 'svc-a', bundles, now: NOW, leewaySeconds: 0 }), 'ERR_JWT_EXPIRED');
  });
});

describe('parseJwtSvidInsecure', () => {
  it('reads a token without a key, even expired or signed by an unknown key', () => {
    const token = craft({ ...goodHeader, kid: 'unknown' }, { ...goodClaims(), exp: 1, aud: 'x' }, otherP256.privateKey);
    const svid = parseJwtSvidInsecure(token);
    expect(svid.spiffeId.equals(alice)).toBe(true);
    expect(svid.audience).toEqual(['x']);
    expect(svid.expiry.getTime()).toBe(1000);
    expect(svid.header.kid).toBe('unknown');
  });

  it('still enforces structure', () => {
    expectCode(() => parseJwtSvidInsecure('a.b'), 'ERR_JWT_MALFORMED');
    expectCode(() => parseJwtSvidInsecure(`${b64({ alg: 'none' })}.${b64(goodClaims())}.`), 'ERR_JWT_ALG_NOT_ALLOWED');
    expectCode(() => parseJwtSvidInsecure(craft(goodHeader, { ...goodClaims(), exp: undefined })), 'ERR_JWT_CLAIM_MISSING');
    expectCode(() => parseJwtSvidInsecure(craft(goodHeader, { ...goodClaims(), sub: 'https://x' })), 'ERR_JWT_CLAIM_INVALID');
  });
});
