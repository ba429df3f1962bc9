import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../spiffe/keys.js';
import { SpiffeId } from '../spiffe/id.js';
import { PeerAuthorizationError } from './errors.js';
import { X509Source } from './sources.js';
import { FakeWorkloadApi, makeFakeTrustDomain, x509Response, type FakeSvid, type FakeTrustDomain } from './testing.js';
import {
  authorizeAny, authorizeId, authorizeMemberOf, authorizeOneOf, createClientTlsOptions, createSpiffeHttpsServer, createSpiffeTlsServer, peerSpiffeId,
  createServerTlsOptions, guardTlsServer, PEER_REJECTED_EVENT, REFUSAL_LOG_BURST, REFUSAL_LOG_WINDOW_MS, type Authorizer,
} from './tls.js';

let td: FakeTrustDomain;
let fed: FakeTrustDomain;
let evil: FakeTrustDomain;
const cleanups: Array<() => unknown> = [];

beforeAll(() => {
  td = makeFakeTrustDomain('example.org', { intermediate: true });
  fed = makeFakeTrustDomain('partner.test');
  evil = makeFakeTrustDomain('evil.test');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Workload {
  fake: FakeWorkloadApi;
  source: X509Source;
}

/** A workload whose agent (a fake) hands it `svid` of `own`, trusting `federated` too. */
async function workload(own: FakeTrustDomain, svid: FakeSvid, federated: FakeTrustDomain[] = [fed]): Promise<Workload> {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-tls-'));
  const fake = await FakeWorkloadApi.start({ socketPath: join(dir, 'api.sock'), x509: x509Response(own, [svid], federated) });
  const source = await X509Source.create({ address: fake.address, backoff: { initialMs: 20 } });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => fake.stop({ abrupt: true }));
  cleanups.push(() => source.close());
  return { fake, source };
}

interface ServerHandle {
  port: number;
  served: string[];
  rejected: Error[];
  clientErrors: Error[];
}

async function server(w: Workload, authorize: Authorizer): Promise<ServerHandle> {
  const h: ServerHandle = { port: 0, served: [], rejected: [], clientErrors: [] };
  const s = createSpiffeTlsServer(w.source, { authorize }, (socket) => {
    const id = peerSpiffeId(socket).toString();
    h.served.push(id);
    socket.end(`hello ${id}`);
  });
  s.on(PEER_REJECTED_EVENT, (err: Error) => h.rejected.push(err));
  s.on('tlsClientError', (err: Error) => h.clientErrors.push(err));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  h.port = (s.address() as AddressInfo).port;
  cleanups.push(() => new Promise((r) => s.close(r)));
  return h;
}

interface Outcome {
  data: string;
  error?: Error & { code?: string };
  serverId?: string;
}

function connect(w: Workload, port: number, authorize: Authorizer, servername?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { data: '' };
    const socket = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ...createClientTlsOptions(w.source, { authorize }) });
    socket.on('secureConnect', () => {
      out.serverId = peerSpiffeId(socket).toString();
    });
    socket.on('data', (d: Buffer) => (out.data += d.toString()));
    socket.on('error', (e: Error) => (out.error ??= e));
    socket.on('close', () => resolve(out));
  });
}

describe('SPIFFE mTLS', () => {
  it('authorized IDs handshake both ways, with an intermediate in the chain', async () => {
    const srv = await workload(td, td.svid('/server'));
    const cli = await workload(td, td.svid('/client'));
    const h = await server(srv, authorizeId('spiffe://example.org/client'));
    const out = await connect(cli, h.port, authorizeId('spiffe://example.org/server'));
    expect(out.error).toBeUndefined();
    expect(out.serverId).toBe('spiffe://example.org/server');
    expect(out.data).toBe('hello spiffe://example.org/client');
    expect(h.served).toEqual(['spiffe://example.org/client']);
  });

  it('the client refuses a server with the wrong SPIFFE ID', async () => {
    const srv = await workload(td, td.svid('/imposter'));
    const cli = await workload(td, td.svid('/client'));
    const h = await server(srv, authorizeAny());
    const out = await connect(cli, h.port, authorizeId('spiffe://example.org/server'));
    expect(out.error?.code).toBe('ERR_PEER_UNAUTHORIZED');
    expect(out.error?.message).toMatch(/spiffe:\/\/example.org\/imposter is not the expected spiffe:\/\/example.org\/server/);
    expect(out.data).toBe('');
  });

  it('the server refuses a client with the wrong SPIFFE ID before its handler runs', async () => {
    const srv = await workload(td, td.svid('/server'));
    const cli = await workload(td, td.svid('/stranger'));
    const h = await server(srv, authorizeOneOf(['spiffe://example.org/client', 'spiffe://example.org/admin']));
    const out = await connect(cli, h.port, authorizeId('spiffe://example.org/server'));
    expect(out.data).toBe('');
    expect(h.served).toEqual([]);
    expect(h.rejected.map((e) => (e as Error & { code: string }).code)).toEqual(['ERR_PEER_UNAUTHORIZED']);
    expect(h.rejected[0]!.message).toMatch(/^refused TLS peer spiffe:\/\/example\.org\/stranger from 127\.0\.0\.1:\d+: peer SPIFFE ID spiffe:\/\/example\.org\/stranger is not one of the 2 allowed IDs$/);
    expect((h.rejected[0] as PeerAuthorizationError).peer).toEqual({ spiffeId: 'spiffe://example.org/stranger', address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  it('refuses a certificate from a trust domain nobody trusts (OpenSSL stops it in the handshake)', async () => {
    const srv = await workload(td, td.svid('/server'));
    // The intruder trusts the server, so only the server's check can stop it.
    const intruder = await workload(evil, evil.svid('/client'), [td]);
    const h = await server(srv, authorizeAny());
    const out = await connect(intruder, h.port, authorizeAny());
    expect(out.data).toBe('');
    expect(h.served).toEqual([]);
    // OpenSSL's verdict, reported with the peer's claimed ID and why: not a bare ECONNRESET.
    expect(h.clientErrors).toEqual([]);
    expect(h.rejected).toHaveLength(1);
    expect(h.rejected[0]!.message).toMatch(/^refused TLS peer spiffe:\/\/evil\.test\/client from 127\.0\.0\.1:\d+: its certificate chain does not verify against this workload's bundle roots \(\w+\)$/);
    expect((h.rejected[0] as PeerAuthorizationError).peer?.spiffeId).toBe('spiffe://evil.test/client');
    // And a client refuses such a server: the client trusts example.org and partner.test only.
    const evilSrv = await workload(evil, evil.svid('/server'), [td]);
    const h2 = await server(evilSrv, authorizeAny());
    const cli = await workload(td, td.svid('/client'));
    const out2 = await connect(cli, h2.port, authorizeAny());
    expect(out2.error).toBeDefined();
    expect(out2.serverId).toBeUndefined();
  });

  it('refuses a federated CA forging an ID of another trust domain (OpenSSL alone would accept it)', async () => {
    const srv = await workload(td, td.svid('/server'), [fed]);
    const key = generateKeyPair('ec-p256');
    const forged = fed.ca.minter.mint({ spiffeId: SpiffeId.parse('spiffe://example.org/admin'), publicKey: key.publicKey, ttlSeconds: 600 });
    const forger = await workload(td, { spiffeId: 'spiffe://example.org/admin', certificates: [forged], key, hint: '' }, [fed]);
    const h = await server(srv, authorizeMemberOf('example.org'));
    const out = await connect(forger, h.port, authorizeAny());
    expect(out.data).toBe('');
    expect(h.served).toEqual([]);
    expect(h.clientErrors).toEqual([]); // the chain is fine for OpenSSL ...
    expect(h.rejected[0]!.message).toMatch(/failed SPIFFE verification/); // ... not for SPIFFE
    // A genuine partner workload passes chain verification and meets the authorizer instead.
    const partner = await workload(fed, fed.svid('/client'), [td]);
    const out2 = await connect(partner, h.port, authorizeAny());
    expect(out2.data).toBe('');
    expect(h.rejected[1]!.message).toMatch(/spiffe:\/\/partner.test\/client is not a member of trust domain example.org/);
  });

  it('rotation: new connections present the new SVID, with and without SNI', async () => {
    const srv = await workload(td, td.svid('/server-v1'));
    const cli = await workload(td, td.svid('/client-v1'));
    const h = await server(srv, authorizeMemberOf('example.org'));
    expect((await connect(cli, h.port, authorizeAny())).serverId).toBe('spiffe://example.org/server-v1');
    const rotated = Promise.all([new Promise((r) => srv.source.once('update', r)), new Promise((r) => cli.source.once('update', r))]);
    srv.fake.setX509(x509Response(td, [td.svid('/server-v2')], [fed]));
    cli.fake.setX509(x509Response(td, [td.svid('/client-v2')], [fed]));
    await rotated;
    const noSni = await connect(cli, h.port, authorizeAny());
    expect(noSni.serverId).toBe('spiffe://example.org/server-v2');
    expect(noSni.data).toBe('hello spiffe://example.org/client-v2');
    const sni = await connect(cli, h.port, authorizeAny(), 'server.example.org');
    expect(sni.serverId).toBe('spiffe://example.org/server-v2');
  });

  it('an https server and agent speak SPIFFE mTLS', async () => {
    const srv = await workload(td, td.svid('/api'));
    const cli = await workload(td, td.svid('/web'));
    const s = createSpiffeHttpsServer(srv.source, { authorize: authorizeId('spiffe://example.org/web') }, (req, res) => {
      res.end(`hi ${peerSpiffeId(req.socket as tls.TLSSocket)}`);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => s.close(r)));
    const agent = new https.Agent({ ...createClientTlsOptions(cli.source, { authorize: authorizeId('spiffe://example.org/api') }), keepAlive: false });
    const body = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: (s.address() as AddressInfo).port, path: '/', agent }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    expect(body).toBe('hi spiffe://example.org/web');
    const wrong = new https.Agent({ ...createClientTlsOptions(cli.source, { authorize: authorizeId('spiffe://example.org/other') }) });
    const err = await new Promise<Error & { code?: string }>((resolve) => {
      https.get({ host: '127.0.0.1', port: (s.address() as AddressInfo).port, path: '/', agent: wrong }, () => resolve(new Error('unexpected response'))).on('error', resolve);
    });
    expect(err.code).toBe('ERR_PEER_UNAUTHORIZED');
  });

  it('https requests with different identities or authorizers never share a pooled socket', async () => {
    const srv = await workload(td, td.svid('/api'));
    const web = await workload(td, td.svid('/web'));
    const intruder = await workload(td, td.svid('/intruder'));
    const s = createSpiffeHttpsServer(srv.source, { authorize: authorizeId('spiffe://example.org/web') }, (req, res) => {
      res.end(`hi ${peerSpiffeId(req.socket as tls.TLSSocket)}`);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { s.closeAllConnections(); s.close(r); }));
    const port = (s.address() as AddressInfo).port;
    const get = (options: ReturnType<typeof createClientTlsOptions>): Promise<string | (Error & { code?: string })> =>
      new Promise((resolve) => {
        https.get({ host: '127.0.0.1', port, path: '/', ...options }, (res) => {
          let b = '';
          res.on('data', (d: Buffer) => (b += d.toString()));
          res.on('end', () => resolve(b));
        }).on('error', resolve);
      });
    // A keep-alive request as the authorised workload leaves a pooled socket behind...
    expect(await get(createClientTlsOptions(web.source, { authorize: authorizeId('spiffe://example.org/api') }))).toBe('hi spiffe://example.org/web');
    // ...which another identity must not inherit: it handshakes itself and is refused.
    expect(await get(createClientTlsOptions(intruder.source, { authorize: authorizeId('spiffe://example.org/api') }))).toBeInstanceOf(Error);
    // ...nor may a request that authorises another server ID skip its check.
    const other = await get(createClientTlsOptions(web.source, { authorize: authorizeId('spiffe://example.org/other') }));
    expect((other as Error & { code?: string }).code).toBe('ERR_PEER_UNAUTHORIZED');
  });

  it('requires an authorizer', async () => {
    const w = await workload(td, td.svid('/x'));
    expect(() => createClientTlsOptions(w.source, {} as { authorize: Authorizer })).toThrow(/an authorizer is required/);
  });
});

describe('a guarded server tells who it refused and why', () => {
  /** A guarded server nobody listens to for refusals: it logs them itself through `log`. */
  async function loggingServer(w: Workload, authorize: Authorizer, clock: { t: number }): Promise<{ port: number; lines: string[] }> {
    const lines: string[] = [];
    const s = createSpiffeTlsServer(w.source, { authorize, log: (l) => lines.push(l), now: () => new Date(clock.t) }, (socket) => socket.end('hello'));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => s.close(r)));
    return { port: (s.address() as AddressInfo).port, lines };
  }

  it('logs a refused peer with its SPIFFE ID, address and reason when nothing listens for the event', async () => {
    const srv = await workload(td, td.svid('/api'));
    const cli = await workload(td, td.svid('/stranger'));
    const clock = { t: Date.now() }; // the SVIDs are minted now; the clock moves only the log's window
    const h = await loggingServer(srv, authorizeId('spiffe://example.org/web'), clock);
    const out = await connect(cli, h.port, authorizeAny());
    expect(out.data).toBe('');
    expect(h.lines).toHaveLength(1);
    expect(h.lines[0]).toMatch(
      /^mayfly sdk: refused TLS peer spiffe:\/\/example\.org\/stranger from 127\.0\.0\.1:\d+: peer SPIFFE ID spiffe:\/\/example\.org\/stranger is not the expected spiffe:\/\/example\.org\/web$/,
    );
  });

  it('names a client that sends no certificate, and one whose chain the bundle does not sign', async () => {
    const srv = await workload(td, td.svid('/api'));
    const clock = { t: Date.now() }; // the SVIDs are minted now; the clock moves only the log's window
    const h = await loggingServer(srv, authorizeAny(), clock);
    // No client certificate at all (a plain TLS client).
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: h.port, rejectUnauthorized: false });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
    // A certificate of a trust domain this server does not trust.
    const intruder = await workload(evil, evil.svid('/client'), [td]);
    await connect(intruder, h.port, authorizeAny());
    expect(h.lines).toHaveLength(2);
    expect(h.lines[0]).toMatch(/^mayfly sdk: refused TLS peer \(no SPIFFE ID\) from 127\.0\.0\.1:\d+: it presented no certificate$/);
    expect(h.lines[1]).toMatch(/^mayfly sdk: refused TLS peer spiffe:\/\/evil\.test\/client from 127\.0\.0\.1:\d+: its certificate chain does not verify against this workload's bundle roots/);
  });

  it('bounds its own log: a burst, then a count of what it left out', async () => {
    const srv = await workload(td, td.svid('/api'));
    const cli = await workload(td, td.svid('/stranger'));
    const clock = { t: Date.now() }; // the SVIDs are minted now; the clock moves only the log's window
    const h = await loggingServer(srv, authorizeId('spiffe://example.org/web'), clock);
    for (let i = 0; i < REFUSAL_LOG_BURST + 2; i++) await connect(cli, h.port, authorizeAny());
    expect(h.lines).toHaveLength(REFUSAL_LOG_BURST);
    clock.t += REFUSAL_LOG_WINDOW_MS;
    await connect(cli, h.port, authorizeAny());
    expect(h.lines.slice(REFUSAL_LOG_BURST)).toEqual([
      `mayfly sdk: 2 more refused TLS peers were not logged in the last ${REFUSAL_LOG_WINDOW_MS / 1000} s`,
      expect.stringMatching(/^mayfly sdk: refused TLS peer spiffe:\/\/example\.org\/stranger from /),
    ]);
  });

  it('guarding a server built with createServerTlsOptions reports a chain OpenSSL refused by its reason, not ECONNRESET', async () => {
    const srv = await workload(td, td.svid('/api'));
    const opts = { authorize: authorizeAny() };
    const s = guardTlsServer(tls.createServer(createServerTlsOptions(srv.source, opts), (socket) => socket.end('hello')), srv.source, opts);
    const rejected: PeerAuthorizationError[] = [];
    s.on(PEER_REJECTED_EVENT, (err: PeerAuthorizationError) => rejected.push(err));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => s.close(r)));
    const intruder = await workload(evil, evil.svid('/client'), [td]);
    const out = await connect(intruder, (s.address() as AddressInfo).port, authorizeAny());
    expect(out.data).toBe('');
    await new Promise((r) => setTimeout(r, 50));
    expect(rejected.map((e) => e.code)).toEqual(['ERR_PEER_UNAUTHORIZED']);
    // Node destroyed the socket before the guard: the reason is known, the certificate no longer.
    expect(rejected[0]!.message).toMatch(/^refused a TLS peer: its certificate chain does not verify against this workload's bundle roots \((?!ECONNRESET)\w+\)$/);
  });

  it('a client that gives up on the server during the handshake is reported as such', async () => {
    const srv = await workload(td, td.svid('/imposter'));
    const cli = await workload(td, td.svid('/client'));
    const clock = { t: Date.now() }; // the SVIDs are minted now; the clock moves only the log's window
    const h = await loggingServer(srv, authorizeAny(), clock);
    const out = await connect(cli, h.port, authorizeId('spiffe://example.org/api'));
    expect(out.error?.code).toBe('ERR_PEER_UNAUTHORIZED');
    await new Promise((r) => setTimeout(r, 50));
    expect(h.lines).toHaveLength(1);
    expect(h.lines[0]).toMatch(/^mayfly sdk: TLS handshake failed: the peer closed the connection during the handshake \(ECONNRESET\); a SPIFFE client does that when it refuses this server's SVID$/);
  });
});
