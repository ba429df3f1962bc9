/**
 * The CRL builder judged by OpenSSL (`openssl crl -text` shows every field; `openssl verify
 * -crl_check` refuses a revoked leaf and accepts an unrevoked one), and the strict reader
 * round-tripping what the builder wrote.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMayflyError } from '../errors.js';
import { generateKeyPair } from '../keys.js';
import { buildCrl, isRevocationReason, parseCrl, REVOCATION_REASONS, verifyCrlSignature, type CrlEntryInput } from './crl.js';
import { parseCertificate } from './parse.js';
import { pemEncodeCertificates } from './pem.js';
import { makeTestCa, makeTestSvid } from './testing.js';

const dir = mkdtempSync(join(tmpdir(), 'mayfly-crl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pemCrl = (der: Buffer): string => `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END X509 CRL-----\n`;

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { status: r.status, out: r.stdout + r.stderr };
}

const T0 = new Date('2026-12-03T12:00:00Z');

describe('buildCrl', () => {
  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
    it(`openssl crl -text shows the v2 fields (${keyType} CA)`, () => {
      const ca = makeTestCa({ keyType });
      const revoked = makeTestSvid(ca, '/revoked');
      const serial = parseCertificate(revoked.certificate).serialHex;
      const der = buildCrl({
        caCertificate: ca.certificate,
        caPrivateKey: ca.key.privateKey,
        crlNumber: 1234567890123n,
        thisUpdate: T0,
        nextUpdate: new Date(T0.getTime() + 3600_000),
        entries: [
          { serialHex: serial, revokedAt: T0, reason: 'keyCompromise' },
          { serialHex: '0a0b', revokedAt: T0, reason: 'unspecified' },
        ],
      });
      const path = join(dir, `crl-${keyType}.der`);
      writeFileSync(path, der);
      const caPath = join(dir, `ca-${keyType}.pem`);
      writeFileSync(caPath, pemEncodeCertificates([ca.certificate]));
      const r = openssl(['crl', '-inform', 'DER', '-in', path, '-noout', '-text', '-CAfile', caPath]);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toMatch(/verify OK/);
      expect(r.out).toMatch(/Version 2 \(0x1\)/);
      expect(r.out).toMatch(/Last Update: Dec {2}3 12:00:00 2026 GMT/);
      expect(r.out).toMatch(/Next Update: Dec {2}3 13:00:00 2026 GMT/);
      expect(r.out).toMatch(/X509v3 CRL Number:\s*\n\s*1234567890123/);
      const ski = (parseCertificate(ca.certificate).subjectKeyId as Buffer).toString('hex').toUpperCase().match(/../g)?.join(':');
      expect(r.out).toMatch(new RegExp(`X509v3 Authority Key Identifier:\\s*\\n\\s*(keyid:)?${ski}`));
      expect(r.out).toContain(`Serial Number: ${serial.replace(/^00/, '').toUpperCase()}`);
      expect(r.out).toMatch(/CRL Reason Code:\s*\n\s*Key Compromise/);
      expect(r.out).toMatch(/Revocation Date: Dec {2}3 12:00:00 2026 GMT/);
      expect(r.out).toMatch(/Serial Number: 0A0B/);
      // The unspecified entry carries no reason extension (RFC 5280 5.3.1): one Reason Code in all.
      expect(r.out.match(/CRL Reason Code/g)).toHaveLength(1);
      const issuer = openssl(['x509', '-in', caPath, '-noout', '-subject', '-nameopt', 'oneline']).out.replace(/^subject=/, '').trim();
      expect(r.out).toContain(`Issuer: ${openssl(['x509', '-in', caPath, '-noout', '-subject']).out.replace(/^subject=/, '').trim()}`);
      expect(issuer).not.toBe('');
    });
  }

  it('openssl verify -crl_check refuses the revoked leaf and accepts an unrevoked one of the same CA', () => {
    const ca = makeTestCa();
    const bad = makeTestSvid(ca, '/bad');
    const good = makeTestSvid(ca, '/good');
    const der = buildCrl({
      caCertificate: ca.certificate,
      caPrivateKey: ca.key.privateKey,
      crlNumber: 1n,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + 3600_000),
      entries: [{ serialHex: parseCertificate(bad.certificate).serialHex, revokedAt: new Date(Date.now() - 60_000), reason: 'superseded' }],
    });
    const crlPath = join(dir, 'verify.crl.pem');
    writeFileSync(crlPath, pemCrl(der));
    const caPath = join(dir, 'verify.ca.pem');
    writeFileSync(caPath, pemEncodeCertificates([ca.certificate]));
    const badPath = join(dir, 'bad.pem');
    writeFileSync(badPath, pemEncodeCertificates([bad.certificate]));
    const goodPath = join(dir, 'good.pem');
    writeFileSync(goodPath, pemEncodeCertificates([good.certificate]));
    const refused = openssl(['verify', '-x509_strict', '-crl_check', '-CRLfile', crlPath, '-CAfile', caPath, badPath]);
    expect(refused.status).not.toBe(0);
    expect(refused.out).toMatch(/certificate revoked/);
    const accepted = openssl(['verify', '-x509_strict', '-crl_check', '-CRLfile', crlPath, '-CAfile', caPath, goodPath]);
    expect(accepted.status, accepted.out).toBe(0);
    expect(accepted.out).toMatch(/: OK/);
  });

  it('parseCrl reads back what buildCrl wrote, and verifyCrlSignature knows the issuer', () => {
    const ca = makeTestCa({ keyType: 'ec-p384' });
    const other = makeTestCa();
    const entries: CrlEntryInput[] = REVOCATION_REASONS.map((reason, i) => ({ serialHex: (0x80 + i).toString(16).padStart(4, '0'), revokedAt: T0, reason }));
    const der = buildCrl({ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey, crlNumber: 7n, thisUpdate: T0, nextUpdate: new Date(T0.getTime() + 60_000), entries });
    const crl = parseCrl(der);
    expect(crl.crlNumber).toBe(7n);
    expect(crl.thisUpdate).toEqual(T0);
    expect(crl.nextUpdate).toEqual(new Date(T0.getTime() + 60_000));
    expect(crl.authorityKeyId).toEqual(parseCertificate(ca.certificate).subjectKeyId);
    expect(crl.entries.map((e) => e.reason)).toEqual(REVOCATION_REASONS);
    expect(crl.entries.map((e) => e.serialHex)).toEqual(entries.map((e) => e.serialHex));
    expect(verifyCrlSignature(crl, ca.certificate)).toBe(true);
    expect(verifyCrlSignature(crl, other.certificate)).toBe(false);
    const tampered = Buffer.from(der);
    tampered.writeUInt8((tampered.readUInt8(tampered.length - 5) ^ 1) & 0xff, tampered.length - 5);
    expect(verifyCrlSignature(parseCrl(tampered), ca.certificate)).toBe(false);
  });

  it('an empty CRL omits revokedCertificates and still parses everywhere', () => {
    const ca = makeTestCa();
    const der = buildCrl({ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey, crlNumber: 0n, thisUpdate: T0, nextUpdate: new Date(T0.getTime() + 1000), entries: [] });
    expect(parseCrl(der).entries).toEqual([]);
    const path = join(dir, 'empty.der');
    writeFileSync(path, der);
    const r = openssl(['crl', '-inform', 'DER', '-in', path, '-noout', '-text']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/No Revoked Certificates/);
  });

  it('refuses misuse and malformed input', () => {
    const ca = makeTestCa();
    const leaf = makeTestSvid(ca);
    const base = { caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey, crlNumber: 1n, thisUpdate: T0, nextUpdate: new Date(T0.getTime() + 1000), entries: [] };
    expect(() => buildCrl({ ...base, nextUpdate: T0 })).toThrow(TypeError);
    expect(() => buildCrl({ ...base, crlNumber: -1n })).toThrow(TypeError);
    expect(() => buildCrl({ ...base, entries: [{ serialHex: 'XYZ', revokedAt: T0, reason: 'superseded' }] })).toThrow(TypeError);
    let err: unknown;
    try {
      buildCrl({ ...base, caCertificate: leaf.certificate, caPrivateKey: generateKeyPair('ec-p256').privateKey });
    } catch (e) {
      err = e;
    }
    expect(isMayflyError(err, 'ERR_X509_BUILD')).toBe(true);
    const der = buildCrl(base);
    for (const bad of [der.subarray(0, der.length - 1), Buffer.concat([der, Buffer.from([0])]), Buffer.from([0x30, 0x80, 0, 0])]) {
      let e2: unknown;
      try {
        parseCrl(bad);
      } catch (e) {
        e2 = e;
      }
      expect(isMayflyError(e2, 'ERR_X509_MALFORMED')).toBe(true);
    }
    expect(isRevocationReason('keyCompromise')).toBe(true);
    expect(isRevocationReason('certificateHold')).toBe(false);
    expect(isRevocationReason('KeyCompromise')).toBe(false);
  });

  it('100k revoked serials: about 5 MB, parsed by openssl and by parseCrl', () => {
    const ca = makeTestCa();
    const entries: CrlEntryInput[] = [];
    for (let i = 0; i < 100_000; i++) entries.push({ serialHex: '7f' + i.toString(16).padStart(30, '0'), revokedAt: T0, reason: i % 2 ? 'keyCompromise' : 'unspecified' });
    const der = buildCrl({ ...{ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey }, crlNumber: 9n, thisUpdate: T0, nextUpdate: new Date(T0.getTime() + 3600_000), entries });
    // ~36 bytes per entry without a reason, ~50 with one: bounded by the entries alone.
    expect(der.length).toBeLessThan(100_000 * 50);
    expect(parseCrl(der).entries).toHaveLength(100_000);
    const path = join(dir, 'big.der');
    writeFileSync(path, der);
    const r = openssl(['crl', '-inform', 'DER', '-in', path, '-noout', '-crlnumber']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/crlNumber=0x09/);
  });
});
