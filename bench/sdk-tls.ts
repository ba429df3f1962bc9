/**
 * @module bench/sdk-tls
 *
 * TLS handshakes per second with the SDK's SPIFFE verification (`createSpiffeTlsServer`,
 * `createClientTlsOptions`: secure context from a source, `verifyPeer` on both ends, the
 * server's guard) as a ratio to plain `node:tls` with the same certificates and a static CA
 * (`ca`, `requestCert`, `rejectUnauthorized`, hostname check off), in the same run. Both
 * sides refuse session resumption (the SDK never resumes), so every handshake is a full one.
 * Sequential handshakes over loopback, client and server in this process; rounds interleave
 * the two so a noisy neighbour slows both alike; each figure is the median of the rounds.
 */
import { constants as cryptoConstants } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Bundle, BundleSet } from '../src/spiffe/bundle/index.js';
import { SpiffeId, TrustDomain } from '../src/spiffe/id.js';
import { generateKeyPair } from '../src/spiffe/keys.js';
import { createCaCertificate, X509SvidMinter } from '../src/spiffe/x509/index.js';
import { pemEncodeCertificates } from '../src/spiffe/x509/pem.js';
import { x509SvidPem, type X509Svid } from '../src/sdk/model.js';
import { authorizeId, createClientTlsOptions, createSpiffeTlsServer, type X509SvidSourceLike } from '../src/sdk/tls.js';

/** A result line (the shape bench/index's `BenchLine` takes). */
export interface SdkTlsBenchLine {
  name: string;
  perSecond: number;
  baseline: number;
  ratio: number;
  baselineName: string;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function handshakes(port: number, options: () => tls.ConnectionOptions, ms: number): Promise<number> {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ...options() }, () => {
        socket.end();
        resolve();
      });
      socket.on('error', reject);
    });
    n++;
  }
  return (n * 1000) / (performance.now() - start);
}

export async function benchSdkTls(opts: { roundMs?: number; rounds?: number } = {}): Promise<SdkTlsBenchLine[]> {
  const roundMs = opts.roundMs ?? 1000;
  const rounds = opts.rounds ?? 3;
  const td = TrustDomain.parse('bench.example');
  const caKey = generateKeyPair('ec-p256');
  const caCertificate = createCaCertificate({ trustDomain: td, key: caKey, ttlSeconds: 86_400 });
  const minter = new X509SvidMinter({ caCertificate, caPrivateKey: caKey.privateKey });
  const svid = (path: string): X509Svid => {
    const key = generateKeyPair('ec-p256');
    const id = SpiffeId.parse(`spiffe://bench.example${path}`);
    return { id, certificates: [minter.mint({ spiffeId: id, publicKey: key.publicKey, ttlSeconds: 3600 })], privateKey: key.privateKey, keyType: 'ec-p256', hint: '', expiresAt: new Date(Date.now() + 3_600_000) };
  };
  const bundles = new BundleSet({ bundles: [new Bundle({ trustDomain: td, x509Authorities: [caCertificate] })] });
  const serverSvid = svid('/api');
  const clientSvid = svid('/web');
  const source = (s: X509Svid): X509SvidSourceLike => ({ getX509Svid: () => s, getX509Bundles: () => bundles });
  const ca = pemEncodeCertificates([caCertificate]);
  const pem = (s: X509Svid): { cert: string; key: string } => ({ cert: x509SvidPem(s).certificates, key: x509SvidPem(s).privateKey });

  const plain = tls.createServer({ ...pem(serverSvid), ca, requestCert: true, rejectUnauthorized: true, secureOptions: cryptoConstants.SSL_OP_NO_TICKET }, (s) => s.end());
  const sdk = createSpiffeTlsServer(source(serverSvid), { authorize: authorizeId('spiffe://bench.example/web'), log: () => undefined }, (s) => s.end());
  const servers = [plain, sdk];
  for (const s of servers) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s: tls.Server): number => (s.address() as AddressInfo).port;
  const plainClient = { ...pem(clientSvid), ca, checkServerIdentity: () => undefined };
  const sdkClient = createClientTlsOptions(source(clientSvid), { authorize: authorizeId('spiffe://bench.example/api') });
  const { agent: _agent, ...sdkConnect } = sdkClient;
  const cases: Array<[string, () => Promise<number>]> = [
    ['plain node:tls', () => handshakes(port(plain), () => plainClient, roundMs)],
    ['sdk', () => handshakes(port(sdk), () => sdkConnect, roundMs)],
  ];
  try {
    await handshakes(port(plain), () => plainClient, 200); // warm up
    await handshakes(port(sdk), () => sdkConnect, 200);
    const samples: number[][] = [[], []];
    for (let r = 0; r < rounds; r++) for (const [i, [, run]] of cases.entries()) samples[i]!.push(await run());
    const baseline = median(samples[0]!);
    const perSecond = median(samples[1]!);
    return [{ name: 'sdk mTLS handshakes (SPIFFE verification both ends, authorizeId)', perSecond, baseline, ratio: perSecond / baseline, baselineName: 'plain node:tls mTLS, same certs, static CA' }];
  } finally {
    for (const s of servers) await new Promise((r) => s.close(r));
  }
}
