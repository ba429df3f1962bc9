/**
 * go-spiffe v2 judges Mayfly's X509-SVIDs: `x509svid.ParseRaw` (certificates plus PKCS#8
 * key, exactly as the Workload API hands them over) and `x509svid.Verify` against the
 * trust domain's X.509 bundle accept leaves from both mint paths, for every CA and leaf
 * key type, under a self-signed CA and under an upstream root; and they refuse leaves
 * from the wrong trust domain, the wrong key, a broken chain or past their expiry.
 * `spiffebundle.Parse` reads our full bundle document (X.509 and JWT authorities).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyObject } from 'node:crypto';
import { SpiffeId, TrustDomain } from '../../src/spiffe/id.js';
import { exportPkcs8Der, generateKeyPair, KEY_TYPES, type KeyPair, type KeyType } from '../../src/spiffe/keys.js';
import { concatDer, createCaCertificate, mintX509SvidSlow, X509SvidMinter, type MintRequest } from '../../src/spiffe/x509/index.js';
import { Bundle } from '../../src/spiffe/bundle/index.js';
import { GoSpiffeJudge, type BundleVerdict, type X509Verdict } from './go-spiffe/judge.js';

const td = TrustDomain.parse('example.org');
const otherTd = TrustDomain.parse('other.org');
const workload = SpiffeId.parse('spiffe://example.org/ns/prod/sa/web');
const HOUR = 3600;

// One key per type, reused across roles: key generation (RSA especially) is the slow part.
const caKeys = new Map<KeyType, KeyPair>(KEY_TYPES.map((t) => [t, generateKeyPair(t)]));
const leafKeys = new Map<KeyType, KeyPair>(KEY_TYPES.map((t) => [t, generateKeyPair(t)]));
function pair(map: Map<KeyType, KeyPair>, t: KeyType): KeyPair {
  const p = map.get(t);
  if (!p) throw new Error(`no key of type ${t}`);
  return p;
}

interface Ca {
  certificate: Buffer;
  privateKey: KeyObject;
}

function selfSignedCa(trustDomain: TrustDomain, key: KeyPair): Ca {
  return { certificate: createCaCertificate({ trustDomain, key, ttlSeconds: 24 * HOUR }), privateKey: key.privateKey };
}

type MintPath = 'fast' | 'slow';
function mint(path: MintPath, ca: Ca, req: MintRequest): Buffer {
  return path === 'fast'
    ? new X509SvidMinter({ caCertificate: ca.certificate, caPrivateKey: ca.privateKey }).mint(req)
    : mintX509SvidSlow({ ...req, caCertificate: ca.certificate, caPrivateKey: ca.privateKey });
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

let judge: GoSpiffeJudge;
beforeAll(async () => {
  judge = await GoSpiffeJudge.start();
});
afterAll(async () => {
  await judge?.close();
});

function judgeX509(opts: { chain: Uint8Array[]; key?: KeyObject; roots: Uint8Array[]; trustDomain?: TrustDomain; now?: Date }): Promise<X509Verdict> {
  return judge.ask<X509Verdict>({
    op: 'x509',
    svid: b64(concatDer(opts.chain)),
    ...(opts.key ? { key: b64(exportPkcs8Der(opts.key)) } : {}),
    trustDomain: (opts.trustDomain ?? td).name,
    authorities: b64(concatDer(opts.roots)),
    ...(opts.now ? { now: opts.now.toISOString().replace(/\.\d{3}Z$/, 'Z') } : {}),
  });
}

const ACCEPTED = { ok: true, spiffeId: workload.toString(), chains: 1 };

describe('x509svid.ParseRaw + Verify accept Mayfly X509-SVIDs under a self-signed CA', () => {
  const cases = (['fast', 'slow'] as const).flatMap((path) =>
    KEY_TYPES.flatMap((caType) => KEY_TYPES.map((leafType) => ({ path, caType, leafType }))),
  );
  it.each(cases)('$path path, CA $caType, leaf $leafType', async ({ path, caType, leafType }) => {
    const ca = selfSignedCa(td, pair(caKeys, caType));
    const leafKey = pair(leafKeys, leafType);
    const leaf = mint(path, ca, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    expect(await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [ca.certificate] })).toEqual(ACCEPTED);
  });

  it.each(['fast', 'slow'] as const)('%s path with DNS SANs and a subject', async (path) => {
    const ca = selfSignedCa(td, pair(caKeys, 'ec-p256'));
    const leafKey = pair(leafKeys, 'ec-p256');
    const leaf = mint(path, ca, {
      spiffeId: workload,
      publicKey: leafKey.publicKey,
      ttlSeconds: HOUR,
      dnsNames: ['web.example.org', 'localhost', '*.svc.example.org'],
      subject: { commonName: 'web', organization: 'Mayfly', country: 'NL' },
    });
    expect(await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [ca.certificate] })).toEqual(ACCEPTED);
  });

  it('without the key (Verify alone, as a TLS peer would check it)', async () => {
    const ca = selfSignedCa(td, pair(caKeys, 'ec-p384'));
    const leaf = mint('fast', ca, { spiffeId: workload, publicKey: pair(leafKeys, 'rsa-2048').publicKey, ttlSeconds: HOUR });
    expect(await judgeX509({ chain: [leaf], roots: [ca.certificate] })).toEqual(ACCEPTED);
  });
});

describe('x509svid.ParseRaw + Verify accept chains under an upstream root', () => {
  const cases = (['fast', 'slow'] as const).flatMap((path) =>
    KEY_TYPES.map((caType) => ({ path, rootType: caType === 'rsa-2048' ? ('ec-p256' as const) : ('rsa-2048' as const), caType })),
  );
  it.each(cases)('$path path, root $rootType, intermediate $caType', async ({ path, rootType, caType }) => {
    const root = selfSignedCa(td, pair(leafKeys, rootType));
    const intermediateKey = pair(caKeys, caType);
    const intermediate: Ca = {
      certificate: createCaCertificate({ trustDomain: td, key: intermediateKey, ttlSeconds: 12 * HOUR, upstream: root }),
      privateKey: intermediateKey.privateKey,
    };
    const leafKey = pair(leafKeys, 'ec-p256');
    const leaf = mint(path, intermediate, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    expect(await judgeX509({ chain: [leaf, intermediate.certificate], key: leafKey.privateKey, roots: [root.certificate] })).toEqual(ACCEPTED);
  });

  it('with URI name constraints on the intermediate', async () => {
    const root = selfSignedCa(td, pair(caKeys, 'ec-p384'));
    const intermediateKey = pair(caKeys, 'ec-p256');
    const intermediate: Ca = {
      certificate: createCaCertificate({ trustDomain: td, key: intermediateKey, ttlSeconds: 12 * HOUR, upstream: root, nameConstraints: true }),
      privateKey: intermediateKey.privateKey,
    };
    const leafKey = pair(leafKeys, 'ec-p256');
    const leaf = mint('fast', intermediate, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    expect(await judgeX509({ chain: [leaf, intermediate.certificate], key: leafKey.privateKey, roots: [root.certificate] })).toEqual(ACCEPTED);
  });

  it('and refuse the chain when the intermediate is left out', async () => {
    const root = selfSignedCa(td, pair(caKeys, 'ec-p256'));
    const intermediateKey = pair(caKeys, 'ec-p384');
    const intermediate: Ca = {
      certificate: createCaCertificate({ trustDomain: td, key: intermediateKey, ttlSeconds: 12 * HOUR, upstream: root }),
      privateKey: intermediateKey.privateKey,
    };
    const leafKey = pair(leafKeys, 'ec-p256');
    const leaf = mint('fast', intermediate, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    expect(await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [root.certificate] })).toMatchObject({ ok: false, stage: 'verify' });
  });
});

describe('x509svid refuses', () => {
  const ca = selfSignedCa(td, pair(caKeys, 'ec-p256'));
  const leafKey = pair(leafKeys, 'ec-p256');

  it('a leaf for another trust domain (no bundle for it)', async () => {
    const foreignId = SpiffeId.parse('spiffe://other.org/ns/prod/sa/web');
    const leaf = mint('fast', ca, { spiffeId: foreignId, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    const verdict = await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [ca.certificate] });
    expect(verdict).toMatchObject({ ok: false, stage: 'verify', error: expect.stringMatching(/other\.org/) });
  });

  it("a leaf signed by another trust domain's CA", async () => {
    const foreignCa = selfSignedCa(otherTd, pair(caKeys, 'ec-p384'));
    const leaf = mint('slow', foreignCa, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    const verdict = await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [ca.certificate] });
    expect(verdict).toMatchObject({ ok: false, stage: 'verify', error: expect.stringMatching(/unknown authority|verify/) });
  });

  it('a leaf with a private key that does not match it', async () => {
    const leaf = mint('fast', ca, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: HOUR });
    const verdict = await judgeX509({ chain: [leaf], key: pair(leafKeys, 'ec-p384').privateKey, roots: [ca.certificate] });
    expect(verdict).toMatchObject({ ok: false, stage: 'parse', error: expect.stringMatching(/does not match private key/) });
  });

  it('a leaf past its expiry', async () => {
    const leaf = mint('fast', ca, { spiffeId: workload, publicKey: leafKey.publicKey, ttlSeconds: 600 });
    const later = new Date(Date.now() + 2 * HOUR * 1000);
    const verdict = await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [ca.certificate], now: later });
    expect(verdict).toMatchObject({ ok: false, stage: 'verify', error: expect.stringMatching(/expired/) });
  });

  it('a CA certificate presented as the leaf', async () => {
    const verdict = await judgeX509({ chain: [ca.certificate], key: pair(caKeys, 'ec-p256').privateKey, roots: [ca.certificate] });
    expect(verdict).toMatchObject({ ok: false, stage: 'parse' });
  });
});

describe('spiffebundle.Parse reads our full bundle document', () => {
  it('X.509 and JWT authorities, sequence and refresh hint round-trip', async () => {
    const roots = [selfSignedCa(td, pair(caKeys, 'ec-p256')), selfSignedCa(td, pair(caKeys, 'rsa-2048'))].map((c) => c.certificate);
    const bundle = new Bundle({
      trustDomain: td,
      x509Authorities: roots,
      jwtAuthorities: [
        ['jwt-a', pair(caKeys, 'ec-p384').publicKey],
        ['jwt-b', pair(leafKeys, 'rsa-2048').publicKey],
      ],
      sequence: 9_007_199_254_740_991,
      refreshHintSeconds: 120,
    });
    const verdict = await judge.ask<BundleVerdict>({ op: 'bundle', trustDomain: td.name, bundle: bundle.toJson() });
    expect(verdict.ok).toBe(true);
    if (!verdict.ok) return;
    expect(verdict.x509Authorities).toBe(2);
    expect([...verdict.jwtAuthorities].sort()).toEqual(['jwt-a', 'jwt-b']);
    expect(verdict.sequence).toBe(9_007_199_254_740_991);
    expect(verdict.refreshHintSeconds).toBe(120);

    // The bundle's roots, in Mayfly's Workload API form, anchor a leaf under the second root.
    const leafKey = pair(leafKeys, 'ec-p256');
    const leaf = mint('fast', { certificate: roots[1]!, privateKey: pair(caKeys, 'rsa-2048').privateKey }, {
      spiffeId: workload,
      publicKey: leafKey.publicKey,
      ttlSeconds: HOUR,
    });
    expect(await judgeX509({ chain: [leaf], key: leafKey.privateKey, roots: [bundle.x509AuthoritiesDer()] })).toEqual(ACCEPTED);
  });
});
