/**
 * agent/revocation with a realistic volume: 100k revoked serials in one CRL parse into one
 * set, an identical push reuses it (no second copy), a new CRL replaces it (nothing
 * accumulates), and a CRL that does not parse is reported and left out.
 */
import { describe, expect, it } from 'vitest';
import { buildCrl, type CrlEntryInput } from '../spiffe/x509/crl.js';
import { makeTestCa, makeTestSvid } from '../spiffe/x509/testing.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { isChainRevoked, NO_REVOCATIONS, revokedSerialsOf } from './revocation.js';

const ca = makeTestCa();
const t = new Date();
const crl = (entries: CrlEntryInput[], n: bigint): Buffer =>
  buildCrl({ caCertificate: ca.certificate, caPrivateKey: ca.key.privateKey, crlNumber: n, thisUpdate: t, nextUpdate: new Date(t.getTime() + 3600_000), entries });

describe('revokedSerialsOf', () => {
  it('holds 100k revoked serials once, reuses the set for the same bytes, replaces it for new ones', () => {
    const victim = makeTestSvid(ca, '/victim');
    const victimSerial = parseCertificate(victim.certificate).serialHex;
    const entries: CrlEntryInput[] = Array.from({ length: 100_000 }, (_, i) => ({ serialHex: '7f' + i.toString(16).padStart(30, '0'), revokedAt: t, reason: 'keyCompromise' }));
    entries.push({ serialHex: victimSerial, revokedAt: t, reason: 'keyCompromise' });
    const big = crl(entries, 1n);
    const first = revokedSerialsOf([big]);
    expect(first.count).toBe(100_001);
    expect(isChainRevoked([victim.certificate], first)).toBe(true);
    expect(isChainRevoked([makeTestSvid(ca, '/other').certificate], first)).toBe(false);
    // The same CRL pushed again (every update carries it): the very same set, no copy.
    expect(revokedSerialsOf([Buffer.from(big)])).toBe(first);
    // The next CRL (the entries expired): replaces the set; nothing of the old one is kept.
    const next = revokedSerialsOf([crl([{ serialHex: victimSerial, revokedAt: t, reason: 'superseded' }], 2n)]);
    expect(next).not.toBe(first);
    expect(next.count).toBe(1);
    expect([...next.byAuthority.values()].reduce((n, s) => n + s.size, 0)).toBe(1);
    expect(revokedSerialsOf([])).toBe(NO_REVOCATIONS);
  });

  it('leaves out a CRL that does not parse, and says so', () => {
    const problems: string[] = [];
    const r = revokedSerialsOf([Buffer.from([0x30, 0x01, 0x00]), crl([], 3n)], (m) => problems.push(m));
    expect(r.crls).toHaveLength(1);
    expect(problems).toEqual([expect.stringMatching(/ignoring a CRL from the server that does not parse/)]);
  });
});
