import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../errors.js';
import { generateKeyPair } from '../keys.js';
import { seq, tlv } from './der.js';
import { parseCertificate, verifyX509Svid } from './index.js';
import { makeHostileCert, makeTestCa, makeTestSvid, rawExtension } from './testing.js';

describe('parseCertificate agrees with node:crypto X509Certificate', () => {
  const root = makeTestCa({ keyType: 'rsa-2048', pathLenConstraint: 2, nameConstraints: true });
  const inter = makeTestCa({ upstream: root, keyType: 'ec-p384' });
  const leaf = makeTestSvid(inter, '/a/b', { dnsNames: ['x.example.org'] }).certificate;
  for (const [name, der] of [['root', root.certificate], ['intermediate', inter.certificate], ['leaf', leaf]] as const) {
    it(name, () => {
      const p = parseCertificate(der);
      const n = new X509Certificate(der);
      expect(p.serialHex.replace(/^00/, '').toUpperCase()).toBe(n.serialNumber.replace(/^00/, ''));
      expect(p.notBefore.getTime()).toBe(new Date(n.validFrom).getTime());
      expect(p.notAfter.getTime()).toBe(new Date(n.validTo).getTime());
      expect(p.isCA).toBe(n.ca);
      expect(p.spki.equals(n.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
      const sans = (n.subjectAltName ?? '').split(', ');
      expect(sans).toEqual([...p.uriSans.map((u) => `URI:${u}`), ...p.dnsSans.map((d) => `DNS:${d}`)]);
      if (!p.isCA) expect(n.keyUsage).toEqual(p.extKeyUsage);
      expect(n.checkIssued(new X509Certificate(name === 'leaf' ? inter.certificate : root.certificate))).toBe(true);
    });
  }

  it('reads IP, email and other SAN forms, AKI with issuer fields, and pathLen', () => {
    const san = seq(
      tlv(0x86, Buffer.from('spiffe://example.org/x')),
      tlv(0x87, Buffer.from([10, 0, 0, 1])),
      tlv(0x81, Buffer.from('a@example.org')),
      tlv(0x88, Buffer.from([0x2a, 0x03])),
    );
    const { certificate } = makeHostileCert({ extraExtensions: [rawExtension('2.5.29.17', false, san)] });
    const p = parseCertificate(certificate);
    expect(p.uriSans).toEqual(['spiffe://example.org/x']);
    expect(p.ipSans).toEqual(['10.0.0.1']);
    expect(p.emailSans).toEqual(['a@example.org']);
    expect(p.otherSanCount).toBe(1);
    expect(parseCertificate(root.certificate).pathLen).toBe(2);
  });

  it('rejects duplicate extensions, non-ASCII URI SANs and unknown GeneralName tags', () => {
    const bad = (extra: Buffer[]): string | undefined => {
      try {
        parseCertificate(makeHostileCert({ extraExtensions: extra }).certificate);
      } catch (e) {
        return isMayflyError(e) ? `${e.code}: ${e.message}` : String(e);
      }
      return undefined;
    };
    expect(bad([rawExtension('1.2.3', false), rawExtension('1.2.3', false)])).toMatch(/ERR_X509_MALFORMED.*twice/);
    expect(bad([rawExtension('2.5.29.17', false, seq(tlv(0x86, Buffer.from('spiffe://ex\u00e9.org/x', 'latin1'))))])).toMatch(/ERR_X509_MALFORMED.*ASCII/);
    expect(bad([rawExtension('2.5.29.17', false, seq(tlv(0x89, Buffer.from('x'))))])).toMatch(/ERR_X509_MALFORMED.*GeneralName/);
    expect(bad([rawExtension('2.5.29.19', true, seq(tlv(0x02, Buffer.from([1]))))])).toMatch(/ERR_X509_MALFORMED/); // pathLen without cA, and BC twice
  });
});

describe('verify caches cannot be poisoned', () => {
  it('mutating a bundle Buffer after a successful verify is noticed', () => {
    const root = makeTestCa();
    const { certificate } = makeTestSvid(root);
    const anchor = Buffer.from(root.certificate);
    const bundle = { trustDomain: root.trustDomain, x509Authorities: [anchor] };
    expect(verifyX509Svid([certificate], bundle).spiffeId.path).toBe('/workload');
    // Swap in another CA's public key bytes at the same place: the cached parse must not be reused.
    const other = parseCertificate(makeTestCa().certificate).spki;
    const at = anchor.indexOf(parseCertificate(anchor).spki);
    other.copy(anchor, at);
    let code: string | undefined;
    try {
      verifyX509Svid([certificate], bundle);
    } catch (e) {
      code = isMayflyError(e) ? e.code : String(e);
    }
    expect(code).toBe('ERR_X509_BAD_SIGNATURE');
  });

  it('an EC key does not verify an RSA-signed certificate', () => {
    const root = makeTestCa({ keyType: 'rsa-2048' });
    const ecKey = generateKeyPair('ec-p256');
    const leaf = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: ecKey.privateKey }, uris: ['spiffe://example.org/a'] });
    expect(() => verifyX509Svid([leaf.certificate], { trustDomain: root.trustDomain, x509Authorities: [root.certificate] })).toThrow(expect.objectContaining({ code: 'ERR_X509_BAD_SIGNATURE' }));
  });
});
