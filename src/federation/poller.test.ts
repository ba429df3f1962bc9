/**
 * The peer bundle fetcher against real `node:https` bundle endpoints: every hostile case of
 * issue 9 is refused with one log line naming the peer and the reason, the reason counted,
 * and the stored bundle kept; a peer CA rotation (publish next CA, switch to it, drop the
 * old one) is followed; https_web with an explicit extra root and its host name check;
 * backoff and the refresh-hint bounds.
 */
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { isMayflyError } from '../spiffe/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import { makeTestCa, makeTestSvid, type TestCa } from '../spiffe/x509/testing.js';
import { BundlePoller, type BundlePollerConfig } from './poller.js';
import type { RefusalReason } from './refusal.js';
import { ManualTimers, MemoryPeerStore, RecordingLogger, RecordingMetrics, TestBundleEndpoint } from './testing.js';

const PEER = 'peer.test';
const ENDPOINT_ID = `spiffe://${PEER}/spire/server`;
const td = TrustDomain.parse(PEER);

const bundleJson = (cas: readonly TestCa[], sequence?: number, refreshHintSeconds?: number): string =>
  new Bundle({
    trustDomain: td,
    x509Authorities: cas.map((c) => c.certificate),
    ...(sequence !== undefined ? { sequence } : {}),
    ...(refreshHintSeconds !== undefined ? { refreshHintSeconds } : {}),
  }).toJson();

let store: MemoryPeerStore;
let logger: RecordingLogger;
let metrics: RecordingMetrics;
let timers: ManualTimers;
let stored: string[];
let caA: TestCa;
let endpoint: TestBundleEndpoint;
let poller: BundlePoller;
const closers: (() => Promise<void>)[] = [];

function newPoller(over: Partial<BundlePollerConfig> = {}): BundlePoller {
  return new BundlePoller({
    store,
    ownTrustDomain: 'example.org',
    logger,
    metrics,
    setTimer: timers.setTimer,
    random: () => 0,
    onBundleStored: (t) => stored.push(t),
    connectTimeoutMs: 2000,
    totalTimeoutMs: 4000,
    ...over,
  });
}

async function serveWith(ca: TestCa, path = '/spire/server'): Promise<TestBundleEndpoint> {
  const svid = makeTestSvid(ca, path);
  const ep = await TestBundleEndpoint.start([svid.certificate], svid.key.privateKey, () => undefined);
  closers.push(() => ep.close());
  return ep;
}

function relate(url: string, profile: 'https_spiffe' | 'https_web' = 'https_spiffe', trustDomain = PEER): void {
  store.relationships.set(trustDomain, { trustDomain, bundleEndpointUrl: url, bundleEndpointProfile: profile, endpointSpiffeId: profile === 'https_spiffe' ? ENDPOINT_ID : '' });
}

/** Refresh is refused for `reason`: one warning naming the peer and reason, the counter, the stored bundle kept. */
async function expectRefused(reason: RefusalReason, before = store.bundles.get(PEER)): Promise<string> {
  const warned = logger.warnings().length;
  const counted = metrics.refusals.length;
  const err = await poller.refresh(PEER).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isMayflyError(err, 'ERR_FEDERATION_FETCH_FAILED'), String(err)).toBe(true);
  expect((err as { reason: string }).reason).toBe(reason);
  const lines = logger.warnings().slice(warned);
  expect(lines).toHaveLength(1);
  expect(lines[0]!.fields).toMatchObject({ trustDomain: PEER, reason });
  expect(lines[0]!.message).toContain(PEER);
  expect(lines[0]!.message.split('\n')).toHaveLength(1);
  expect(metrics.refusals.slice(counted)).toEqual([{ trustDomain: PEER, reason }]);
  expect(store.bundles.get(PEER)).toEqual(before);
  return (err as Error).message;
}

beforeEach(async () => {
  store = new MemoryPeerStore();
  logger = new RecordingLogger();
  metrics = new RecordingMetrics();
  timers = new ManualTimers();
  stored = [];
  caA = makeTestCa({ trustDomain: PEER });
  endpoint = await serveWith(caA);
  relate(endpoint.url('/'));
  store.bundles.set(PEER, { bundle: bundleJson([caA], 1), sequence: 1 });
  poller = newPoller();
  await poller.start();
});

afterEach(async () => {
  await poller.stop();
  for (const c of closers.splice(0)) await c();
});

describe('BundlePoller with https_spiffe', () => {
  it('stores a newer bundle, tells the server, and schedules the next fetch at the refresh hint (bounded)', async () => {
    endpoint.serve(bundleJson([caA], 2, 60));
    await poller.refresh(PEER);
    expect(store.bundles.get(PEER)).toEqual({ bundle: bundleJson([caA], 2, 60), sequence: 2 });
    expect(stored).toEqual([PEER]);
    expect(metrics.refreshes.map((r) => r.trustDomain)).toEqual([PEER]);
    expect(poller.nextDelayMs(PEER)).toBe(60_000);
    // The same bundle again: no write, no notice, still a successful refresh.
    const writes = store.writes;
    await poller.refresh(PEER);
    expect(store.writes).toBe(writes);
    expect(stored).toEqual([PEER]);
    expect(metrics.refreshes).toHaveLength(2);
    // A 1 s hint is raised to the minimum, a day to the maximum, none is the SPIFFE default.
    endpoint.serve(bundleJson([caA], 3, 1));
    await poller.refresh(PEER);
    expect(poller.nextDelayMs(PEER)).toBe(10_000);
    endpoint.serve(bundleJson([caA], 4, 86_400));
    await poller.refresh(PEER);
    expect(poller.nextDelayMs(PEER)).toBe(3_600_000);
    endpoint.serve(bundleJson([caA], 5));
    await poller.refresh(PEER);
    expect(poller.nextDelayMs(PEER)).toBe(300_000);
  });

  it('fetches on its own schedule: a first fetch at start, then when the timer fires', async () => {
    endpoint.serve(bundleJson([caA], 2, 30));
    expect(poller.nextDelayMs(PEER)).toBe(0);
    timers.fire(0);
    for (let i = 0; i < 200 && store.bundles.get(PEER)?.sequence !== 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(store.bundles.get(PEER)?.sequence).toBe(2);
    expect(poller.nextDelayMs(PEER)).toBe(30_000);
  });

  it('refuses garbage', async () => {
    endpoint.serve('<html>not a bundle</html>');
    expect(await expectRefused('invalid_bundle')).toContain('served no SPIFFE bundle');
  });

  it('refuses an oversized body, declared or streamed', async () => {
    const big = `{"keys":[],"pad":"${'x'.repeat(1024 * 1024 + 10)}"}`;
    endpoint.serve(big);
    expect(await expectRefused('body_too_large')).toContain('limit');
    endpoint.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 40; i++) res.write('x'.repeat(64 * 1024));
      res.end();
    };
    await expectRefused('body_too_large');
  });

  it("refuses a bundle for another trust domain (another trust domain's CA, or authorities that do not verify the endpoint)", async () => {
    const other = makeTestCa({ trustDomain: 'other.test' });
    endpoint.serve(new Bundle({ trustDomain: td, x509Authorities: [caA.certificate, other.certificate], sequence: 9 }).toJson());
    expect(await expectRefused('wrong_trust_domain')).toContain('other.test');
    // A CA of the right name but not the one the endpoint's certificate chains to.
    endpoint.serve(bundleJson([makeTestCa({ trustDomain: PEER })], 9));
    expect(await expectRefused('wrong_trust_domain')).toContain("do not verify the endpoint's own certificate");
  });

  it('refuses a redirect without following it', async () => {
    const target = await serveWith(caA);
    target.serve(bundleJson([caA], 9));
    endpoint.handler = (_req, res) => {
      res.writeHead(302, { location: target.url('/') });
      res.end();
    };
    expect(await expectRefused('redirect')).toContain('redirects are not followed');
    expect(target.requests).toBe(0);
    endpoint.handler = (_req, res) => {
      res.writeHead(500);
      res.end('oops');
    };
    await expectRefused('http_status');
  });

  it('refuses an endpoint certificate with another SPIFFE ID', async () => {
    const wrong = makeTestSvid(caA, '/not/the/server');
    endpoint.setCertificate([wrong.certificate], wrong.key.privateKey);
    endpoint.serve(bundleJson([caA], 9));
    expect(await expectRefused('tls_wrong_spiffe_id')).toContain(`spiffe://${PEER}/not/the/server`);
    expect(endpoint.requests).toBe(0);
  });

  it('refuses an endpoint certificate chaining to nothing stored, and fetches nothing without a bootstrap bundle', async () => {
    const stranger = makeTestSvid(makeTestCa({ trustDomain: PEER }), '/spire/server');
    endpoint.setCertificate([stranger.certificate], stranger.key.privateKey);
    endpoint.serve(bundleJson([caA], 9));
    await expectRefused('tls_untrusted');
    expect(endpoint.requests).toBe(0);
    store.bundles.delete(PEER);
    expect(await expectRefused('no_trust_bundle', undefined)).toContain('bootstrap');
  });

  it('refuses a downgraded spiffe_sequence', async () => {
    store.bundles.set(PEER, { bundle: bundleJson([caA], 5), sequence: 5 });
    endpoint.serve(bundleJson([caA], 4));
    expect(await expectRefused('sequence_downgrade')).toContain('lower than the stored 5');
    endpoint.serve(bundleJson([caA]));
    await expectRefused('sequence_downgrade');
  });

  it('gives up on an endpoint that never answers (timeout), and on one that is not there', async () => {
    const sockets: Socket[] = [];
    const silent: TcpServer = createTcpServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const closeSilent = async (): Promise<void> => {
      for (const s of sockets) s.destroy();
      if (silent.listening) await new Promise<void>((r) => silent.close(() => r()));
    };
    closers.push(closeSilent);
    const port = (silent.address() as AddressInfo).port;
    relate(`https://127.0.0.1:${port}/`);
    await poller.stop();
    poller = newPoller({ connectTimeoutMs: 300, totalTimeoutMs: 600 });
    await poller.start();
    expect(await expectRefused('timeout')).toContain('within 300 ms');
    // Nothing listening any more: connection refused.
    await closeSilent();
    await expectRefused('connect_failed');
  });

  it('backs off exponentially with jitter while refused, and resumes the refresh hint after a success', async () => {
    endpoint.serve('garbage');
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      await poller.refresh(PEER).catch(() => undefined);
      delays.push(poller.nextDelayMs(PEER)!);
    }
    // random() = 0: the fixed half of 1, 2, 4, 8, 16 s.
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000]);
    endpoint.serve(bundleJson([caA], 2, 120));
    await poller.refresh(PEER);
    expect(poller.nextDelayMs(PEER)).toBe(120_000);
  });

  it("follows the peer's CA rotation: next CA published, then in use, then the old one dropped", async () => {
    const caB = makeTestCa({ trustDomain: PEER });
    // 1. Prepared: the bundle publishes B; the endpoint still uses A.
    endpoint.serve(bundleJson([caA, caB], 2));
    await poller.refresh(PEER);
    // 2. Activated: the endpoint presents an SVID from B, which the stored bundle now holds.
    const fromB = makeTestSvid(caB, '/spire/server');
    endpoint.setCertificate([fromB.certificate], fromB.key.privateKey);
    endpoint.serve(bundleJson([caA, caB], 3));
    await poller.refresh(PEER);
    // 3. A is gone.
    endpoint.serve(bundleJson([caB], 4));
    await poller.refresh(PEER);
    expect(store.bundles.get(PEER)).toEqual({ bundle: bundleJson([caB], 4), sequence: 4 });
    expect(stored).toEqual([PEER, PEER, PEER]);
    expect(logger.warnings()).toEqual([]);
    // Now that A is no longer trusted, an endpoint still presenting an SVID from A is refused.
    const fromA = makeTestSvid(caA, '/spire/server');
    endpoint.setCertificate([fromA.certificate], fromA.key.privateKey);
    await expectRefused('tls_untrusted');
  });

  it('follows relationship changes: a new peer is fetched at once, a removed one no more, our own trust domain never', async () => {
    relate(endpoint.url('/'), 'https_spiffe', 'second.test');
    relate(endpoint.url('/'), 'https_spiffe', 'example.org');
    poller.relationshipsChanged();
    for (let i = 0; i < 100 && !poller.trustDomains.includes('second.test'); i++) await new Promise((r) => setTimeout(r, 5));
    expect(poller.trustDomains.sort()).toEqual([PEER, 'second.test']);
    expect(poller.nextDelayMs('second.test')).toBe(0);
    store.relationships.delete('second.test');
    poller.relationshipsChanged();
    for (let i = 0; i < 100 && poller.trustDomains.includes('second.test'); i++) await new Promise((r) => setTimeout(r, 5));
    expect(poller.trustDomains).toEqual([PEER]);
    await expect(poller.refresh('second.test')).rejects.toThrow(/no federation relationship with second\.test/);
  });
});

describe('BundlePoller with https_web', () => {
  it('trusts an explicitly added root, checks the host name, and refuses a root it was not given', async () => {
    const webCa = makeTestCa({ trustDomain: 'web-pki.test' });
    const cert = makeTestSvid(webCa, '/web', { dnsNames: ['localhost'] });
    const web = await TestBundleEndpoint.start([cert.certificate], cert.key.privateKey, () => undefined);
    closers.push(() => web.close());
    const webTd = 'webpeer.test';
    const webCaOfPeer = makeTestCa({ trustDomain: webTd });
    web.serve(new Bundle({ trustDomain: TrustDomain.parse(webTd), x509Authorities: [webCaOfPeer.certificate], sequence: 1 }).toJson());
    store.relationships.clear();
    store.relationships.set(webTd, { trustDomain: webTd, bundleEndpointUrl: `https://localhost:${web.port}/bundle`, bundleEndpointProfile: 'https_web', endpointSpiffeId: '' });
    await poller.stop();
    poller = newPoller({ webPkiExtraRoots: [webCa.certificate] });
    await poller.start();
    await poller.refresh(webTd);
    expect(store.bundles.get(webTd)?.sequence).toBe(1);

    // 127.0.0.1 is not a name in the certificate.
    store.relationships.set(webTd, { trustDomain: webTd, bundleEndpointUrl: `https://127.0.0.1:${web.port}/bundle`, bundleEndpointProfile: 'https_web', endpointSpiffeId: '' });
    poller.relationshipsChanged();
    for (let i = 0; i < 100 && !String(logger.lines.at(-1)?.fields.reason ?? '').startsWith('tls'); i++) await new Promise((r) => setTimeout(r, 5));
    await expect(poller.refresh(webTd)).rejects.toMatchObject({ reason: 'tls_wrong_host' });

    // Without the extra root, the system roots do not know this CA.
    await poller.stop();
    store.relationships.set(webTd, { trustDomain: webTd, bundleEndpointUrl: `https://localhost:${web.port}/bundle`, bundleEndpointProfile: 'https_web', endpointSpiffeId: '' });
    poller = newPoller();
    await poller.start();
    await expect(poller.refresh(webTd)).rejects.toMatchObject({ reason: 'tls_untrusted' });
  });
});
