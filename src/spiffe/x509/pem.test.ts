import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../errors.js';
import { concatDer, parsePemCertificates, pemEncodeCertificates, splitDerCertificates } from './index.js';
import { makeTestCa, makeTestSvid } from './testing.js';

const ca = makeTestCa();
const leaf = makeTestSvid(ca).certificate;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isMayflyError(e) ? e.code : `not a MayflyError: ${(e as Error).message}`;
  }
  return undefined;
}

describe('DER containers', () => {
  it('round-trips concatenated DER', () => {
    expect(splitDerCertificates(concatDer([leaf, ca.certificate]))).toEqual([leaf, ca.certificate]);
  });

  it('rejects empty, truncated and padded input', () => {
    expect(code(() => splitDerCertificates(Buffer.alloc(0)))).toBe('ERR_X509_MALFORMED');
    expect(code(() => splitDerCertificates(concatDer([leaf, ca.certificate]).subarray(0, -1)))).toBe('ERR_X509_MALFORMED');
    expect(code(() => splitDerCertificates(Buffer.concat([leaf, Buffer.from([0])])))).toBe('ERR_X509_MALFORMED');
    expect(code(() => splitDerCertificates(Buffer.from([0x30, 0x80, 0x00, 0x00])))).toBe('ERR_X509_MALFORMED'); // BER indefinite length
  });
});

describe('PEM', () => {
  it('round-trips, ignoring text between blocks and CRLF', () => {
    const pem = pemEncodeCertificates([leaf, ca.certificate]);
    expect(pem.split('\n').every((l) => l.length <= 64)).toBe(true);
    expect(parsePemCertificates(pem)).toEqual([leaf, ca.certificate]);
    expect(parsePemCertificates(`# comment\r\n${pem.replace(/\n/g, '\r\n')}trailing`)).toEqual([leaf, ca.certificate]);
  });

  it('rejects junk', () => {
    expect(code(() => parsePemCertificates('hello'))).toBe('ERR_X509_MALFORMED');
    expect(code(() => parsePemCertificates('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'))).toBe('ERR_X509_MALFORMED');
    expect(code(() => parsePemCertificates('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'))).toBe('ERR_X509_MALFORMED');
    expect(code(() => parsePemCertificates(pemEncodeCertificates([leaf.subarray(0, 100)])))).toBe('ERR_X509_MALFORMED');
    expect(code(() => parsePemCertificates(pemEncodeCertificates([concatDer([leaf, leaf])])))).toBe('ERR_X509_MALFORMED');
  });
});
