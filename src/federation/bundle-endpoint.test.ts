/**
 * The bundle endpoint over real sockets and real TLS: what it serves, how it follows a new
 * bundle and a new TLS identity, and how it answers hostile clients.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { exportPkcs8Pem } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { makeTestCa, makeTestSvid, type TestCa } from '../spiffe/x509/testing.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { BundleEndpoint, type BundleSource } from './bundle-endpoint.js';
import { CertFileIdentity } from './bundle-endpoint-cert-file.js';
import type { ListenerLimits, TlsIdentity, TlsIdentityProvider } from './bundle-endpoint-http.js';

/** A TLS identity set by the test, announced to the listener like a rotating SVID. */
class SettableIdentity implements TlsIdentityProvider {
  #id: TlsIdentity;
  readonly #ls = new Set<(id: TlsIdentity) => void>();
  constructor(id: TlsIdentity) {
    this.#id = id;
  }
  set(id: TlsIdentity): void {
    this.#id = id;
    for (const l of this.#ls) l(id);
  }
  current(): TlsIdentity {
    return this.#id;
  }
  onChange(l: (id: TlsIdentity) => void): () => void {
    this.#ls.add(l);
    return () => this.#ls.delete(l);
  }
}

class SettableBundle implements BundleSource {
  constructor(public current: Bundle) {}
  bundle(): Bundle {
    return this.current;
  }
}

function svidIdentity(ca: TestCa, path = '/spire/server', dnsNames?: string[]): TlsIdentity {
  const s = makeTestSvid(ca, path, dnsNames ? { dnsNames } : {});
  return { certPem: pemEncodeCertificates([s.certificate]), keyPem: exportPkcs8Pem(s.key.privateKey) };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peer: Buffer[];
}

function get(port: number, opts: RequestOptions & { body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', rejectUnauthorized: false, agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      const sock = res.socket as TLSSocket;
      const peer: Buffer[] = [];
      let c = sock.getPeerCertificate(true);
      const seen = new Set<string>();
      while (c && c.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        peer.push(c.raw);
        c = c.issuerCertificate;
      }
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer }));
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Raw bytes over TLS; resolves with what the server answered before it closed (or `timeoutMs` passed: 'open'). */
function raw(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.write(bytes));
    let out = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(`open:${out}`);
    }, timeoutMs);
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
  });
}

const ca = makeTestCa({ trustDomain: 'mayfly.test' });
const jwtKey = makeTestCa().key;
const first = new Bundle({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate], jwtAuthorities: [['k1', jwtKey.publicKey]], sequence: 3, refreshHintSeconds: 60 });

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function endpoint(opts: { limits?: Partial<ListenerLimits>; tls?: TlsIdentityProvider; source?: BundleSource } = {}): Promise<{ ep: BundleEndpoint; source: BundleSource; tls: TlsIdentityProvider }> {
  const source = opts.source ?? new SettableBundle(first);
  const tls = opts.tls ?? new SettableIdentity(svidIdentity(ca));
  const ep = new BundleEndpoint({ host: '127.0.0.1', port: 0, source, tls, ...(opts.limits ? { limits: opts.limits } : {}) });
  await ep.start();
  cleanup.push(() => ep.stop());
  return { ep, source, tls };
}

describe('bundle endpoint: what it serves', () => {
  it('https_spiffe: GET / is the bundle JSON, over an SVID that chains to that bundle with the expected ID', async () => {
    const { ep } = await endpoint();
    const a = await get(ep.port);
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.body).toBe(first.toJson());
    const doc = JSON.parse(a.body) as { keys: Record<string, unknown>[]; spiffe_sequence: number; spiffe_refresh_hint: number };
    expect(doc.spiffe_sequence).toBe(3);
    expect(doc.spiffe_refresh_hint).toBe(60);
    expect(doc.keys.map((k) => k.use).sort()).toEqual(['jwt-svid', 'x509-svid']);
    for (const k of doc.keys) expect(Object.keys(k).filter((n) => n.startsWith('mayfly') || n === 'd')).toEqual([]);
    // The client's check of the https_spiffe profile: chain to our bundle, URI SAN as configured.
    const verified = verifyX509Svid(a.peer, first);
    expect(verified.spiffeId.toString()).toBe('spiffe://mayfly.test/spire/server');
  });

  it('https_spiffe: a chain to another trust domain fails the check (the check can fail)', async () => {
    const other = makeTestCa({ trustDomain: 'mayfly.test' });
    const { ep } = await endpoint({ tls: new SettableIdentity(svidIdentity(other)) });
    const a = await get(ep.port);
    expect(() => verifyX509Svid(a.peer, first)).toThrow();
  });

  it('serves a new bundle (and a new sequence) as soon as the source has one', async () => {
    const source = new SettableBundle(first);
    const { ep } = await endpoint({ source });
    expect(JSON.parse((await get(ep.port)).body).spiffe_sequence).toBe(3);
    const next = makeTestCa({ trustDomain: 'mayfly.test' });
    source.current = new Bundle({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate, next.certificate], sequence: 4, refreshHintSeconds: 60 });
    const doc = JSON.parse((await get(ep.port)).body) as { keys: { x5c?: string[] }[]; spiffe_sequence: number };
    expect(doc.spiffe_sequence).toBe(4);
    expect(doc.keys.map((k) => k.x5c?.[0])).toEqual([ca.certificate.toString('base64'), next.certificate.toString('base64')]);
  });

  it('serves a new TLS identity to new connections without a restart', async () => {
    const tls = new SettableIdentity(svidIdentity(ca));
    const { ep } = await endpoint({ tls });
    const before = parseCertificate((await get(ep.port)).peer[0] as Buffer).serialHex;
    tls.set(svidIdentity(ca));
    const after = parseCertificate((await get(ep.port)).peer[0] as Buffer).serialHex;
    expect(after).not.toBe(before);
  });

  it('https_web: serves the certificate files, verified by name against their CA, and reloads them when they change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-be-web-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const webCa = makeTestCa({ trustDomain: 'web.test' });
    const write = (): string => {
      const id = svidIdentity(webCa, '/web', ['localhost']);
      writeFileSync(join(dir, 'cert.pem'), id.certPem);
      writeFileSync(join(dir, 'key.pem'), id.keyPem, { mode: 0o600 });
      return id.certPem;
    };
    write();
    const files = new CertFileIdentity({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), syncIntervalSeconds: 3600 });
    files.start();
    cleanup.push(() => files.stop());
    const { ep } = await endpoint({ tls: files });
    const webGet = (): Promise<Answer> => get(ep.port, { host: 'localhost', servername: 'localhost', ca: pemEncodeCertificates([webCa.certificate]), rejectUnauthorized: true });
    const a = await webGet();
    expect(a.status).toBe(200);
    expect(a.body).toBe(first.toJson());
    const serialBefore = parseCertificate(a.peer[0] as Buffer).serialHex;
    // A wrong name fails (the client's check can fail).
    await expect(get(ep.port, { servername: 'elsewhere.test', ca: pemEncodeCertificates([webCa.certificate]), rejectUnauthorized: true })).rejects.toThrow(/altnames|hostname/i);
    write();
    files.check();
    expect(parseCertificate((await webGet()).peer[0] as Buffer).serialHex).not.toBe(serialBefore);
    // A key file others can read is refused; the previous pair stays in service.
    const errors: string[] = [];
    const strict = new CertFileIdentity({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'loose.pem'), syncIntervalSeconds: 3600, onError: (_e, m) => errors.push(m) });
    writeFileSync(join(dir, 'loose.pem'), 'x', { mode: 0o644 });
    expect(() => strict.start()).toThrow(/loose\.pem/);
  });
});

describe('bundle endpoint: hostile clients', () => {
  it('answers only GET: another method is 405 with Allow: GET', async () => {
    const { ep } = await endpoint();
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH']) {
      const a = await get(ep.port, { method });
      expect(a.status, method).toBe(405);
      expect(a.headers.allow).toBe('GET');
    }
  });

  it('answers only /: other paths, queries and traversal are 404', async () => {
    const { ep } = await endpoint();
    for (const path of ['/bundle', '/?x=1', '//', '/../', '/.well-known/openid-configuration', '/%2F']) {
      expect((await get(ep.port, { path })).status, path).toBe(404);
    }
  });

  it('refuses a request body (413) and huge headers (431)', async () => {
    const { ep } = await endpoint();
    const withBody = await get(ep.port, { headers: { 'content-length': '5' }, body: 'hello' });
    expect(withBody.status).toBe(413);
    const chunked = await raw(ep.port, 'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    const huge = await raw(ep.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431/);
  });

  it('a flood from one address is answered 429 with Retry-After; the bucket refills with time', async () => {
    let nowMs = 1_000_000;
    const source = new SettableBundle(first);
    const tls = new SettableIdentity(svidIdentity(ca));
    const ep = new BundleEndpoint({ host: '127.0.0.1', port: 0, source, tls, limits: { rate: { perSecond: 2, burst: 5 } }, now: () => nowMs });
    await ep.start();
    cleanup.push(() => ep.stop());
    const statuses: number[] = [];
    let retryAfter: string | string[] | undefined;
    for (let i = 0; i < 8; i++) {
      const a = await get(ep.port);
      statuses.push(a.status);
      if (a.status === 429) retryAfter = a.headers['retry-after'];
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    nowMs += 1000; // two tokens back
    expect((await get(ep.port)).status).toBe(200);
    expect((await get(ep.port)).status).toBe(200);
    expect((await get(ep.port)).status).toBe(429);
  });

  it('slowloris: a client that never finishes its headers is cut off', async () => {
    const { ep } = await endpoint({ limits: { headersTimeoutMs: 300, requestTimeoutMs: 300 } });
    // Starts a request and then sends nothing more; the server must close it well before our 10 s give-up.
    const out = await raw(ep.port, 'GET / HTTP/1.1\r\nHost: x\r\n');
    expect(out.startsWith('open:')).toBe(false);
  });

  it('a TCP client that never starts the TLS handshake is cut off', async () => {
    const { ep } = await endpoint({ limits: { handshakeTimeoutMs: 300 } });
    const closed = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: ep.port });
      const t = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 10_000);
      s.on('close', () => {
        clearTimeout(t);
        resolve(true);
      });
      s.on('error', () => undefined);
    });
    expect(closed).toBe(true);
  });

  it('bounds open connections: beyond maxConnections a connection is closed at once', async () => {
    const { ep } = await endpoint({ limits: { maxConnections: 2 } });
    const held = [0, 1].map(() => tlsConnect({ host: '127.0.0.1', port: ep.port, rejectUnauthorized: false }));
    cleanup.push(() => held.forEach((s) => s.destroy()));
    await Promise.all(held.map((s) => new Promise((r) => s.once('secureConnect', r))));
    await expect(get(ep.port)).rejects.toThrow(/socket hang up|ECONNRESET|disconnected/i);
    held.forEach((s) => s.destroy());
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(ep.port)).status).toBe(200);
  });

  it('stop drains: it closes idle connections and a stopped endpoint refuses connections', async () => {
    const { ep } = await endpoint();
    const port = ep.port;
    expect((await get(port)).status).toBe(200);
    await ep.stop();
    await expect(get(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
