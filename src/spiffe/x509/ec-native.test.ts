import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nativeEcVerifier } from './ec-native.js';

/** The uncompressed point 04 || X || Y of an EC public key. */
function pointOf(publicKey: ReturnType<typeof generateKeyPairSync>['publicKey']): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')]);
}

describe('nativeEcVerifier (OpenSSL EC_KEY through koffi)', () => {
  const v = nativeEcVerifier();

  it('is available on this platform (Node exports its OpenSSL symbols)', () => {
    expect(v?.source).toMatch(/^(process|libcrypto\.so\.3)$/);
  });

  it.each([['P-256', 'sha256'], ['P-384', 'sha384'], ['P-256', 'sha512']] as const)('agrees with node:crypto on %s/%s: good, corrupted, other data, other key', (curve, hash) => {
    if (v === undefined) throw new Error('native verifier unavailable');
    const a = generateKeyPairSync('ec', { namedCurve: curve });
    const b = generateKeyPairSync('ec', { namedCurve: curve });
    const data = Buffer.from('certification request info');
    const sig = sign(hash, data, a.privateKey);
    const bad = Buffer.from(sig);
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0x80;
    const cases: Array<[Buffer, Buffer, Buffer]> = [[pointOf(a.publicKey), data, sig], [pointOf(a.publicKey), data, bad], [pointOf(a.publicKey), Buffer.from('other'), sig], [pointOf(b.publicKey), data, sig]];
    for (const [point, d, s] of cases) {
      const want = verify(hash, d, createPublicKey({ key: Buffer.concat([a.publicKey.export({ type: 'spki', format: 'der' }).subarray(0, -point.length), point]), format: 'der', type: 'spki' }), s);
      expect(v.verify(curve, point, hash, d, s)).toBe(want ? 'ok' : 'bad-signature');
    }
  });

  it('refuses off-curve, compressed, wrong-size and infinity points, and non-DER signatures', () => {
    if (v === undefined) throw new Error('native verifier unavailable');
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const data = Buffer.from('x');
    const sig = sign('sha256', data, a.privateKey);
    const point = pointOf(a.publicKey);
    const off = Buffer.from(point);
    off[64] = (off[64] as number) ^ 1;
    expect(v.verify('P-256', off, 'sha256', data, sig)).toBe('bad-point');
    expect(v.verify('P-256', Buffer.concat([Buffer.from([2 + ((point[64] as number) & 1)]), point.subarray(1, 33)]), 'sha256', data, sig)).toBe('bad-point');
    expect(v.verify('P-384', point, 'sha256', data, sig)).toBe('bad-point');
    expect(v.verify('P-256', Buffer.alloc(65), 'sha256', data, sig)).toBe('bad-point');
    expect(v.verify('P-256', point, 'sha256', data, Buffer.concat([sig, Buffer.from([0])]))).toBe('bad-signature'); // trailing garbage
    expect(v.verify('P-256', point, 'sha256', data, Buffer.alloc(0))).toBe('bad-signature');
    expect(v.verify('P-256', point, 'sha256', data, sig)).toBe('ok');
  });

  it('leaves no OpenSSL error behind for node:crypto to trip over', () => {
    if (v === undefined) throw new Error('native verifier unavailable');
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const off = pointOf(a.publicKey);
    off[64] = (off[64] as number) ^ 1;
    for (let i = 0; i < 50; i++) v.verify('P-256', off, 'sha256', Buffer.from('x'), Buffer.from([0x30, 0]));
    // node:crypto keeps working and reports its own errors, not ours
    expect(verify('sha256', Buffer.from('y'), a.publicKey, sign('sha256', Buffer.from('y'), a.privateKey))).toBe(true);
    expect(() => createPublicKey({ key: Buffer.from('garbage'), format: 'der', type: 'spki' })).toThrow(/asn1|decode|unsupported/i);
  });
});
