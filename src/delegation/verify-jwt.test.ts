import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, jwtVerify, SignJWT, createLocalJWKSet, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { importJwks, JwtRefusal, verifyJwt, type VerificationKey, type VerifyJwtOptions } from './verify-jwt.js';

const NOW = new Date('2026-12-03T12:00:00Z');
const nowS = Math.floor(NOW.getTime() / 1000);
const OPTS: VerifyJwtOptions = { issuer: 'https://idp.test', audience: 'mayfly', algorithms: ['RS256', 'ES256', 'EdDSA'], now: NOW, clockToleranceSeconds: 30 };

let rsa: { publicKey: KeyObject; privateKey: KeyObject };
let ec: { publicKey: KeyObject; privateKey: KeyObject };
let ed: { publicKey: KeyObject; privateKey: KeyObject };
let jwks: { keys: Record<string, unknown>[] };
let keys: VerificationKey[];

beforeAll(async () => {
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  ed = generateKeyPairSync('ed25519');
  jwks = {
    keys: [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rs', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec' },
      { ...(await exportJWK(ed.publicKey)), kid: 'ed', alg: 'EdDSA' },
      { ...(await exportJWK(ec.publicKey)), kid: 'enc', use: 'enc' },
      { ...(await exportJWK(ec.privateKey)), kid: 'priv' },
      { kty: 'oct', k: 'c2VjcmV0', kid: 'oct' },
      { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', kid: 'broken' },
    ],
  };
  keys = importJwks(jwks as never);
});

const claims = (over: JWTPayload = {}): JWTPayload => ({ iss: OPTS.issuer, aud: OPTS.audience, sub: 'alice', iat: nowS - 5, exp: nowS + 600, ...over });
const signed = (over: JWTPayload = {}, alg = 'RS256', kid = 'rs', key: KeyObject = rsa.privateKey, header: Record<string, unknown> = {}): Promise<string> =>
  new SignJWT(claims(over)).setProtectedHeader({ alg, kid, ...header }).sign(key);

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(JwtRefusal);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('verifyJwt (the exchange’s synchronous subject-token check)', () => {
  it('imports only public signing keys and accepts what jose accepts, for RS256, ES256 and EdDSA', async () => {
    expect(keys.map((k) => k.kid)).toEqual(['rs', 'ec', 'ed']);
    for (const [alg, kid, key] of [['RS256', 'rs', rsa.privateKey], ['ES256', 'ec', ec.privateKey], ['EdDSA', 'ed', ed.privateKey]] as const) {
      const t = await signed({}, alg, kid, key);
      expect(verifyJwt(t, keys, OPTS).sub).toBe('alice');
      expect((await jwtVerify(t, createLocalJWKSet(jwks as never), { issuer: OPTS.issuer, audience: OPTS.audience, currentDate: NOW })).payload.sub).toBe('alice');
    }
  });

  it('refuses alg none, HS256 keyed with the public key, an unpinned algorithm and a signature under a key of another type', async () => {
    const body = b64(claims());
    expect(refusal(() => verifyJwt(`${b64({ alg: 'none', kid: 'rs' })}.${body}.`, keys, OPTS))).toMatch(/not one of the pinned/);
    const input = `${b64({ alg: 'HS256', kid: 'rs' })}.${body}`;
    const mac = createHmac('sha256', JSON.stringify(jwks.keys[0])).update(input).digest('base64url');
    expect(refusal(() => verifyJwt(`${input}.${mac}`, keys, { ...OPTS, algorithms: [...OPTS.algorithms, 'HS256'] }))).toMatch(/not an asymmetric/);
    expect(refusal(() => verifyJwt(`${input}.${mac}`, keys, OPTS))).toMatch(/pinned/);
    const es = await signed({}, 'ES256', 'ec', ec.privateKey);
    expect(refusal(() => verifyJwt(es, keys, { ...OPTS, algorithms: ['RS256'] }))).toMatch(/pinned/);
    expect(refusal(() => verifyJwt(withKid(es, 'rs'), keys, OPTS))).toMatch(/no key .* for ES256/);
    const rs = await signed();
    expect(refusal(() => verifyJwt(withKid(rs, 'ed'), keys, OPTS))).toMatch(/no key/);
    // A JWK pinned to RS256 serves no PS256 token, even though the key type fits.
    const ps = await signed({}, 'PS256', 'rs');
    expect(refusal(() => verifyJwt(ps, keys, { ...OPTS, algorithms: ['PS256'] }))).toMatch(/no key/);
  });

  it('refuses an unknown kid, another key’s signature, crit, lenient base64 and non-object JSON', async () => {
    const t = await signed();
    expect(refusal(() => verifyJwt(withKid(t, 'nope'), keys, OPTS))).toMatch(/no key .*"nope"/);
    const forged = await signed({}, 'RS256', 'rs', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    expect(refusal(() => verifyJwt(forged, keys, OPTS))).toMatch(/signature does not verify/);
    const [h, p, s] = t.split('.') as [string, string, string];
    const crit = `${b64({ alg: 'RS256', kid: 'rs', crit: ['exp'] })}.${p}.${s}`;
    expect(refusal(() => verifyJwt(crit, keys, OPTS))).toMatch(/crit/);
    expect(refusal(() => verifyJwt(`${h}=.${p}.${s}`, keys, OPTS))).toMatch(/base64url/);
    expect(refusal(() => verifyJwt(`${h}.${p}.${s.slice(0, -1)}B`, keys, OPTS))).toMatch(/canonical|signature/);
    expect(refusal(() => verifyJwt(`${h}.${Buffer.from('[1]').toString('base64url')}.${s}`, keys, OPTS))).toMatch(/not a JSON object/);
    expect(refusal(() => verifyJwt(`${h}.${Buffer.from('{').toString('base64url')}.${s}`, keys, OPTS))).toMatch(/not JSON/);
    expect(refusal(() => verifyJwt(`${h}.${p}`, keys, OPTS))).toMatch(/three/);
    expect(refusal(() => verifyJwt(`${h}.${p}.${s}.x`, keys, OPTS))).toMatch(/three/);
  });

  it('refuses wrong issuer, wrong audience, no sub, expired, not yet valid; tolerates skew within the tolerance', async () => {
    const cases: [JWTPayload, RegExp][] = [
      [{ iss: 'https://evil' }, /iss/],
      [{ aud: 'someone-else' }, /aud/],
      [{ sub: undefined }, /sub/],
      [{ exp: nowS - 31 }, /expired/],
      [{ exp: undefined }, /exp/],
      [{ nbf: nowS + 60 }, /not yet valid/],
      [{ iat: 'yesterday' as never }, /iat/],
    ];
    for (const [over, why] of cases) {
      const t = await signed(over);
      expect(refusal(() => verifyJwt(t, keys, OPTS)), JSON.stringify(over)).toMatch(why);
    }
    expect(verifyJwt(await signed({ exp: nowS - 10, nbf: nowS + 10 }), keys, OPTS).sub).toBe('alice');
    expect(verifyJwt(await signed({ aud: ['x', 'mayfly'] }), keys, OPTS).sub).toBe('alice');
  });
});

/** The token with its header's kid replaced (the signature no longer matters: the key lookup must fail first). */
function withKid(token: string, kid: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${b64({ ...header, kid })}.${p}.${s}`;
}
