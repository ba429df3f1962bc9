/**
 * SPIFFE mTLS over http2, grpc-js and fetch (undici), with real sockets and real TLS: each
 * transport verifies its peer with sdk/tls's checks and an authorizer, picks up a rotated SVID
 * for new connections, never lets a connection cross identities or authorizers, and refuses
 * hostile peers at the handshake (before any handler runs).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { authorizeAny, authorizeId, type Authorizer } from './tls.js';
import { makeFakeTrustDomain, type FakeSvid, type FakeTrustDomain } from './testing.js';
import { hostileSvid, StaticSource } from './testdata/static-source.js';
import { openClient, requestOnce, startServer, TRANSPORTS, type TestServer } from './testdata/transports.js';

let td: FakeTrustDomain;
let evil: FakeTrustDomain;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(() => {
  td = makeFakeTrustDomain('example.org', { intermediate: true });
  evil = makeFakeTrustDomain('evil.test');
});

const API = 'spiffe://example.org/api';
const WEB = 'spiffe://example.org/web';
const HOUR = 3_600_000;

async function server(kind: (typeof TRANSPORTS)[number], source: StaticSource, authorize: Authorizer, o: { closeEach?: boolean } = {}): Promise<TestServer> {
  const s = await startServer(kind, source, authorize, o);
  cleanups.push(() => s.close());
  return s;
}

/** An authorizer that also records every server ID it was asked about (one per handshake). */
function recording(inner: Authorizer, seen: string[]): Authorizer {
  return (id) => {
    seen.push(id.toString());
    inner(id);
  };
}

const hostile: Array<[string, () => FakeSvid, RegExp]> = [
  ['a chain from another trust domain', () => evil.svid('/api'), /evil\.test|unable to (get|verify)|self[- ]signed|not trust/i],
  ['an expired SVID', () => hostileSvid(td, [API], { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }), /expired/i],
  ['a certificate with two URI SANs', () => hostileSvid(td, [API, 'spiffe://example.org/other']), /2 URI SANs/],
  ['an unauthorised SPIFFE ID', () => td.svid('/intruder'), /intruder is not the expected/],
];

describe.each(TRANSPORTS)('SPIFFE mTLS over %s', (kind) => {
  it('authorized peers talk; the client checks the server ID and the server the client ID', async () => {
    const s = await server(kind, new StaticSource(td.svid('/api'), [td]), authorizeId(WEB));
    const seen: string[] = [];
    const out = await requestOnce(kind, s.port, new StaticSource(td.svid('/web'), [td]), recording(authorizeId(API), seen));
    expect(out.error).toBeUndefined();
    expect(out.body).toBe(kind === 'grpc' ? 'hi' : `hi ${WEB}`);
    expect(seen).toEqual([API]);
    expect(s.peers).toEqual([WEB]);
  });

  it('a rotated SVID is presented on the next new connection, by both ends, without a restart', async () => {
    const srvSource = new StaticSource(td.svid('/api'), [td]);
    const cliSource = new StaticSource(td.svid('/web'), [td]);
    const s = await server(kind, srvSource, authorizeAny(), { closeEach: true });
    const seen: string[] = [];
    const client = openClient(kind, s.port, cliSource, recording(authorizeAny(), seen));
    cleanups.push(() => client.close());
    expect((await client.call()).error).toBeUndefined();
    srvSource.rotate(td.svid('/api-v2'));
    cliSource.rotate(td.svid('/web-v2'));
    s.dropConnections(); // http2 sessions and grpc channels hold a connection: make them open a new one
    await client.settle();
    const after = await client.call();
    expect(after.error).toBeUndefined();
    expect(seen).toEqual([API, `${API}-v2`]);
    expect(s.peers).toEqual([WEB, `${WEB}-v2`]);
  });

  it('never lets a pooled connection cross identities or authorizers', async () => {
    const s = await server(kind, new StaticSource(td.svid('/api'), [td]), authorizeId(WEB));
    const web = new StaticSource(td.svid('/web'), [td]);
    const first = openClient(kind, s.port, web, authorizeId(API));
    cleanups.push(() => first.close());
    expect((await first.call()).error).toBeUndefined(); // leaves an open connection behind
    const intruder = await requestOnce(kind, s.port, new StaticSource(td.svid('/intruder'), [td]), authorizeId(API));
    expect(intruder.error).toBeDefined();
    expect(s.rejected.at(-1)?.message).toMatch(/intruder is not the expected/);
    const otherAuthorizer = await requestOnce(kind, s.port, web, authorizeId('spiffe://example.org/other'));
    expect(String(otherAuthorizer.error?.message)).toMatch(/api is not the expected spiffe:\/\/example.org\/other/);
    expect(s.served).toBe(1);
  });

  it.each(hostile)('the client refuses a server presenting %s at the handshake', async (_what, svid, reason) => {
    const s = await server(kind, new StaticSource(svid(), [td, evil]), authorizeAny());
    const out = await requestOnce(kind, s.port, new StaticSource(td.svid('/web'), [td]), authorizeId(API));
    expect(out.body).toBeUndefined();
    expect(String(out.error?.message)).toMatch(reason);
    expect(s.served).toBe(0);
  });

  it.each(hostile)('the server refuses a client presenting %s before any handler runs', async (_what, svid, reason) => {
    const s = await server(kind, new StaticSource(td.svid('/web'), [td]), authorizeId(API));
    const out = await requestOnce(kind, s.port, new StaticSource(svid(), [td, evil]), authorizeAny());
    expect(out.body).toBeUndefined();
    expect(out.error).toBeDefined();
    expect(s.served).toBe(0);
    expect(s.peers).toEqual([]);
    expect(s.rejected.map((e) => e.message).join('\n')).toMatch(reason);
  });
});
