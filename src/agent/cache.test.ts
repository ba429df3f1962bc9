import { describe, expect, it } from 'vitest';
import type { WorkloadAttestor } from '../attestors/workload/attestor.js';
import { TrustDomain } from '../spiffe/id.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import type { WorkloadUpdate } from '../workloadapi/identities.js';
import { SvidCache, jwtCacheKey } from './cache.js';
import { renewalTime } from './clock.js';
import { FakeServer, ManualScheduler, testEntry } from './testing.js';

const td = TrustDomain.parse('example.org');
const uid1000 = [{ type: 'unix', value: 'uid:1000' }];
const caller = { pid: 1, uid: 1000, gid: 1000, startTime: 1 };

function fixedAttestor(selectors = uid1000): WorkloadAttestor {
  return { name: 'unix', attest: async () => selectors };
}

function setup(opts: { random?: () => number; maxBatch?: number } = {}) {
  const sched = new ManualScheduler();
  const server = new FakeServer({ scheduler: sched });
  const client = server.client({ mode: 'agent', roots: [], certChain: [], privateKey: server.ca.key.privateKey });
  const cache = new SvidCache({
    trustDomain: td,
    issuer: client,
    workloadAttestors: [fixedAttestor()],
    scheduler: sched,
    random: opts.random ?? (() => 0.5),
    ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
  });
  const push = async (): Promise<void> => {
    cache.applyUpdate({ entries: server.entries, bundle: server.bundle(), federatedBundles: server.federatedBundles, sequence: 1 });
    await cache.settled();
  };
  return { sched, server, client, cache, push };
}

function leafSerial(u: WorkloadUpdate, i = 0): string {
  return parseCertificate(u.identities[i]?.certificates[0] as Buffer).serialHex;
}

describe('renewalTime', () => {
  it('is half the lifetime, moved by at most 10 % of that half', () => {
    const nb = new Date(0);
    const na = new Date(3600_000);
    expect(renewalTime(nb, na, () => 0.5).getTime()).toBe(1800_000);
    expect(renewalTime(nb, na, () => 0).getTime()).toBe(1620_000);
    expect(renewalTime(nb, na, () => 0.999999).getTime()).toBeCloseTo(1980_000, -2);
  });
});

describe('SvidCache', () => {
  it('refuses workloads before the first authorised-entry update', async () => {
    const { cache } = setup();
    await expect(cache.attest(caller)).rejects.toMatchObject({ code: 'ERR_AGENT_NOT_READY' });
    expect(() => cache.subscribe(uid1000, () => {})).toThrow(/not received/);
  });

  it('signs one X509-SVID per entry in batches, each verifying against the bundle', async () => {
    const { server, cache, push } = setup({ maxBatch: 2 });
    server.entries = [1, 2, 3].map((i) => testEntry({ entryId: `e${i}`, spiffeId: `spiffe://example.org/w${i}`, createdAt: i }));
    await push();
    expect(server.batches).toEqual([2, 1]);
    for (const i of [1, 2, 3]) {
      const s = cache.svidFor(`e${i}`);
      expect(s?.spiffeId).toBe(`spiffe://example.org/w${i}`);
      const v = verifyX509Svid(s?.certChain ?? [], { trustDomain: td, x509Authorities: [server.ca.certificate] }, { now: new Date('2030-01-01T00:00:10Z') });
      expect(v.spiffeId.toString()).toBe(`spiffe://example.org/w${i}`);
    }
    expect(await cache.attest(caller)).toEqual(uid1000);
  });

  it('renews at half-life ± 10 % (jitter from the injected random), and streams the new SVID', async () => {
    for (const [r, frac] of [[0, 0.45], [0.5, 0.5], [0.999, 0.5499]] as const) {
      const { sched, server, cache, push } = setup({ random: () => r });
      server.entries = [testEntry({ entryId: 'e1', spiffeId: 'spiffe://example.org/w1' })];
      await push();
      const s1 = cache.svidFor('e1');
      if (s1 === undefined) throw new Error('no SVID');
      const life = s1.notAfter.getTime() - s1.notBefore.getTime();
      expect((s1.renewAt.getTime() - s1.notBefore.getTime()) / life).toBeCloseTo(frac, 3);
      const updates: WorkloadUpdate[] = [];
      cache.subscribe(uid1000, (u) => updates.push(u));
      expect(updates).toHaveLength(1);
      sched.set(new Date(s1.renewAt.getTime() - 1000));
      await cache.settled();
      expect(server.batches).toEqual([1]);
      expect(cache.svidFor('e1')?.serialHex).toBe(s1.serialHex);
      sched.set(s1.renewAt);
      await cache.settled();
      expect(server.batches).toEqual([1, 1]);
      const s2 = cache.svidFor('e1');
      expect(s2?.serialHex).not.toBe(s1.serialHex);
      expect(updates).toHaveLength(2);
      expect(leafSerial(updates[1] as WorkloadUpdate)).toBe(s2?.serialHex);
      expect(leafSerial(updates[0] as WorkloadUpdate)).toBe(s1.serialHex);
    }
  });

  it('drops the identity of an entry that disappeared, and its JWT-SVIDs', async () => {
    const { server, cache, push } = setup();
    server.entries = [
      testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', createdAt: 1 }),
      testEntry({ entryId: 'b', spiffeId: 'spiffe://example.org/b', createdAt: 2 }),
    ];
    await push();
    const updates: WorkloadUpdate[] = [];
    cache.subscribe(uid1000, (u) => updates.push(u));
    await cache.fetchJwtSvid(uid1000, { audience: ['x'] });
    expect(cache.jwtCacheSize).toBe(2);
    server.entries = [server.entries[1]!];
    await push();
    expect(updates.at(-1)?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/b']);
    expect(cache.svidFor('a')).toBeUndefined();
    expect(cache.jwtCacheSize).toBe(1);
    server.entries = [];
    await push();
    expect(updates.at(-1)?.identities).toEqual([]);
  });

  it('hands one shared update to subscribers with the same selector set, and its own to each other set', async () => {
    const { server, cache, push } = setup();
    const gid5 = { type: 'unix', value: 'gid:5' };
    server.entries = [testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', createdAt: 1 })];
    await push();
    const got: WorkloadUpdate[][] = [[], [], []];
    cache.subscribe(uid1000, (u) => got[0]!.push(u));
    cache.subscribe([gid5, ...uid1000, ...uid1000], (u) => got[1]!.push(u));
    cache.subscribe([...uid1000, gid5], (u) => got[2]!.push(u));
    server.entries = [...server.entries, testEntry({ entryId: 'b', spiffeId: 'spiffe://example.org/b', createdAt: 2, selectors: [...uid1000, gid5] })];
    await push();
    const [only, withGid, sameSet] = got.map((g) => g.at(-1));
    // The same selector set in another order (and with repeats) is entitled to the same.
    expect(withGid).toBe(sameSet);
    expect(withGid?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a', 'spiffe://example.org/b']);
    // A smaller set never receives the other set's update (b needs gid:5).
    expect(only).not.toBe(withGid);
    expect(only?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a']);
  });

  it('reuses one computed update for new callers until the state changes or time would change it', async () => {
    const { sched, server, cache, push } = setup();
    const nowSec = Math.floor(sched.now().getTime() / 1000);
    server.entries = [
      testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', createdAt: 1, x509SvidTtl: 3600 }),
      testEntry({ entryId: 'b', spiffeId: 'spiffe://example.org/b', createdAt: 2, x509SvidTtl: 3600, expiresAt: nowSec + 600 }),
    ];
    await push();
    const first = cache.updateFor(uid1000);
    const seen: WorkloadUpdate[] = [];
    cache.subscribe([...uid1000, ...uid1000], (u) => seen.push(u));
    // Same selector set, nothing changed: the very same object (its encoding is reused).
    expect(cache.updateFor(uid1000)).toBe(first);
    expect(seen[0]).toBe(first);
    expect(first?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a', 'spiffe://example.org/b']);
    // Time alone: past b's entry expiry, b is no longer served (memo or not).
    sched.set(new Date((nowSec + 600) * 1000));
    const afterExpiry = cache.updateFor(uid1000);
    expect(afterExpiry).not.toBe(first);
    expect(afterExpiry?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a']);
    expect(cache.updateFor(uid1000)).toBe(afterExpiry);
    // A change of state: a new entry's SVID arrives, and every caller sees it at once.
    server.entries = [...server.entries, testEntry({ entryId: 'c', spiffeId: 'spiffe://example.org/c', createdAt: 3 })];
    await push();
    expect(cache.updateFor(uid1000)?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a', 'spiffe://example.org/c']);
    expect(seen.at(-1)).toBe(cache.updateFor(uid1000));
    // Past a's NotAfter (with the server away, so nothing is re-issued), a is gone too.
    server.setAvailable(false);
    sched.set(new Date(cache.svidFor('a')!.notAfter.getTime()));
    expect(cache.updateFor(uid1000)?.identities.map((i) => i.spiffeId)).not.toContain('spiffe://example.org/a');
  });

  it('notifies many subscribers over several turns, each ending with the newest state', async () => {
    const { server, cache, push } = setup();
    const a = testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', createdAt: 1 });
    const b = testEntry({ entryId: 'b', spiffeId: 'spiffe://example.org/b', createdAt: 2 });
    server.entries = [a];
    await push();
    const got: WorkloadUpdate[][] = Array.from({ length: 300 }, () => []);
    for (const g of got) cache.subscribe(uid1000, (u) => g.push(u));
    server.entries = [a, b];
    await push();
    for (const g of got) expect(g.at(-1)?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a', 'spiffe://example.org/b']);
    // Two changes in a row: the second pass starts over, so every subscriber ends on the last state.
    cache.applyUpdate({ entries: [a], bundle: server.bundle(), federatedBundles: [], sequence: 2 });
    cache.applyUpdate({ entries: [], bundle: server.bundle(), federatedBundles: [], sequence: 3 });
    expect(got.filter((g) => g.at(-1)?.identities.length === 0).length).toBeLessThan(got.length); // not all in one turn
    await cache.settled();
    for (const g of got) expect(g.at(-1)?.identities).toEqual([]);
  });

  it('keeps a stable order (oldest entry first) across rotations and new entries', async () => {
    const { sched, server, cache, push } = setup();
    server.entries = [
      testEntry({ entryId: 'z-old', spiffeId: 'spiffe://example.org/old', createdAt: 10, x509SvidTtl: 600 }),
      testEntry({ entryId: 'a-new', spiffeId: 'spiffe://example.org/new', createdAt: 20, x509SvidTtl: 3600 }),
    ];
    await push();
    const updates: WorkloadUpdate[] = [];
    cache.subscribe(uid1000, (u) => updates.push(u));
    sched.advance(400_000); // rotates only the 600 s one
    await cache.settled();
    server.entries = [...server.entries, testEntry({ entryId: '0-newest', spiffeId: 'spiffe://example.org/newest', createdAt: 30 })];
    await push();
    // createdAt has one-second resolution: an entry of the same second arriving later (with
    // a smaller ID) goes after the one already held, not before it.
    server.entries = [...server.entries, testEntry({ entryId: '0-same-second', spiffeId: 'spiffe://example.org/same', createdAt: 10 })];
    await push();
    expect(updates.length).toBeGreaterThanOrEqual(4);
    for (const u of updates) expect(u.identities[0]?.spiffeId).toBe('spiffe://example.org/old');
    expect(updates.at(-1)?.identities.map((i) => i.spiffeId)).toEqual([
      'spiffe://example.org/old', 'spiffe://example.org/same', 'spiffe://example.org/new', 'spiffe://example.org/newest',
    ]);
  });

  it('serves only entries whose selectors are a subset of the caller\'s, with their hints and federated bundles', async () => {
    const { server, cache, push } = setup();
    const fedCa = new FakeServer({ scheduler: new ManualScheduler(), trustDomain: 'partner.org' });
    server.federatedBundles = [fedCa.bundle()];
    server.entries = [
      testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', createdAt: 1, hint: 'internal', federatesWith: ['partner.org'] }),
      testEntry({ entryId: 'b', spiffeId: 'spiffe://example.org/b', createdAt: 2, selectors: [...uid1000, { type: 'unix', value: 'gid:5' }] }),
      testEntry({ entryId: 'c', spiffeId: 'spiffe://example.org/c', createdAt: 3, hint: 'internal' }),
    ];
    await push();
    let got: WorkloadUpdate | undefined;
    cache.subscribe(uid1000, (u) => (got = u));
    // b needs gid:5 too; c repeats a's hint, so only the first keeps it.
    expect(got?.identities.map((i) => [i.spiffeId, i.hint])).toEqual([['spiffe://example.org/a', 'internal']]);
    expect([...(got?.federatedBundles.keys() ?? [])]).toEqual(['spiffe://partner.org']);
    expect(got?.bundle.trustDomain).toBe('spiffe://example.org');
    let none: WorkloadUpdate | undefined;
    cache.subscribe([{ type: 'unix', value: 'uid:0' }], (u) => (none = u));
    expect(none?.identities).toEqual([]);
  });

  it('waits for an entry\'s first SVID before the first callback', async () => {
    const { server, cache } = setup();
    server.entries = [testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a' })];
    cache.applyUpdate({ entries: server.entries, bundle: server.bundle(), federatedBundles: [], sequence: 1 });
    const updates: WorkloadUpdate[] = [];
    cache.subscribe(uid1000, (u) => updates.push(u));
    expect(updates).toHaveLength(0);
    await cache.settled();
    expect(updates).toHaveLength(1);
    expect(updates[0]?.identities[0]?.spiffeId).toBe('spiffe://example.org/a');
  });

  it('keeps serving while the server is down until each SVID expires, then re-issues when it is back', async () => {
    const { sched, server, cache, push } = setup();
    server.entries = [testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', x509SvidTtl: 600 })];
    await push();
    const s1 = cache.svidFor('a')!;
    const updates: WorkloadUpdate[] = [];
    cache.subscribe(uid1000, (u) => updates.push(u));
    server.setAvailable(false);
    sched.set(new Date(s1.notAfter.getTime() - 1000));
    await cache.settled();
    expect(updates).toHaveLength(1);
    expect(cache.updateFor(uid1000)?.identities).toHaveLength(1);
    sched.set(new Date(s1.notAfter.getTime() + 1));
    await cache.settled();
    expect(updates.at(-1)?.identities).toEqual([]);
    server.setAvailable(true);
    sched.advance(31_000); // past the longest backoff step
    await cache.settled();
    expect(updates.at(-1)?.identities).toHaveLength(1);
    expect(cache.svidFor('a')?.serialHex).not.toBe(s1.serialHex);
  });

  it('re-issues at once when the bundle no longer holds the SVID\'s authority', async () => {
    const { server, cache, push } = setup();
    server.entries = [testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a' })];
    await push();
    const s1 = cache.svidFor('a')!;
    server.replaceCa();
    await push();
    const s2 = cache.svidFor('a')!;
    expect(s2.serialHex).not.toBe(s1.serialHex);
    expect(() => verifyX509Svid(s2.certChain, { trustDomain: td, x509Authorities: [server.ca.certificate] }, { now: new Date('2030-01-01T00:00:10Z') })).not.toThrow();
  });

  it('does not wait for an entry the server refuses, and retries it later', async () => {
    const { sched, server, cache, push } = setup();
    server.entries = [testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a', createdAt: 1 }), testEntry({ entryId: 'b', spiffeId: 'spiffe://example.org/b', createdAt: 2 })];
    server.refuse.add('a');
    await push();
    let got: WorkloadUpdate | undefined;
    cache.subscribe(uid1000, (u) => (got = u));
    expect(got?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/b']);
    server.refuse.clear();
    sched.advance(30_000);
    await cache.settled();
    expect(got?.identities.map((i) => i.spiffeId)).toEqual(['spiffe://example.org/a', 'spiffe://example.org/b']);
  });

  it('caches JWT-SVIDs per (SPIFFE ID, sorted audience set) and re-mints past half-life', async () => {
    const { sched, server, cache, push } = setup();
    server.jwtTtlSeconds = 300;
    server.entries = [testEntry({ entryId: 'a', spiffeId: 'spiffe://example.org/a' })];
    await push();
    expect(jwtCacheKey('spiffe://example.org/a', ['b', 'a', 'b'])).toBe(jwtCacheKey('spiffe://example.org/a', ['a', 'b']));
    const t1 = await cache.fetchJwtSvid(uid1000, { audience: ['b', 'a'] });
    const t2 = await cache.fetchJwtSvid(uid1000, { audience: ['a', 'b', 'a'] });
    expect(t2[0]?.token).toBe(t1[0]?.token);
    expect(server.jwtMints).toHaveLength(1);
    expect(server.jwtMints[0]?.audience).toEqual(['a', 'b']);
    await cache.fetchJwtSvid(uid1000, { audience: ['a'] });
    expect(server.jwtMints).toHaveLength(2);
    sched.advance(149_000);
    expect((await cache.fetchJwtSvid(uid1000, { audience: ['a', 'b'] }))[0]?.token).toBe(t1[0]?.token);
    sched.advance(2_000);
    const t3 = await cache.fetchJwtSvid(uid1000, { audience: ['a', 'b'] });
    expect(server.jwtMints).toHaveLength(3);
    expect(t3[0]?.token).not.toBe(t1[0]?.token);
    // Server down: past half-life the cached token is served until it expires, then the call fails.
    server.setAvailable(false);
    sched.advance(200_000);
    expect((await cache.fetchJwtSvid(uid1000, { audience: ['a', 'b'] }))[0]?.token).toBe(t3[0]?.token);
    sched.advance(101_000);
    await expect(cache.fetchJwtSvid(uid1000, { audience: ['a', 'b'] })).rejects.toMatchObject({ grpcCode: 14 });
    // Only the asked identity, and none for a stranger.
    server.setAvailable(true);
    expect(await cache.fetchJwtSvid(uid1000, { audience: ['a'], spiffeId: 'spiffe://example.org/other' })).toEqual([]);
    expect(await cache.fetchJwtSvid([{ type: 'unix', value: 'uid:0' }], { audience: ['a'] })).toEqual([]);
  });
});
