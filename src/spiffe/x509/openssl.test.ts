/**
 * OpenSSL (3.x, strict mode) judges our CA certificates and fast-path leaves: a self-signed
 * root, an intermediate under an upstream, EC and RSA leaves, for TLS client and server use.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SpiffeId } from '../id.js';
import { generateKeyPair, type KeyType } from '../keys.js';
import { mintX509SvidSlow, pemEncodeCertificates } from './index.js';
import { makeHostileLeaf, makeTestCa } from './testing.js';

const dir = mkdtempSync(join(tmpdir(), 'mayfly-openssl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, certs: Buffer[]): string {
  const p = join(dir, name);
  writeFileSync(p, pemEncodeCertificates(certs));
  return p;
}

function opensslVerify(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', ['verify', '-x509_strict', ...args], { encoding: 'utf8' });
  return { ok: r.status === 0 && /: OK\s*$/.test(r.stdout), out: r.stdout + r.stderr };
}

describe('openssl verify -x509_strict', () => {
  it('openssl is installed', () => {
    expect(execFileSync('openssl', ['version'], { encoding: 'utf8' })).toMatch(/OpenSSL 3\./);
  });

  const root = makeTestCa({ keyType: 'ec-p384', nameConstraints: true });
  const upstreamRoot = makeTestCa({ keyType: 'rsa-2048', commonName: 'Upstream root' });
  const inter = makeTestCa({ upstream: upstreamRoot, keyType: 'ec-p256', nameConstraints: true });
  const rootPem = write('root.pem', [root.certificate]);
  const upstreamPem = write('upstream.pem', [upstreamRoot.certificate]);
  const interPem = write('inter.pem', [inter.certificate]);

  const cases: Array<{ name: string; ca: typeof root; leafType: KeyType; trust: string; untrusted?: string }> = [
    { name: 'EC leaf under self-signed P-384 root', ca: root, leafType: 'ec-p256', trust: rootPem },
    { name: 'RSA leaf under self-signed P-384 root', ca: root, leafType: 'rsa-2048', trust: rootPem },
    { name: 'EC leaf under intermediate under RSA upstream', ca: inter, leafType: 'ec-p384', trust: upstreamPem, untrusted: interPem },
    { name: 'RSA leaf under intermediate under RSA upstream', ca: inter, leafType: 'rsa-2048', trust: upstreamPem, untrusted: interPem },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const key = generateKeyPair(c.leafType);
      const leaf = c.ca.minter.mint({ spiffeId: SpiffeId.parse(`spiffe://${c.ca.trustDomain.name}/ns/default/sa/web`), publicKey: key.publicKey, ttlSeconds: 3600, dnsNames: ['web.example.org'] });
      const leafPem = write(`leaf-${c.leafType}-${c.ca === root ? 'root' : 'inter'}.pem`, [leaf]);
      const base = ['-CAfile', c.trust, ...(c.untrusted ? ['-untrusted', c.untrusted] : [])];
      for (const purpose of [[], ['-purpose', 'sslclient'], ['-purpose', 'sslserver']]) {
        const r = opensslVerify([...base, ...purpose, leafPem]);
        expect(r.ok, `${purpose.join(' ')}: ${r.out}`).toBe(true);
      }
    });
  }

  it('slow-path leaf also verifies', () => {
    const key = generateKeyPair('ec-p256');
    const leaf = mintX509SvidSlow({ spiffeId: SpiffeId.parse('spiffe://example.org/slow'), publicKey: key.publicKey, ttlSeconds: 600, caCertificate: root.certificate, caPrivateKey: root.key.privateKey });
    expect(opensslVerify(['-CAfile', rootPem, write('slow.pem', [leaf])]).ok).toBe(true);
  });

  it('openssl agrees: a leaf outside the root name constraints is rejected', () => {
    const leaf = makeHostileLeaf(root, { uris: ['spiffe://evil.org/x'] }).certificate;
    const r = opensslVerify(['-CAfile', rootPem, write('evil.pem', [leaf])]);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/permitted subtree violation/);
  });

  it('openssl agrees: intermediate missing from the chain fails', () => {
    const key = generateKeyPair('ec-p256');
    const leaf = inter.minter.mint({ spiffeId: SpiffeId.parse('spiffe://example.org/x'), publicKey: key.publicKey, ttlSeconds: 60 });
    expect(opensslVerify(['-CAfile', upstreamPem, write('orphan.pem', [leaf])]).ok).toBe(false);
  });
});
