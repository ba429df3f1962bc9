/**
 * @module bench/bundle-endpoint-proc
 *
 * The two servers of the bundle endpoint benchmark (bench/bundle-endpoint), in their own
 * process so the load generator does not share their event loop: Mayfly's bundle endpoint
 * (federation/bundle-endpoint, its rate limiter on but set out of reach) and, as the
 * baseline, a plain `node:https` server answering every request with the same bytes, the
 * same certificate and key. Started with `fork`; sends `{ type: 'ready', ours, plain }`
 * (ports), stops on `{ type: 'stop' }`.
 */
import { createServer } from 'node:https';
import { Bundle } from '../src/spiffe/bundle/index.js';
import { SpiffeId, TrustDomain } from '../src/spiffe/id.js';
import { exportPkcs8Pem, generateKeyPair } from '../src/spiffe/keys.js';
import { createCaCertificate } from '../src/spiffe/x509/ca.js';
import { X509SvidMinter } from '../src/spiffe/x509/minter.js';
import { pemEncodeCertificates } from '../src/spiffe/x509/pem.js';
import { BundleEndpoint } from '../src/federation/bundle-endpoint.js';

async function main(): Promise<void> {
  const td = TrustDomain.parse('bench.example');
  const caKey = generateKeyPair('ec-p256');
  const caCert = createCaCertificate({ trustDomain: td, key: caKey, ttlSeconds: 86_400, subject: { commonName: 'bench CA' } });
  const leafKey = generateKeyPair('ec-p256');
  const leaf = new X509SvidMinter({ caCertificate: caCert, caPrivateKey: caKey.privateKey }).mint({ spiffeId: SpiffeId.parse('spiffe://bench.example/spire/server'), publicKey: leafKey.publicKey, ttlSeconds: 3600 });
  const identity = { certPem: pemEncodeCertificates([leaf]), keyPem: exportPkcs8Pem(leafKey.privateKey) };
  const jwtKey = generateKeyPair('ec-p256');
  const bundle = new Bundle({ trustDomain: td, x509Authorities: [caCert], jwtAuthorities: [['k1', jwtKey.publicKey]], sequence: 1, refreshHintSeconds: 300 });

  const ours = new BundleEndpoint({
    host: '127.0.0.1',
    port: 0,
    source: { bundle: () => bundle },
    tls: { current: () => identity, onChange: () => () => {} },
    limits: { rate: { perSecond: 1e9, burst: 1e9 }, maxConnections: 1024 },
  });
  await ours.start();
  const body = ours.response().body;
  const plain = createServer({ cert: identity.certPem, key: identity.keyPem, keepAliveTimeout: 5000 }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  const addr = plain.address();
  process.send?.({ type: 'ready', ours: ours.port, plain: typeof addr === 'object' && addr !== null ? addr.port : 0 });
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'stop') return;
    plain.closeAllConnections();
    plain.close();
    void ours.stop().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
