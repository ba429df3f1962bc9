import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BundleSource, DEFAULT_CREATE_TIMEOUT_MS, JwtSource, X509Source } from './sources.js';
import { FakeWorkloadApi, jwtBundlesResponse, makeFakeTrustDomain, x509BundlesResponse, x509Response, type FakeTrustDomain } from './testing.js';

let td: FakeTrustDomain;
let fed: FakeTrustDomain;
const cleanups: Array<() => unknown> = [];
beforeAll(() => {
  td = makeFakeTrustDomain('example.org');
  fed = makeFakeTrustDomain('partner.test');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fake(cfg: Partial<ConstructorParameters<typeof FakeWorkloadApi>[0]> = {}): Promise<FakeWorkloadApi> {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-src-'));
  const f = await FakeWorkloadApi.start({ socketPath: join(dir, 'api.sock'), ...cfg });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => f.stop({ abrupt: true }));
  return f;
}

const fast = { backoff: { initialMs: 20, maxMs: 100 } };

describe('X509Source', () => {
  it('holds the latest context and emits updates', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/one')], [fed]) });
    const src = await X509Source.create({ address: f.address, ...fast });
    cleanups.push(() => src.close());
    expect(src.getX509Svid().id.toString()).toBe('spiffe://example.org/one');
    expect(src.getBundleForTrustDomain('partner.test').x509Authorities[0]!.equals(fed.ca.certificate)).toBe(true);
    expect(() => src.getBundleForTrustDomain('unknown.test')).toThrow(/no X.509 bundle for trust domain unknown.test/);
    const updated = new Promise((r) => src.once('update', r));
    f.setX509(x509Response(td, [td.svid('/two')]));
    await updated;
    expect(src.getX509Svid().id.path).toBe('/two');
    expect(src.getX509Context().bundles.has('partner.test')).toBe(false);
  });

  it('keeps the last good state when a malformed message arrives', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/good')]) });
    const src = await X509Source.create({ address: f.address, ...fast });
    cleanups.push(() => src.close());
    const errored = new Promise<[Error, boolean]>((r) => src.on('error', (e: Error, retry: boolean) => r([e, retry])));
    const bad = x509Response(td, [td.svid('/bad')]);
    bad.svids[0]!.x509_svid = Buffer.from('junk');
    f.setX509(bad);
    const [err, retry] = await errored;
    expect(err.message).toMatch(/unusable response/);
    expect(retry).toBe(true);
    expect(src.getX509Svid().id.path).toBe('/good');
  });

  it('waits through PERMISSION_DENIED until the workload is registered', async () => {
    const f = await fake({ x509: { code: status.PERMISSION_DENIED, details: 'no identity issued' } });
    const src = new X509Source({ address: f.address, ...fast });
    cleanups.push(() => src.close());
    const denied = new Promise((r) => src.once('error', r));
    await denied;
    expect(() => src.getX509Svid()).toThrow(/no data yet/);
    f.setX509(x509Response(td, [td.svid('/registered')]));
    await src.ready();
    expect(src.getX509Svid().id.path).toBe('/registered');
  });

  it('create() times out and closes when no agent answers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-src-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await expect(X509Source.create({ socketPath: join(dir, 'none.sock'), ...fast, timeoutMs: 150 })).rejects.toThrow(/no answer from the Workload API/);
  });

  it('create() without a timeout gives up after the documented default (DEFAULT_CREATE_TIMEOUT_MS), not never', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-src-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let outcome: string | undefined;
      void X509Source.create({ socketPath: join(dir, 'none.sock'), ...fast }).then(
        () => (outcome = 'ready'),
        (e: unknown) => (outcome = String(e)),
      );
      await vi.advanceTimersByTimeAsync(DEFAULT_CREATE_TIMEOUT_MS - 1);
      expect(outcome).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      expect(outcome).toMatch(new RegExp(`no answer from the Workload API at unix://.*none.sock within ${DEFAULT_CREATE_TIMEOUT_MS} ms`));
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses to hand out an expired SVID', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/short', { ttlSeconds: 60 })]) });
    const src = await X509Source.create({ address: f.address, ...fast, now: () => new Date(Date.now() + 3_600_000) });
    cleanups.push(() => src.close());
    expect(() => src.getX509Svid()).toThrow(/expired at/);
  });
});

describe('JwtSource and BundleSource', () => {
  it('JwtSource keeps JWT bundles and fetches JWT-SVIDs', async () => {
    const f = await fake({
      jwtBundles: jwtBundlesResponse([td]),
      jwtSvid: (req) => ({ svids: [{ spiffe_id: 'spiffe://example.org/w', svid: td.signer.mint({ spiffeId: td.trustDomain.idWithPath('/w'), audience: req.audience, ttlSeconds: 60 }), hint: '' }] }),
    });
    const src = await JwtSource.create({ address: f.address, ...fast });
    cleanups.push(() => src.close());
    expect(src.getBundleForTrustDomain('example.org').jwtAuthorities.has(td.jwtKid)).toBe(true);
    const svid = await src.fetchJwtSvid({ audience: 'db' });
    expect(svid.audience).toEqual(['db']);
  });

  it('BundleSource merges X.509 and JWT bundles per trust domain', async () => {
    const f = await fake({ x509Bundles: x509BundlesResponse([td, fed]), jwtBundles: jwtBundlesResponse([td]) });
    const src = await BundleSource.create({ address: f.address, ...fast });
    cleanups.push(() => src.close());
    const b = src.getBundleForTrustDomain('example.org');
    expect(b.x509Authorities[0]!.equals(td.ca.certificate)).toBe(true);
    expect(b.jwtAuthorities.has(td.jwtKid)).toBe(true);
    expect(src.getBundleForTrustDomain('partner.test').jwtAuthorities.size).toBe(0);
    expect(src.getBundles()).toHaveLength(2);
  });
});
