import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../errors.js';
import { SpiffeId, TrustDomain } from '../id.js';
import { exportSpkiDer, generateKeyPair, KEY_TYPES, type KeyType } from '../keys.js';
import {
  createCaCertificate, mintX509SvidSlow, parseCertificate, spkiFromKeyObject, X509SvidMinter, type ParsedCertificate,
} from './index.js';
import { makeTestCa } from './testing.js';

const td = TrustDomain.parse('example.org');
const id = SpiffeId.parse('spiffe://example.org/ns/prod/sa/web');
const NOW = new Date('2030-06-01T12:00:00.123Z');

/** Everything but the random serial and the signature. */
function comparable(p: ParsedCertificate): Record<string, unknown> {
  const { der: _d, tbs: _t, serialNumber: _s, serialHex: _h, signature: _g, ...rest } = p;
  return rest;
}

function caOf(type: KeyType, ttlSeconds = 86_400) {
  const key = generateKeyPair(type);
  const certificate = createCaCertificate({ trustDomain: td, key, ttlSeconds, now: NOW });
  return { key, certificate };
}

describe('spkiFromKeyObject', () => {
  it.each(KEY_TYPES)('equals the SPKI DER export for %s', (type) => {
    const k = generateKeyPair(type);
    expect(spkiFromKeyObject(k.publicKey).equals(exportSpkiDer(k.publicKey))).toBe(true);
    expect(spkiFromKeyObject(k.privateKey).equals(exportSpkiDer(k.publicKey))).toBe(true);
  });
});

describe('fast path vs slow path', () => {
  for (const caType of KEY_TYPES) {
    for (const leafType of KEY_TYPES) {
      it(`CA ${caType}, leaf ${leafType}: same fields, both signatures verify`, () => {
        const ca = caOf(caType);
        const leafKey = generateKeyPair(leafType);
        const minter = new X509SvidMinter({ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey });
        const req = { spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 3600, now: NOW, dnsNames: ['web.example.org', '*.svc.local'] };
        const fast = minter.mint(req);
        const fastSpki = minter.mint({ ...req, publicKey: undefined, publicKeySpki: exportSpkiDer(leafKey.publicKey) });
        const slow = mintX509SvidSlow({ ...req, caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey });
        const [pf, ps, pk] = [parseCertificate(fast), parseCertificate(slow), parseCertificate(fastSpki)];
        expect(comparable(pf)).toEqual(comparable(ps));
        expect(comparable(pk)).toEqual(comparable(ps));
        const caPub = createPublicKey(ca.key.privateKey);
        const hash = caType === 'ec-p384' ? 'sha384' : 'sha256';
        for (const p of [pf, ps, pk]) expect(verify(hash, p.tbs, caPub, p.signature)).toBe(true);
        expect(pf.serialHex).not.toBe(ps.serialHex);
      });
    }
  }

  it('with a subject: SAN not critical, subject encoded the same way', () => {
    const ca = caOf('ec-p256');
    const leafKey = generateKeyPair('ec-p256');
    const subject = { country: 'US', organization: 'Mayfly', commonName: 'web' };
    const minter = new X509SvidMinter({ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey });
    const fast = parseCertificate(minter.mint({ spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 60, now: NOW, subject }));
    const slow = parseCertificate(mintX509SvidSlow({ spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 60, now: NOW, subject, caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey }));
    expect(comparable(fast)).toEqual(comparable(slow));
    expect(fast.sanCritical).toBe(false);
    expect(fast.subjectIsEmpty).toBe(false);
  });
});

describe('X509SvidMinter leaf profile', () => {
  const ca = caOf('ec-p256', 7200);
  const minter = new X509SvidMinter({ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey });
  const parsedCa = parseCertificate(ca.certificate);

  it('has the X.509-SVID fields', () => {
    const leafKey = generateKeyPair('ec-p256');
    const p = parseCertificate(minter.mint({ spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 3600, now: NOW }));
    expect(p.uriSans).toEqual([id.toString()]);
    expect(p.dnsSans).toEqual([]);
    expect(p.subjectIsEmpty).toBe(true);
    expect(p.sanCritical).toBe(true);
    expect(p.isCA).toBe(false);
    expect(p.extensions.find((e) => e.oid === '2.5.29.19')?.critical).toBe(true);
    expect(p.extensions.find((e) => e.oid === '2.5.29.15')?.critical).toBe(true);
    expect(p.keyUsage).toMatchObject({ digitalSignature: true, keyCertSign: false, cRLSign: false });
    expect(p.extKeyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(p.authorityKeyId?.equals(parsedCa.subjectKeyId as Buffer)).toBe(true);
    expect(p.issuer.equals(parsedCa.subject)).toBe(true);
    expect(p.notBefore.toISOString()).toBe('2030-06-01T11:59:50.000Z');
    expect(p.notAfter.toISOString()).toBe('2030-06-01T13:00:00.000Z');
    expect(p.signatureAlgorithm).toBe('1.2.840.10045.4.3.2');
  });

  it('caps NotAfter at the CA NotAfter', () => {
    const leafKey = generateKeyPair('ec-p256');
    const p = parseCertificate(minter.mint({ spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 86_400 * 30, now: NOW }));
    expect(p.notAfter.getTime()).toBe(parsedCa.notAfter.getTime());
  });

  it('serials are positive, minimal and distinct', () => {
    const leafKey = generateKeyPair('ec-p256');
    const seen = new Set<string>();
    let sawPadded = false;
    for (let i = 0; i < 300; i++) {
      const p = parseCertificate(minter.mint({ spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 60, now: NOW }));
      expect((p.serialNumber[0] as number) & 0x80).toBe(0);
      if (p.serialNumber[0] === 0) {
        sawPadded = true;
        expect((p.serialNumber[1] as number) & 0x80).toBe(0x80);
      }
      seen.add(p.serialHex);
    }
    expect(seen.size).toBe(300);
    expect(sawPadded).toBe(true); // half of all random serials have the high bit set
  });

  it('rejects a trust domain ID, bad DNS names, an expired CA and a mismatched CA key', () => {
    const leafKey = generateKeyPair('ec-p256');
    const base = { spiffeId: id, publicKey: leafKey.publicKey, ttlSeconds: 60, now: NOW };
    expect(() => minter.mint({ ...base, spiffeId: td.id })).toThrow(/workload ID/);
    expect(() => minter.mint({ ...base, dnsNames: ['bad name'] })).toThrow(/DNS SAN/);
    expect(() => minter.mint({ ...base, now: new Date(NOW.getTime() + 3 * 3_600_000) })).toThrow(expect.objectContaining({ code: 'ERR_X509_EXPIRED' }));
    expect(() => minter.mint({ ...base, publicKeySpki: Buffer.from('3003020100', 'hex'), publicKey: undefined })).toThrow(expect.objectContaining({ code: 'ERR_X509_BUILD' }));
    try {
      new X509SvidMinter({ caCertificate: ca.certificate, caPrivateKey: generateKeyPair('ec-p256').privateKey });
      expect.unreachable();
    } catch (e) {
      expect(isMayflyError(e, 'ERR_X509_KEY_MISMATCH')).toBe(true);
    }
  });
});

describe('createCaCertificate', () => {
  it('self-signed root: URI SAN, CA flags, SKI = AKI, positive serial', () => {
    const key = generateKeyPair('ec-p384');
    const p = parseCertificate(createCaCertificate({ trustDomain: td, key, ttlSeconds: 3600, now: NOW, nameConstraints: true, pathLenConstraint: 1 }));
    expect(p.isCA).toBe(true);
    expect(p.pathLen).toBe(1);
    expect(p.uriSans).toEqual(['spiffe://example.org']);
    expect(p.keyUsage).toMatchObject({ keyCertSign: true, cRLSign: true });
    expect(p.extensions.find((e) => e.oid === '2.5.29.15')?.critical).toBe(true);
    expect(p.extensions.find((e) => e.oid === '2.5.29.19')?.critical).toBe(true);
    expect(p.subjectKeyId?.equals(p.authorityKeyId as Buffer)).toBe(true);
    expect(p.nameConstraints).toEqual({ permitted: [{ type: 'uri', value: 'example.org' }], excluded: [], critical: true });
    expect(p.subject.equals(p.issuer)).toBe(true);
    expect(p.signatureAlgorithm).toBe('1.2.840.10045.4.3.3');
    expect(p.notBefore.getTime()).toBe(Math.floor(NOW.getTime() / 1000) * 1000 - 10_000);
  });

  it('intermediate under an upstream: issuer, AKI and NotAfter come from the upstream', () => {
    const up = makeTestCa({ keyType: 'rsa-2048', ttlSeconds: 3600, now: NOW });
    const upP = parseCertificate(up.certificate);
    const key = generateKeyPair('ec-p256');
    const p = parseCertificate(createCaCertificate({ trustDomain: td, key, ttlSeconds: 86_400, now: NOW, upstream: { certificate: up.certificate, privateKey: up.key.privateKey } }));
    expect(p.issuer.equals(upP.subject)).toBe(true);
    expect(p.authorityKeyId?.equals(upP.subjectKeyId as Buffer)).toBe(true);
    expect(p.notAfter.getTime()).toBe(upP.notAfter.getTime());
    expect(p.signatureAlgorithm).toBe('1.2.840.113549.1.1.11');
  });
});
