import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportPkcs8Pem, generateKeyPair } from '../spiffe/keys.js';
import { makeHostileCert } from '../spiffe/x509/testing.js';
import { parseCertificate, pemEncodeCertificates, verifyX509Svid } from '../spiffe/x509/index.js';
import type { ServerCaConfig } from './server-ca.js';
import { TestClock, writeOperatorCa } from './testing.js';
import { loadDiskUpstreamAuthority } from './upstream.js';
import { caTempDir, codeOf, HOUR, makeCaIn, mint, TD, verifies, type Made } from './testdata/server-ca-harness.js';

const tmp = caTempDir();
const makeCa = (clock: TestClock, extra: Partial<ServerCaConfig> = {}, dataDir = join(tmp.path, 'data')): Promise<Made> => makeCaIn(dataDir, clock, extra);

describe('ServerCa: journal recovery', () => {
  it('drops a journal entry whose key is missing, with a warning, and carries on', async () => {
    const clock = new TestClock();
    const first = await makeCa(clock);
    const prepared = await first.ca.prepareAuthority('x509');
    const active = first.ca.authorityState('x509').active!;
    const seq = first.ca.sequence;
    rmSync(join(tmp.path, 'data', 'keys', prepared.keyId + '.pem'));

    const { ca, log } = await makeCa(clock);
    expect(ca.authorityState('x509').active!.id).toBe(active.id);
    expect(ca.authorityState('x509').prepared).toBeUndefined();
    expect(ca.getBundle().x509Authorities).toHaveLength(1);
    expect(ca.sequence).toBe(seq + 1);
    const warn = log.lines.find((l) => l.level === 'warn');
    expect(warn?.message).toMatch(/key manager does not have/);
    expect(warn?.fields.authorityId).toBe(prepared.id);

    // the active key missing: a new active authority replaces it
    rmSync(join(tmp.path, 'data', 'keys', active.keyId + '.pem'));
    const third = await makeCa(clock);
    expect(third.ca.authorityState('x509').active!.id).not.toBe(active.id);
    expect(verifies(mint(third.ca).certificates, third.ca, clock.now())).toBe(true);
    expect(third.ca.sequence).toBe(seq + 2);
  });

  it('refuses a corrupt journal or one of another trust domain instead of minting a new CA', async () => {
    const clock = new TestClock();
    await makeCa(clock);
    const path = join(tmp.path, 'data', 'ca-journal.json');
    const good = readFileSync(path);
    writeFileSync(path, '{"version":1', { mode: 0o600 });
    expect(await codeOf(makeCa(clock))).toBe('ERR_CA_JOURNAL_INVALID');
    writeFileSync(path, good, { mode: 0o600 });
    expect(await codeOf(makeCa(clock, { trustDomain: 'other.org' }))).toBe('ERR_CA_CONFIG');
  });
});

describe('ServerCa: upstream authority from disk', () => {
  function opensslVerify(root: Buffer, chain: Buffer[], at: Date): string {
    writeFileSync(join(tmp.path, 'ossl-root.pem'), pemEncodeCertificates([root]));
    writeFileSync(join(tmp.path, 'ossl-leaf.pem'), pemEncodeCertificates([chain[0]!]));
    const untrusted: string[] = [];
    if (chain.length > 1) {
      writeFileSync(join(tmp.path, 'ossl-untrusted.pem'), pemEncodeCertificates(chain.slice(1)));
      untrusted.push('-untrusted', join(tmp.path, 'ossl-untrusted.pem'));
    }
    return execFileSync('openssl', [
      'verify', '-x509_strict', '-attime', String(Math.floor(at.getTime() / 1000)),
      '-CAfile', join(tmp.path, 'ossl-root.pem'), ...untrusted, join(tmp.path, 'ossl-leaf.pem'),
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  it('with an operator root + intermediate: chain is leaf, Mayfly CA, operator intermediate; bundle holds only the root', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(tmp.path, { now: new Date(clock.ms - 3600_000), withIntermediate: true });
    const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, bundleFile: op.bundleFile, now: clock.now });
    expect(upstream.roots).toHaveLength(1);
    expect(upstream.intermediates.map((c) => c.equals(op.intermediate!))).toEqual([true]);
    const { ca } = await makeCa(clock, { upstream });

    const bundle = ca.getBundle();
    expect(bundle.x509Authorities).toHaveLength(1);
    expect(bundle.x509Authorities[0]!.equals(op.root)).toBe(true);
    const active = ca.authorityState('x509').active!;
    expect(active.upstreamAuthorityId).toBe(parseCertificate(op.intermediate!).subjectKeyId!.toString('hex'));

    const svid = mint(ca);
    expect(svid.certificates).toHaveLength(3);
    expect(svid.certificates[1]!.equals(active.certificate!)).toBe(true);
    expect(svid.certificates[2]!.equals(op.intermediate!)).toBe(true);
    // the Mayfly CA's SKI is the leaf's AKI; the operator intermediate's SKI is the Mayfly CA's AKI
    expect(parseCertificate(svid.certificates[0]!).authorityKeyId!.toString('hex')).toBe(active.id);
    expect(parseCertificate(active.certificate!).authorityKeyId!.equals(parseCertificate(op.intermediate!).subjectKeyId!)).toBe(true);
    // a relying party holding only the operator root accepts it
    verifyX509Svid(svid.certificates, { trustDomain: TD, x509Authorities: [op.root] }, { now: clock.now() });
    expect(opensslVerify(op.root, svid.certificates, clock.now())).toMatch(/OK/);
    // and without the operator intermediate it would not: the chain is needed as handed out
    expect(() => verifyX509Svid(svid.certificates.slice(0, 2), { trustDomain: TD, x509Authorities: [op.root] }, { now: clock.now() })).toThrow();
  });

  it('certFile holding intermediate + root: the root is published, never put in the chain', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(tmp.path, { now: new Date(clock.ms - 3600_000), withIntermediate: true });
    // certFile: the operator intermediate followed by the root (a common layout)
    writeFileSync(op.certFile, pemEncodeCertificates([op.intermediate!, op.root]));
    const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now });
    expect(upstream.roots.map((r) => r.equals(op.root))).toEqual([true]);
    expect(upstream.intermediates.map((c) => c.equals(op.intermediate!))).toEqual([true]);
    const { ca } = await makeCa(clock, { upstream });
    const svid = mint(ca);
    expect(svid.certificates).toHaveLength(3);
    expect(svid.certificates[2]!.equals(op.intermediate!)).toBe(true);
    expect(svid.certificates.some((c) => c.equals(op.root))).toBe(false); // never the root
    verifyX509Svid(svid.certificates, { trustDomain: TD, x509Authorities: [op.root] }, { now: clock.now() });
    expect(opensslVerify(op.root, svid.certificates, clock.now())).toMatch(/OK/);
  });

  it('upstream root directly: chain is leaf + Mayfly intermediate; X.509 taint/revoke refused; rotation keeps the bundle', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(tmp.path, { now: new Date(clock.ms - 3600_000) });
    const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now });
    const { ca } = await makeCa(clock, { upstream });
    expect(mint(ca).certificates).toHaveLength(2);
    expect(opensslVerify(op.root, mint(ca).certificates, clock.now())).toMatch(/OK/);

    const a = ca.authorityState('x509').active!;
    clock.advance(19 * HOUR + 30 * 60);
    await ca.tick();
    expect(ca.authorityState('x509').prepared).toBeDefined();
    expect(ca.getBundle().x509Authorities).toHaveLength(1); // preparing an intermediate does not touch the bundle
    const first = mint(ca);
    clock.advance(30 * 60);
    await ca.tick();
    expect(ca.authorityState('x509').active!.id).not.toBe(a.id);
    expect(ca.getBundle().x509Authorities).toHaveLength(1); // still only the operator root
    const second = mint(ca);
    verifyX509Svid(first.certificates, ca.getBundle(), { now: clock.now() });
    verifyX509Svid(second.certificates, ca.getBundle(), { now: clock.now() });
    expect(opensslVerify(op.root, second.certificates, clock.now())).toMatch(/OK/);
    expect(await codeOf(ca.taintAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE');
    expect(await codeOf(ca.revokeAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE');
  });

  it('self-signed mode also passes openssl verify -x509_strict', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const svid = mint(ca);
    expect(opensslVerify(ca.getBundle().x509Authorities[0]!, svid.certificates, clock.now())).toMatch(/OK/);
  });

  it('refuses an upstream key that does not match, a non-CA cert, and a key file others can read', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(tmp.path, { now: new Date(clock.ms - 3600_000) });
    const other = writeOperatorCa(join(tmp.path, 'data'), { now: new Date(clock.ms - 3600_000) });
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: other.keyFile, now: clock.now })).toThrow(/does not belong/);
    chmodSync(op.keyFile, 0o644);
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now })).toThrow(/chmod 600/);
    chmodSync(op.keyFile, 0o600);
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, bundleFile: other.bundleFile, now: clock.now })).toThrow(/does not lead to any root/);
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: () => new Date(clock.ms + 30 * 86400_000) })).toThrow(/valid from/);
    expect(loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now }).roots).toHaveLength(1);
  });

  it('refuses an upstream certificate that is not a CA, or a CA without keyUsage keyCertSign', () => {
    const clock = new TestClock();
    const cases: Array<[string, Parameters<typeof makeHostileCert>[0]]> = [
      ['not a CA', { isCA: false, keyUsage: [0] }],
      // Our verifier (like go-spiffe) requires keyCertSign: without keyUsage nothing minted under it verifies.
      ['CA without keyUsage', { isCA: true, keyUsage: null }],
      ['CA without keyCertSign', { isCA: true, keyUsage: [0] }],
    ];
    for (const [name, opts] of cases) {
      const key = generateKeyPair('ec-p256');
      const { certificate } = makeHostileCert({ ...opts, key, subject: { commonName: `upstream ${name}` }, notBefore: new Date(clock.ms - 3600_000), notAfter: new Date(clock.ms + 86400_000) });
      const certFile = join(tmp.path, 'bad-upstream.pem');
      const keyFile = join(tmp.path, 'bad-upstream.key');
      writeFileSync(certFile, pemEncodeCertificates([certificate]));
      writeFileSync(keyFile, exportPkcs8Pem(key.privateKey), { mode: 0o600 });
      let code: string | undefined;
      try {
        loadDiskUpstreamAuthority({ certFile, keyFile, now: clock.now });
      } catch (e) {
        code = (e as { code?: string }).code;
      }
      expect(code, name).toBe('ERR_CA_UPSTREAM_INVALID');
    }
  });
});
