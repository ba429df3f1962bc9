import { describe, expect, it } from 'vitest';
import { isMayflyError, type ErrorCode } from '../errors.js';
import { SpiffeId, TrustDomain } from '../id.js';
import { exportPkcs8Der, generateKeyPair } from '../keys.js';
import { concatDer, parseCertificate, parseX509Svid, verifyX509Svid } from './index.js';
import { makeHostileCert, makeHostileLeaf, makeTestCa, makeTestSvid, rawExtension, type TestCa } from './testing.js';

const root = makeTestCa({ trustDomain: 'example.org' });
const bundle = { trustDomain: root.trustDomain, x509Authorities: [root.certificate] };

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  try {
    fn();
  } catch (e) {
    if (!isMayflyError(e, code)) throw new Error(`expected ${code}, got ${(e as { code?: string }).code}: ${(e as Error).message}`, { cause: e });
    if (message) expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

function leafChain(ca: TestCa, opts: Parameters<typeof makeHostileLeaf>[1] = {}, extra: Buffer[] = []): Buffer[] {
  return [makeHostileLeaf(ca, opts).certificate, ...extra];
}

describe('verifyX509Svid: good chains', () => {
  it('leaf directly under the root', () => {
    const { certificate } = makeTestSvid(root, '/web');
    const out = verifyX509Svid([certificate], bundle);
    expect(out.spiffeId.toString()).toBe('spiffe://example.org/web');
    expect(out.chain).toEqual([certificate, root.certificate]);
  });

  it('leaf under two intermediates (given out of order, root also presented)', () => {
    const i1 = makeTestCa({ upstream: root, nameConstraints: true, pathLenConstraint: 1 });
    const i2 = makeTestCa({ upstream: i1, keyType: 'rsa-2048' });
    const { certificate } = makeTestSvid(i2, '/db', { keyType: 'ec-p384', dnsNames: ['db.local'] });
    const out = verifyX509Svid([certificate, i1.certificate, i2.certificate, root.certificate], bundle);
    expect(out.chain).toEqual([certificate, i2.certificate, i1.certificate, root.certificate]);
  });

  it('with several bundle authorities, picks the right one', () => {
    const other = makeTestCa({ trustDomain: 'example.org' });
    const { certificate } = makeTestSvid(root);
    expect(verifyX509Svid([certificate], { trustDomain: root.trustDomain, x509Authorities: [other.certificate, root.certificate] }).chain[1]).toEqual(root.certificate);
  });

  it('permitted URI subtree .example.org admits a subdomain trust domain', () => {
    const r = makeTestCa({ trustDomain: 'prod.example.org' });
    const inter = makeHostileCert({ issuer: { certificate: r.certificate, privateKey: r.key.privateKey }, isCA: true, nameConstraints: { permitted: ['.example.org'] }, subject: { commonName: 'inter' } });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://prod.example.org/a'] });
    expect(verifyX509Svid([leaf.certificate, inter.certificate], { trustDomain: r.trustDomain, x509Authorities: [r.certificate] }).spiffeId.toString()).toBe('spiffe://prod.example.org/a');
  });
});

describe('verifyX509Svid: hostile input', () => {
  it('two URI SANs', () => expectCode(() => verifyX509Svid(leafChain(root, { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }), bundle), 'ERR_X509_SVID_INVALID', /2 URI SANs/));
  it('zero URI SANs', () => expectCode(() => verifyX509Svid(leafChain(root, { uris: [], dnsNames: ['a.example.org'] }), bundle), 'ERR_X509_SVID_INVALID', /no URI SAN/));
  it('a non-spiffe URI', () => expectCode(() => verifyX509Svid(leafChain(root, { uris: ['https://example.org/a'] }), bundle), 'ERR_X509_SVID_INVALID', /not a valid SPIFFE ID/));
  it('a percent-encoded dot segment', () => expectCode(() => verifyX509Svid(leafChain(root, { uris: ['spiffe://example.org/a/%2e%2e/admin'] }), bundle), 'ERR_X509_SVID_INVALID'));
  it('a trust-domain-only ID', () => expectCode(() => verifyX509Svid(leafChain(root, { uris: ['spiffe://example.org'] }), bundle), 'ERR_X509_SVID_INVALID', /no path/));
  it('leaf with cA=true', () => expectCode(() => verifyX509Svid(leafChain(root, { isCA: true, keyUsage: [0] }), bundle), 'ERR_X509_SVID_INVALID', /CA certificate/));
  it('leaf with keyCertSign', () => expectCode(() => verifyX509Svid(leafChain(root, { keyUsage: [0, 5] }), bundle), 'ERR_X509_SVID_INVALID', /keyCertSign/));
  it('leaf with cRLSign', () => expectCode(() => verifyX509Svid(leafChain(root, { keyUsage: [0, 6] }), bundle), 'ERR_X509_SVID_INVALID', /cRLSign/));
  it('leaf without keyUsage', () => expectCode(() => verifyX509Svid(leafChain(root, { keyUsage: null }), bundle), 'ERR_X509_SVID_INVALID', /no keyUsage/));
  it('leaf without digitalSignature', () => expectCode(() => verifyX509Svid(leafChain(root, { keyUsage: [2] }), bundle), 'ERR_X509_SVID_INVALID', /digitalSignature/));
  it('leaf with an unknown critical extension', () =>
    expectCode(() => verifyX509Svid(leafChain(root, { extraExtensions: [rawExtension('1.2.3.4.5', true)] }), bundle), 'ERR_X509_SVID_INVALID', /critical extension 1\.2\.3\.4\.5/));
  it('a non-critical unknown extension is fine', () => {
    expect(verifyX509Svid(leafChain(root, { extraExtensions: [rawExtension('1.2.3.4.5', false)] }), bundle).spiffeId.path).toBe('/workload');
  });

  it('intermediate CA without keyCertSign', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, keyUsage: [0, 6], subject: { commonName: 'no-certsign' } });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_CHAIN_INVALID', /keyCertSign/);
  });

  it('intermediate that is not a CA', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: false, keyUsage: [0, 5], subject: { commonName: 'not-ca' } });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_CHAIN_INVALID', /cA is not true/);
  });

  it('intermediate with an unknown critical extension', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, subject: { commonName: 'crit' }, extraExtensions: [rawExtension('2.5.29.54', true, Buffer.from([2, 1, 0]))] });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_CHAIN_INVALID', /2\.5\.29\.54/);
  });

  it('bundle authority without keyCertSign', () => {
    const badRoot = makeHostileCert({ isCA: true, keyUsage: [0], subject: { commonName: 'bad root' }, uris: ['spiffe://example.org'] });
    const leaf = makeHostileCert({ issuer: { certificate: badRoot.certificate, privateKey: badRoot.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate], { trustDomain: bundle.trustDomain, x509Authorities: [badRoot.certificate] }), 'ERR_X509_CHAIN_INVALID', /keyCertSign/);
  });

  it('SPIFFE ID of another trust domain', () => {
    const { certificate } = makeTestSvid(makeTestCa({ trustDomain: 'evil.org' }));
    expectCode(() => verifyX509Svid([certificate], bundle), 'ERR_X509_NO_TRUST', /no bundle for trust domain evil\.org/);
  });

  it('chain to another CA claiming the same trust domain', () => {
    const rogue = makeTestCa({ trustDomain: 'example.org' });
    const { certificate } = makeTestSvid(rogue);
    expectCode(() => verifyX509Svid([certificate, rogue.certificate], bundle), 'ERR_X509_NO_TRUST', /does not chain/);
  });

  it('rogue CA copying the real root subject and SKI still fails on the signature', () => {
    const real = parseCertificate(root.certificate);
    const rogueKey = generateKeyPair('ec-p256');
    // A certificate whose subject equals the root's subject: the leaf's issuer matches, the key does not.
    const leaf = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: rogueKey.privateKey }, uris: ['spiffe://example.org/a'] });
    expect(parseCertificate(leaf.certificate).issuer.equals(real.subject)).toBe(true);
    expectCode(() => verifyX509Svid([leaf.certificate], bundle), 'ERR_X509_BAD_SIGNATURE');
  });

  it('bad signature on the leaf', () => expectCode(() => verifyX509Svid(leafChain(root, { corruptSignature: true }), bundle), 'ERR_X509_BAD_SIGNATURE'));

  it('expired leaf / not-yet-valid leaf', () => {
    const chain = [makeTestSvid(root, '/a', { ttlSeconds: 60 }).certificate];
    expectCode(() => verifyX509Svid(chain, bundle, { now: new Date(Date.now() + 3_600_000) }), 'ERR_X509_EXPIRED', /leaf expired/);
    expectCode(() => verifyX509Svid(chain, bundle, { now: new Date(Date.now() - 3_600_000) }), 'ERR_X509_NOT_YET_VALID', /leaf is not valid until/);
  });

  it('expired intermediate', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, subject: { commonName: 'old' }, notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_EXPIRED', /intermediate .* expired/);
  });

  it('not-yet-valid intermediate', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, subject: { commonName: 'future' }, notBefore: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 7_200_000) });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_NOT_YET_VALID');
  });

  it('expired bundle authority', () => {
    const { certificate } = makeTestSvid(root);
    expectCode(() => verifyX509Svid([certificate], bundle, { now: new Date(Date.now() + 2 * 86_400_000) }), 'ERR_X509_EXPIRED');
  });

  it('leaf outside the CA URI name constraints', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, subject: { commonName: 'nc' }, nameConstraints: { permitted: ['other.org'] } });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_NAME_CONSTRAINTS', /outside the permitted URI subtrees/);
  });

  it('.example.org does not permit example.org itself; excluded subtrees apply', () => {
    const inter = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, subject: { commonName: 'nc2' }, nameConstraints: { permitted: ['.example.org'] } });
    const leaf = makeHostileCert({ issuer: { certificate: inter.certificate, privateKey: inter.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf.certificate, inter.certificate], bundle), 'ERR_X509_NAME_CONSTRAINTS');
    const inter2 = makeHostileCert({ issuer: { certificate: root.certificate, privateKey: root.key.privateKey }, isCA: true, subject: { commonName: 'nc3' }, nameConstraints: { permitted: [], excluded: ['example.org'] } });
    const leaf2 = makeHostileCert({ issuer: { certificate: inter2.certificate, privateKey: inter2.key.privateKey }, uris: ['spiffe://example.org/a'] });
    expectCode(() => verifyX509Svid([leaf2.certificate, inter2.certificate], bundle), 'ERR_X509_NAME_CONSTRAINTS', /excluded/);
  });

  it('name constraints on the bundle authority itself are honoured', () => {
    const r = makeTestCa({ trustDomain: 'example.org', nameConstraints: true });
    const leaf = makeHostileCert({ issuer: { certificate: r.certificate, privateKey: r.key.privateKey }, uris: ['spiffe://example.org/ok'] });
    expect(verifyX509Svid([leaf.certificate], { trustDomain: r.trustDomain, x509Authorities: [r.certificate] }).spiffeId.path).toBe('/ok');
  });

  it('pathLenConstraint 0 forbids an intermediate below it', () => {
    const r = makeTestCa({ pathLenConstraint: 0 });
    const inter = makeTestCa({ upstream: r });
    const { certificate } = makeTestSvid(inter);
    expectCode(() => verifyX509Svid([certificate, inter.certificate], { trustDomain: r.trustDomain, x509Authorities: [r.certificate] }), 'ERR_X509_CHAIN_INVALID', /pathLenConstraint 0/);
  });

  it('a chain of look-alike CA certificates is given up on after a bounded number of candidate issuers', () => {
    // Eight CA certificates sharing one name and key all "issue" each other, so an
    // unbounded depth-first search tries every ordering of them (8! paths, ~1 s; 12 of
    // them would take hours and freeze the process verifying a TLS peer).
    const k = generateKeyPair('ec-p256');
    const lookalikes = Array.from({ length: 8 }, () => makeHostileCert({ key: k, isCA: true, subject: { commonName: 'look-alike' } }).certificate);
    const leaf = makeHostileCert({ issuer: { certificate: lookalikes[0] as Buffer, privateKey: k.privateKey }, uris: ['spiffe://example.org/a'] }).certificate;
    expectCode(() => verifyX509Svid([leaf, ...lookalikes], bundle), 'ERR_X509_CHAIN_INVALID', /gave up building a path after 100 candidate issuers/);
    // A real chain padded with the same look-alikes still verifies.
    const inter = makeTestCa({ upstream: root });
    const good = makeTestSvid(inter).certificate;
    expect(verifyX509Svid([good, ...lookalikes, inter.certificate], bundle).spiffeId.path).toBe('/workload');
  });

  it('negative serial', () => expectCode(() => verifyX509Svid(leafChain(root, { serial: Buffer.from([0xff, 0x01]) }), bundle), 'ERR_X509_MALFORMED', /negative/));
  it('zero serial and non-minimal serial', () => {
    expectCode(() => verifyX509Svid(leafChain(root, { serial: Buffer.from([0]) }), bundle), 'ERR_X509_MALFORMED', /zero/);
    expectCode(() => verifyX509Svid(leafChain(root, { serial: Buffer.from([0, 1]) }), bundle), 'ERR_X509_MALFORMED', /minimal/);
  });

  it('truncated DER, garbage and trailing bytes', () => {
    const good = makeTestSvid(root).certificate;
    for (let cut = 1; cut < good.length; cut += 7) {
      expectCode(() => verifyX509Svid([good.subarray(0, cut)], bundle), 'ERR_X509_MALFORMED');
    }
    expectCode(() => verifyX509Svid([Buffer.from('not a certificate at all')], bundle), 'ERR_X509_MALFORMED');
    expectCode(() => verifyX509Svid([Buffer.concat([good, Buffer.from([0])])], bundle), 'ERR_X509_MALFORMED', /trailing/);
    expectCode(() => verifyX509Svid([], bundle), 'ERR_X509_MALFORMED');
    expectCode(() => verifyX509Svid([good], { trustDomain: bundle.trustDomain, x509Authorities: [Buffer.from([0x30, 0x00])] }), 'ERR_X509_MALFORMED', /bundle authority/);
  });

  it('random bit flips never crash: each either verifies or fails with a MayflyError', () => {
    const good = makeTestSvid(root).certificate;
    let seed = 12345;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let i = 0; i < 400; i++) {
      const bad = Buffer.from(good);
      const pos = rnd(bad.length);
      bad[pos] = (bad[pos] as number) ^ (1 << rnd(8));
      try {
        verifyX509Svid([bad], bundle);
      } catch (e) {
        expect(isMayflyError(e), `flip at ${pos}: ${(e as Error).message}`).toBe(true);
      }
    }
  });
});

describe('parseX509Svid', () => {
  const inter = makeTestCa({ upstream: root });
  const svid = makeTestSvid(inter, '/api', { keyType: 'rsa-2048' });

  it('reads concatenated DER and the PKCS#8 key', () => {
    const out = parseX509Svid(concatDer([svid.certificate, inter.certificate]), exportPkcs8Der(svid.key.privateKey));
    expect(out.spiffeId.equals(SpiffeId.parse('spiffe://example.org/api'))).toBe(true);
    expect(out.certificates).toEqual([svid.certificate, inter.certificate]);
    expect(out.privateKey?.asymmetricKeyType).toBe('rsa');
  });

  it('rejects a key that is not the leaf key', () =>
    expectCode(() => parseX509Svid([svid.certificate], exportPkcs8Der(generateKeyPair('ec-p256').privateKey)), 'ERR_X509_KEY_MISMATCH'));

  it('rejects a non-CA after the leaf', () => {
    const other = makeTestSvid(root).certificate;
    expectCode(() => parseX509Svid([svid.certificate, other]), 'ERR_X509_CHAIN_INVALID');
  });

  it('rejects junk after the last certificate', () =>
    expectCode(() => parseX509Svid(Buffer.concat([svid.certificate, Buffer.from([0x30, 0x05, 0x00])])), 'ERR_X509_MALFORMED'));
});

it('TrustDomain of the test root', () => expect(root.trustDomain.equals(TrustDomain.parse('example.org'))).toBe(true));
