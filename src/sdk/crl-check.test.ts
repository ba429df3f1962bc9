/**
 * sdk/crl-check: a peer is refused only by a CRL of its own issuer whose signature verifies;
 * a forged CRL (another key), a CRL of another CA, or bytes that do not parse refuse nobody.
 */
import { describe, expect, it } from 'vitest';
import { Bundle } from '../spiffe/bundle/index.js';
import { isMayflyError } from '../spiffe/errors.js';
import { buildCrl } from '../spiffe/x509/crl.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { makeTestCa, makeTestSvid } from '../spiffe/x509/testing.js';
import { checkNotRevoked, revocationOf } from './crl-check.js';

describe('checkNotRevoked', () => {
  const ca = makeTestCa();
  const other = makeTestCa();
  const bundle = new Bundle({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate] });
  const leaf = makeTestSvid(ca, '/peer');
  const serialHex = parseCertificate(leaf.certificate).serialHex;
  const t = new Date();
  const crlBy = (cert: Buffer, key: typeof ca.key.privateKey): Buffer =>
    buildCrl({ caCertificate: cert, caPrivateKey: key, crlNumber: 1n, thisUpdate: t, nextUpdate: new Date(t.getTime() + 60_000), entries: [{ serialHex, revokedAt: t, reason: 'keyCompromise' }] });

  it('refuses a peer its issuer revoked, with ERR_PEER_UNAUTHORIZED', () => {
    let err: unknown;
    try {
      checkNotRevoked([leaf.certificate], bundle, [crlBy(ca.certificate, ca.key.privateKey)], 'spiffe://example.org/peer');
    } catch (e) {
      err = e;
    }
    expect(isMayflyError(err, 'ERR_PEER_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toMatch(/revoked by its CA .* \(reason keyCompromise\)/);
  });

  it('ignores forged, foreign and unparsable CRLs', () => {
    // The CA's certificate with another key: names and AKI match, the signature does not.
    expect(revocationOf([leaf.certificate], bundle, [crlBy(ca.certificate, other.key.privateKey)])).toBeUndefined();
    expect(revocationOf([leaf.certificate], bundle, [crlBy(other.certificate, other.key.privateKey)])).toBeUndefined();
    expect(revocationOf([leaf.certificate], bundle, [Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])])).toBeUndefined();
    expect(revocationOf([makeTestSvid(ca, '/fine').certificate], bundle, [crlBy(ca.certificate, ca.key.privateKey)])).toBeUndefined();
  });
});
