/**
 * The bundle endpoint and OIDC discovery as the server composes them (server/publishers),
 * on a real server (real CA, LevelDB, TrustBundle), real sockets and real TLS: what they
 * serve equals the trust domain's bundle, and every rotation reaches them without a restart.
 */
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseBundle } from '../spiffe/bundle/parse.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { createServerLogger } from './observability.js';
import { startPublishers, type Publishers } from './publishers.js';
import { startTestServer, type TestServer } from './testing.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peer: Buffer[];
}

function httpsGet(port: number, path = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false }, (res) => {
      const peer: Buffer[] = [];
      let c = (res.socket as TLSSocket).getPeerCertificate(true);
      const seen = new Set<string>();
      while (c?.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        peer.push(c.raw);
        c = c.issuerCertificate;
      }
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer }));
    });
    req.on('error', reject);
    req.end();
  });
}

function plainGet(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer: [] }));
    }).on('error', reject);
  });
}

/** The key set of a bundle document, order-free: what a relying party trusts. */
function keysOf(json: string): string[] {
  const doc = JSON.parse(json) as { keys: { use: string; kid?: string; x5c?: string[] }[] };
  return doc.keys.map((k) => (k.use === 'x509-svid' ? `x509:${k.x5c?.[0] ?? ''}` : `jwt:${k.kid ?? ''}`)).sort();
}

let ts: TestServer;
let pub: Publishers;
const issuer = 'http://127.0.0.1:1/mayfly';

beforeEach(async () => {
  ts = await startTestServer({ trustDomain: 'mayfly.test', keyManager: 'memory' });
  pub = await startPublishers({
    settings: {
      bundleEndpoint: { address: '127.0.0.1', port: 0, profile: { name: 'https_spiffe' } },
      oidcDiscovery: { address: '127.0.0.1', port: 0, issuer },
    },
    server: ts.server,
    ca: ts.ca,
    logger: createServerLogger('error'),
  });
});

afterEach(async () => {
  await pub.stop();
  await ts.stop();
});

const served = (): Promise<Answer> => httpsGet(pub.ports.bundleEndpoint as number);
const trustBundle = () => {
  const tb = ts.server.trustBundle;
  if (tb === undefined) throw new Error('server not started');
  return tb;
};

describe('bundle endpoint on the server', () => {
  it('serves the trust bundle over an SVID for spiffe://mayfly.test/spire/server that chains to it', async () => {
    const a = await served();
    expect(a.status).toBe(200);
    const bundle = trustBundle().bundle();
    expect(a.body).toBe(bundle.toJson());
    const id = verifyX509Svid(a.peer, parseBundle(a.body, bundle.trustDomain));
    expect(id.spiffeId.toString()).toBe('spiffe://mayfly.test/spire/server');
  });

  it('equals the stored bundle\'s public view: the same keys, none of the datastore\'s own members', async () => {
    await trustBundle().settled();
    const stored = await ts.datastore.getBundle('mayfly.test');
    if (stored === undefined) throw new Error('no stored bundle');
    const a = await served();
    expect(keysOf(a.body)).toEqual(keysOf(stored.bundle));
    expect(a.body).not.toMatch(/mayfly_|"d":/);
    expect(parseBundle(a.body, trustBundle().bundle().trustDomain).sequence).toBe(trustBundle().bundle().sequence);
  });

  it('follows X.509 rotation: prepare adds a root and raises the sequence, activate re-keys the TLS SVID, taint raises it again', async () => {
    const seq = async (): Promise<number> => (JSON.parse((await served()).body) as { spiffe_sequence: number }).spiffe_sequence;
    const before = await served();
    const s0 = await seq();
    const oldId = ts.ca.authorityState('x509').active?.id as string;
    await ts.ca.prepareAuthority('x509');
    const afterPrepare = await served();
    expect(keysOf(afterPrepare.body).filter((k) => k.startsWith('x509:'))).toHaveLength(2);
    const s1 = await seq();
    expect(s1).toBeGreaterThan(s0);
    await ts.ca.activateAuthority('x509');
    const issuerOf = (a: Answer): string => parseCertificate(a.peer[0] as Buffer).authorityKeyId?.toString('hex') ?? '';
    // The SVID is re-minted off the CA's event, asynchronously.
    let afterActivate = await served();
    for (let i = 0; i < 100 && issuerOf(afterActivate) === oldId; i++) {
      await new Promise((r) => setTimeout(r, 20));
      afterActivate = await served();
    }
    expect(issuerOf(before)).toBe(oldId);
    expect(issuerOf(afterActivate)).toBe(ts.ca.authorityState('x509').active?.id);
    expect(verifyX509Svid(afterActivate.peer, parseBundle(afterActivate.body, trustBundle().bundle().trustDomain)).spiffeId.toString()).toBe('spiffe://mayfly.test/spire/server');
    const s2 = await seq();
    await ts.ca.taintAuthority('x509', oldId);
    expect(await seq()).toBeGreaterThan(s2);
    expect((await served()).body).toBe(trustBundle().bundle().toJson());
  });

  it('serves an SVID of the configured spiffe_id when the profile names one', async () => {
    const other = await startPublishers({
      settings: { bundleEndpoint: { address: '127.0.0.1', port: 0, profile: { name: 'https_spiffe', spiffeId: 'spiffe://mayfly.test/bundle-endpoint' } } },
      server: ts.server,
      ca: ts.ca,
      logger: createServerLogger('error'),
    });
    try {
      const a = await httpsGet(other.ports.bundleEndpoint as number);
      expect(verifyX509Svid(a.peer, trustBundle().bundle()).spiffeId.toString()).toBe('spiffe://mayfly.test/bundle-endpoint');
      expect(other.ports.oidcDiscovery).toBeUndefined();
    } finally {
      await other.stop();
    }
  });

  it('stops with the publishers: the port is closed afterwards', async () => {
    const port = pub.ports.bundleEndpoint as number;
    await pub.stop();
    await expect(httpsGet(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('OIDC discovery on the server', () => {
  const oidcPort = (): number => pub.ports.oidcDiscovery as number;
  interface Jwk {
    kty: string;
    kid: string;
    use: string;
    alg: string;
    crv?: string;
    x?: string;
    y?: string;
    d?: string;
  }
  const jwks = async (): Promise<Jwk[]> => (JSON.parse((await plainGet(oidcPort(), '/mayfly/keys')).body) as { keys: Jwk[] }).keys;

  it('serves the document below the issuer\'s path, naming the JWKS, with a short max-age', async () => {
    const a = await plainGet(oidcPort(), '/mayfly/.well-known/openid-configuration');
    expect(a.status).toBe(200);
    expect(a.headers['cache-control']).toBe('public, max-age=60');
    const doc = JSON.parse(a.body) as Record<string, unknown>;
    expect(doc.issuer).toBe(issuer);
    expect(doc.jwks_uri).toBe(`${issuer}/keys`);
    expect(doc.id_token_signing_alg_values_supported).toEqual(['ES256']);
    expect((await plainGet(oidcPort(), '/.well-known/openid-configuration')).status).toBe(404);
    expect((await plainGet(oidcPort(), '/')).status).toBe(404);
  });

  it('the JWKS holds only the JWT authorities\' public keys, and follows prepare, activate, taint and revoke', async () => {
    const first = await jwks();
    const active = ts.ca.authorityState('jwt').active?.id as string;
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ kty: 'EC', crv: 'P-256', use: 'sig', kid: active, alg: 'ES256' });
    expect(first[0]?.d).toBeUndefined();
    expect(first.some((k) => 'x5c' in k)).toBe(false);
    const prepared = await ts.ca.prepareAuthority('jwt');
    expect((await jwks()).map((k) => k.kid).sort()).toEqual([active, prepared.id].sort());
    await ts.ca.activateAuthority('jwt');
    await ts.ca.taintAuthority('jwt', active);
    expect((await jwks()).map((k) => k.kid).sort()).toEqual([active, prepared.id].sort());
    await ts.ca.revokeAuthority('jwt', active);
    await trustBundle().settled();
    expect((await jwks()).map((k) => k.kid)).toEqual([prepared.id]);
  });

  it('answers only GET', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpGet({ host: '127.0.0.1', port: oidcPort(), path: '/mayfly/keys', method: 'POST', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    expect(status).toBe(405);
  });
});
