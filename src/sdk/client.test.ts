import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MayflyError } from '../spiffe/errors.js';
import { SpiffeId } from '../spiffe/id.js';
import { exportPkcs8Der } from '../spiffe/keys.js';
import { workloadServiceDefinition } from '../wire/workload/proto.js';
import { backoffDelay, WorkloadApiClient } from './client.js';
import { WorkloadApiError } from './errors.js';
import type { X509Context } from './model.js';
import {
  FakeWorkloadApi, jwtBundlesResponse, makeFakeTrustDomain, validateResponse, x509BundlesResponse, x509Response, type FakeTrustDomain,
} from './testing.js';

let dir: string;
let td: FakeTrustDomain;
let fed: FakeTrustDomain;
const cleanups: Array<() => unknown> = [];

beforeAll(() => {
  td = makeFakeTrustDomain('example.org', { intermediate: true });
  fed = makeFakeTrustDomain('partner.test');
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function socket(): string {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-sdk-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'api.sock');
}

async function fake(cfg: Partial<ConstructorParameters<typeof FakeWorkloadApi>[0]> = {}): Promise<FakeWorkloadApi> {
  const f = await FakeWorkloadApi.start({ socketPath: socket(), ...cfg });
  cleanups.push(() => f.stop());
  return f;
}

function client(f: FakeWorkloadApi, extra: Partial<ConstructorParameters<typeof WorkloadApiClient>[0]> = {}): WorkloadApiClient {
  const c = new WorkloadApiClient({ address: f.address, backoff: { initialMs: 20, maxMs: 100 }, ...extra });
  cleanups.push(() => c.close());
  return c;
}

/** Resolves with the next value `register` delivers. */
function nextValue<T>(): { push: (v: T) => void; next: () => Promise<T> } {
  const queue: T[] = [];
  const waiters: Array<(v: T) => void> = [];
  return {
    push: (v) => {
      const w = waiters.shift();
      if (w) w(v);
      else queue.push(v);
    },
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift() as T) : new Promise<T>((r) => waiters.push(r))),
  };
}

describe('WorkloadApiClient X.509', () => {
  it('fetches and checks the X.509 context, sending the security header', async () => {
    const a = td.svid('/web', { hint: 'frontend' });
    const b = td.svid('/db');
    const f = await fake({ x509: x509Response(td, [a, b], [fed]) });
    const ctx = await client(f).fetchX509Context();
    expect(ctx.svids.map((s) => s.id.toString())).toEqual(['spiffe://example.org/web', 'spiffe://example.org/db']);
    const svid = ctx.svids[0]!;
    expect(svid.hint).toBe('frontend');
    expect(svid.certificates).toHaveLength(2); // leaf + intermediate
    expect(svid.certificates[0]!.equals(a.certificates[0]!)).toBe(true);
    expect(createPublicKey(svid.privateKey).equals(a.key.publicKey)).toBe(true);
    expect(svid.expiresAt.getTime()).toBeGreaterThan(Date.now());
    expect(ctx.bundles.get('example.org')!.x509Authorities[0]!.equals(td.ca.certificate)).toBe(true);
    expect(ctx.bundles.get('partner.test')!.x509Authorities[0]!.equals(fed.ca.certificate)).toBe(true);
    expect(f.calls).toEqual([{ method: 'FetchX509SVID', securityHeader: ['true'], request: {} }]);
  });

  it('the fake refuses a call without the header, as an agent does', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/web')]) });
    const raw = new Client(f.address, credentials.createInsecure());
    cleanups.push(() => raw.close());
    const m = workloadServiceDefinition().FetchX509SVID!;
    const code = await new Promise<number>((resolve) => {
      const call = raw.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, new Metadata());
      call.on('error', (e: { code: number }) => resolve(e.code));
    });
    expect(code).toBe(status.INVALID_ARGUMENT);
  });

  it('rejects an SVID whose spiffe_id differs from the certificate', async () => {
    const res = x509Response(td, [td.svid('/web')]);
    res.svids[0]!.spiffe_id = 'spiffe://example.org/admin';
    const f = await fake({ x509: res });
    await expect(client(f).fetchX509Context()).rejects.toMatchObject({ code: 'ERR_WORKLOAD_API_RESPONSE', message: /differs from the leaf's URI SAN/ });
  });

  it('rejects an SVID whose key does not match its certificate', async () => {
    const res = x509Response(td, [td.svid('/web')]);
    res.svids[0]!.x509_svid_key = exportPkcs8Der(td.svid('/other').key.privateKey);
    const f = await fake({ x509: res });
    await expect(client(f).fetchX509Context()).rejects.toMatchObject({ code: 'ERR_WORKLOAD_API_RESPONSE', message: /private key does not match/ });
  });

  it('reports PERMISSION_DENIED with operator advice', async () => {
    const f = await fake({ x509: { code: status.PERMISSION_DENIED, details: 'no identity issued' } });
    const err = (await client(f).fetchX509Context().catch((e: unknown) => e)) as WorkloadApiError;
    expect(err).toBeInstanceOf(WorkloadApiError);
    expect(err.grpcCode).toBe(status.PERMISSION_DENIED);
    expect(err.message).toMatch(/^no identity issued for this workload: check its registration entry selectors/);
  });

  it('reports UNAVAILABLE when no agent listens on the socket', async () => {
    const c = new WorkloadApiClient({ socketPath: join(socket()), backoff: { initialMs: 20 } });
    cleanups.push(() => c.close());
    const err = (await c.fetchX509Context().catch((e: unknown) => e)) as WorkloadApiError;
    expect(err.grpcCode).toBe(status.UNAVAILABLE);
    expect(err.message).toMatch(/is the agent running/);
  });

  it('fetches X.509 bundles', async () => {
    const f = await fake({ x509Bundles: x509BundlesResponse([td, fed]) });
    const set = await client(f).fetchX509Bundles();
    expect([...set].map((b) => b.trustDomain.name).sort()).toEqual(['example.org', 'partner.test']);
  });

  it('watch delivers every update on one stream', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/v1')]) });
    const q = nextValue<X509Context>();
    client(f).watchX509Context(q.push);
    expect((await q.next()).svids[0]!.id.path).toBe('/v1');
    f.setX509(x509Response(td, [td.svid('/v2')]));
    expect((await q.next()).svids[0]!.id.path).toBe('/v2');
    expect(f.calls.filter((c) => c.method === 'FetchX509SVID')).toHaveLength(1);
  });

  it.each([false, true])('watch reconnects with backoff after the agent restarts (abrupt: %s)', async (abrupt) => {
    const path = socket();
    let f = await FakeWorkloadApi.start({ socketPath: path, x509: x509Response(td, [td.svid('/before')]) });
    cleanups.push(() => f.stop());
    const q = nextValue<X509Context>();
    const errors: Array<[MayflyError, boolean]> = [];
    const c = client(f);
    c.watchX509Context(q.push, (e, retry) => errors.push([e, retry]));
    expect((await q.next()).svids[0]!.id.path).toBe('/before');
    await f.stop({ abrupt });
    // Let at least one reconnect attempt fail against the dead socket.
    while (errors.length < 2) await new Promise((r) => setTimeout(r, 10));
    f = await FakeWorkloadApi.start({ socketPath: path, x509: x509Response(td, [td.svid('/after')]) });
    expect((await q.next()).svids[0]!.id.path).toBe('/after');
    expect(errors.every(([e, retry]) => retry && e.code === 'ERR_WORKLOAD_API_CALL')).toBe(true);
    expect((errors[0]![0] as WorkloadApiError).grpcCode).toBe(abrupt ? status.CANCELLED : status.UNAVAILABLE);
    expect(errors.map(([e]) => (e as WorkloadApiError).grpcCode)).toContain(status.UNAVAILABLE);
  });

  it('watch stops for good on INVALID_ARGUMENT', async () => {
    const f = await fake({ x509: { code: status.INVALID_ARGUMENT, details: 'bad request' } });
    const q = nextValue<[MayflyError, boolean]>();
    client(f).watchX509Context(() => undefined, (e, retry) => q.push([e, retry]));
    const [err, retry] = await q.next();
    expect(retry).toBe(false);
    expect((err as WorkloadApiError).grpcCode).toBe(status.INVALID_ARGUMENT);
  });

  it('backs off linearly to 30 s like go-spiffe', () => {
    expect([1, 2, 3, 29, 30, 31, 100].map((n) => backoffDelay(n))).toEqual([1000, 2000, 3000, 29000, 30000, 30000, 30000]);
  });
});

describe('WorkloadApiClient JWT', () => {
  it('fetches JWT-SVIDs for an audience and a chosen SPIFFE ID', async () => {
    const f = await fake({
      jwtSvid: (req) => ({
        svids: [{ spiffe_id: req.spiffe_id, svid: td.signer.mint({ spiffeId: SpiffeId.parse(req.spiffe_id), audience: req.audience, ttlSeconds: 300 }), hint: 'h' }],
      }),
    });
    const svid = await client(f).fetchJwtSvid({ audience: ['db', 'cache'], spiffeId: 'spiffe://example.org/web' });
    expect(svid.spiffeId.toString()).toBe('spiffe://example.org/web');
    expect(svid.audience).toEqual(['db', 'cache']);
    expect(svid.hint).toBe('h');
    expect(f.calls).toEqual([{ method: 'FetchJWTSVID', securityHeader: ['true'], request: { audience: ['db', 'cache'], spiffe_id: 'spiffe://example.org/web' } }]);
    await expect(client(f).fetchJwtSvid({ audience: [] })).rejects.toThrow(TypeError);
  });

  it('fetches JWT bundles and validates through the agent', async () => {
    const f = await fake({
      jwtBundles: jwtBundlesResponse([td, fed]),
      validate: (req) =>
        req.audience === 'db' ? validateResponse('spiffe://example.org/web', { sub: 'spiffe://example.org/web', aud: ['db'], n: 1 }) : { code: status.INVALID_ARGUMENT, details: 'audience mismatch' },
    });
    const c = client(f);
    const bundles = await c.fetchJwtBundles();
    expect(bundles.get('example.org')!.jwtAuthorities.get(td.jwtKid)!.equals(td.jwtKey.publicKey)).toBe(true);
    expect(bundles.get('partner.test')!.jwtAuthorities.has(fed.jwtKid)).toBe(true);
    const ok = await c.validateJwtSvid({ token: 'x.y.z', audience: 'db' });
    expect(ok.spiffeId.toString()).toBe('spiffe://example.org/web');
    expect(ok.claims).toEqual({ sub: 'spiffe://example.org/web', aud: ['db'], n: 1 });
    await expect(c.validateJwtSvid({ token: 'x.y.z', audience: 'other' })).rejects.toMatchObject({ grpcCode: status.INVALID_ARGUMENT });
    expect(f.calls.every((call) => call.securityHeader.length === 1 && call.securityHeader[0] === 'true')).toBe(true);
  });

  it('watches JWT bundles', async () => {
    const f = await fake({ jwtBundles: jwtBundlesResponse([td]) });
    const q = nextValue<number>();
    client(f).watchJwtBundles((set) => q.push(set.size));
    expect(await q.next()).toBe(1);
    f.set('FetchJWTBundles', jwtBundlesResponse([td, fed]));
    expect(await q.next()).toBe(2);
  });
});
