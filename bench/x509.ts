/**
 * @module bench/x509
 *
 * X.509-SVID mint rates against a raw ECDSA P-256 `crypto.sign` of a 200-byte buffer with
 * the same cached KeyObject, all on one core in the same run. Rounds interleave the
 * measurements so a noisy neighbour slows all of them alike; each figure is the median of
 * 3 rounds of ~1 s.
 *
 * The server's batch signing path is broken down the same way, per SVID on one thread:
 * the CSR check (native EC_KEY path and node:crypto path), the mint, the verification of
 * the minted SVID, and the whole `mintX509SvidsFromCsrs` item (what a worker does).
 */
import { randomBytes, sign } from 'node:crypto';
import { SpiffeId, TrustDomain } from '../src/spiffe/id.js';
import { exportSpkiDer, generateKeyPair } from '../src/spiffe/keys.js';
import { createCaCertificate, mintX509SvidSlow, verifyX509Svid, X509SvidMinter } from '../src/spiffe/x509/index.js';
import { createCsr, parseCsr } from '../src/spiffe/x509/csr.js';
import { nativeEcVerifier } from '../src/spiffe/x509/ec-native.js';
import { mintX509SvidsFromCsrs, type X509MintAuthority } from '../src/ca/mint.js';

export interface X509BenchLine {
  name: string;
  perSecond: number;
  baseline: number;
  ratio: number;
}

/** Calls `fn` for about `ms` milliseconds; returns calls per second. */
function rate(fn: () => void, ms: number): number {
  let n = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < limit) {
    for (let i = 0; i < 32; i++) fn();
    n += 32;
    elapsed = process.hrtime.bigint() - start;
  }
  return n / (Number(elapsed) / 1e9);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function benchX509(opts: { roundMs?: number; rounds?: number } = {}): Promise<X509BenchLine[]> {
  const roundMs = opts.roundMs ?? 1000;
  const rounds = opts.rounds ?? 3;
  const td = TrustDomain.parse('bench.example');
  const ca = generateKeyPair('ec-p256');
  const caCertificate = createCaCertificate({ trustDomain: td, key: ca, ttlSeconds: 86_400 });
  const minter = new X509SvidMinter({ caCertificate, caPrivateKey: ca.privateKey });
  const leaf = generateKeyPair('ec-p256');
  const leafSpki = exportSpkiDer(leaf.publicKey);
  const spiffeId = SpiffeId.parse('spiffe://bench.example/ns/default/sa/web');
  const payload = randomBytes(200);
  const csr = createCsr({ privateKey: leaf.privateKey });
  const minted = minter.mint({ spiffeId, publicKeySpki: leafSpki, ttlSeconds: 3600 });
  const bundle = { trustDomain: td, x509Authorities: [caCertificate] };
  const authority: X509MintAuthority = {
    authorityId: 'bench', trustDomain: td.name, caCertificate, caPrivateKey: ca.privateKey, intermediates: [], bundleRoots: [caCertificate], defaultTtlSeconds: 3600,
  };
  const batch = Array.from({ length: 50 }, () => ({ csr, spiffeId: spiffeId.toString(), ttlSeconds: 3600, dnsNames: [] }));
  const native = nativeEcVerifier() === undefined ? 'unavailable, node:crypto used' : `native EC_KEY via ${nativeEcVerifier()?.source}`;

  const cases: Array<[string, () => void]> = [
    ['raw ECDSA P-256 sign', () => sign('sha256', payload, ca.privateKey)],
    ['x509 mint fast (publicKeySpki)', () => minter.mint({ spiffeId, publicKeySpki: leafSpki, ttlSeconds: 3600 })],
    ['x509 mint fast (KeyObject)', () => minter.mint({ spiffeId, publicKey: leaf.publicKey, ttlSeconds: 3600 })],
    ['x509 mint slow (asn1-x509)', () => mintX509SvidSlow({ spiffeId, publicKey: leaf.publicKey, ttlSeconds: 3600, caCertificate, caPrivateKey: ca.privateKey })],
    [`server batch step: CSR check (${native})`, () => parseCsr(csr)],
    ['server batch step: CSR check (node:crypto createPublicKey + verify)', () => parseCsr(csr, { nativeEc: false })],
    ['server batch step: verify minted SVID (our verifier, signature included)', () => verifyX509Svid([minted], bundle)],
    ['server batch: whole item (CSR check + mint + verify), mintX509SvidsFromCsrs ×50', () => mintX509SvidsFromCsrs(authority, batch, new Date())],
  ];
  for (const [, fn] of cases) rate(fn, 100); // warm up the JIT
  const samples = cases.map((): number[] => []);
  for (let r = 0; r < rounds; r++) {
    cases.forEach(([, fn], i) => samples[i]?.push(rate(fn, roundMs)));
    await new Promise((resolve) => setImmediate(resolve));
  }
  const baseline = median(samples[0] as number[]);
  return cases.slice(1).map(([name], i) => {
    const perSecond = median(samples[i + 1] as number[]) * (name.endsWith('×50') ? 50 : 1);
    return { name, perSecond, baseline, ratio: perSecond / baseline };
  });
}
