import { describe, expect, it } from 'vitest';
import type { RegistrationEntry } from '../registration/entry.js';
import { MAX_JWT_SVID_AUDIENCE_LENGTH, MAX_JWT_SVID_AUDIENCES } from '../spiffe/jwt/limits.js';
import { JwtSvidCache, type JwtSvidCacheConfig } from './jwt-cache.js';
import { SILENT_AGENT_LOGGER } from './logger.js';
import { testEntry } from './testing.js';

/** A hand-written server: mints tokens of `tokenLength` characters, `ttl` seconds, on an injected clock. */
class FakeMinter {
  ms = Date.parse('2030-01-01T00:00:00Z');
  ttl = 300;
  tokenLength = 1000;
  readonly mints: { entryId: string; audience: string[] }[] = [];
  readonly #ids = new Map<string, string>();

  entry(entryId: string, path: string): RegistrationEntry {
    const e = testEntry({ entryId, spiffeId: `spiffe://example.org${path}` });
    this.#ids.set(entryId, e.spiffeId);
    return e;
  }

  cache(limits: Pick<JwtSvidCacheConfig, 'maxSize' | 'maxBytes' | 'maxPerIdentity'>): JwtSvidCache {
    return new JwtSvidCache({
      mint: async (entryId, audience) => {
        this.mints.push({ entryId, audience: [...audience] });
        const iat = Math.floor(this.ms / 1000);
        return { spiffeId: this.#ids.get(entryId) ?? '', token: `token-${this.mints.length}.`.padEnd(this.tokenLength, 'x'), issuedAt: iat, expiresAt: iat + this.ttl };
      },
      isCurrent: () => true,
      now: () => new Date(this.ms),
      log: SILENT_AGENT_LOGGER,
      ...limits,
    });
  }
}

/** The largest audience set the limits allow, distinct per `i`. */
function bigAudience(i: number): string[] {
  return Array.from({ length: MAX_JWT_SVID_AUDIENCES }, (_, j) => `aud-${i}-${j}-`.padEnd(MAX_JWT_SVID_AUDIENCE_LENGTH, 'a'));
}

describe('JwtSvidCache bounds (memory exhaustion by one entitled workload)', () => {
  it('keeps the accounted bytes within the byte budget, evicting the least recently used; a re-used set is served from cache', async () => {
    const f = new FakeMinter();
    const maxBytes = 1_000_000;
    const cache = f.cache({ maxSize: 10_000, maxBytes, maxPerIdentity: 1000 });
    const e = f.entry('e', '/greedy');
    // Fewest bytes an entry can take, whatever the estimate: its audiences (in the key) and token.
    const minEntry = MAX_JWT_SVID_AUDIENCES * MAX_JWT_SVID_AUDIENCE_LENGTH + f.tokenLength;
    for (let i = 0; i < 80; i++) {
      await cache.get(e, bigAudience(i));
      expect(cache.size * minEntry, `after ${i + 1} sets`).toBeLessThanOrEqual(maxBytes);
    }
    // The accounted bytes stay within the budget at every step.
    for (let i = 80; i < 100; i++) {
      await cache.get(e, bigAudience(i));
      expect(cache.stats().bytes, `after ${i + 1} sets`).toBeLessThanOrEqual(maxBytes);
      expect(cache.stats().bytes).toBeGreaterThan(maxBytes - 2 * minEntry); // full, not emptied
    }
    expect(f.mints).toHaveLength(100);
    const held = cache.size;
    expect(held).toBeGreaterThan(10); // the budget is used, not emptied
    expect(held).toBeLessThan(30);
    expect(cache.stats()).toMatchObject({ entries: held, identities: 1, largestIdentity: held, maxBytes });

    // The most recent set is served from cache: same token, no new mint.
    const last = await cache.get(e, bigAudience(99));
    expect(f.mints).toHaveLength(100);
    expect(last.token.startsWith('token-100.')).toBe(true);
    // Use the oldest cached set, then add one: the next-oldest goes, not the used one (LRU).
    const oldest = 100 - held;
    await cache.get(e, [...bigAudience(oldest)].reverse()); // same set, any order
    expect(f.mints).toHaveLength(100);
    await cache.get(e, bigAudience(100));
    expect(f.mints).toHaveLength(101);
    await cache.get(e, bigAudience(oldest));
    expect(f.mints).toHaveLength(101);
    await cache.get(e, bigAudience(oldest + 1));
    expect(f.mints).toHaveLength(102);
    // The first set was evicted long ago: minted again.
    await cache.get(e, bigAudience(0));
    expect(f.mints).toHaveLength(103);
    expect(cache.stats().bytes).toBeLessThanOrEqual(maxBytes);

    // Dropping entries gives their bytes back.
    const entries = cache.stats().entries;
    expect(cache.dropWhere(() => true)).toBe(entries);
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0, identities: 0 });
  });

  it('caps the audience sets cached per SPIFFE ID, so one identity cannot push the others out', async () => {
    const f = new FakeMinter();
    const cache = f.cache({ maxSize: 10_000, maxPerIdentity: 4 });
    const a = f.entry('a', '/greedy');
    const b = f.entry('b', '/quiet');
    await cache.get(b, ['b1']);
    await cache.get(b, ['b2']);
    for (let i = 0; i < 10; i++) await cache.get(a, [`a${i}`]);
    expect(cache.size).toBe(6);
    expect(cache.stats()).toMatchObject({ entries: 6, identities: 2, largestIdentity: 4 });
    // The other identity's tokens are still served from cache.
    await cache.get(b, ['b1']);
    await cache.get(b, ['b2']);
    expect(f.mints).toHaveLength(12);
    // Within the identity, least recently used first: a6 (used now) outlives a7.
    await cache.get(a, ['a6']);
    await cache.get(a, ['a10']);
    expect(f.mints).toHaveLength(13);
    await cache.get(a, ['a6']);
    expect(f.mints).toHaveLength(13);
    await cache.get(a, ['a7']);
    expect(f.mints).toHaveLength(14);
    expect(cache.stats().largestIdentity).toBe(4);
    // retain() keeps the accounting: the dropped identity's entries and bytes are gone.
    const before = cache.stats().bytes;
    cache.retain(new Set([b.spiffeId]));
    expect(cache.stats()).toMatchObject({ entries: 2, identities: 1, largestIdentity: 2 });
    expect(cache.stats().bytes).toBeLessThan(before);
  });

  it('serves a token larger than the whole budget without caching it', async () => {
    const f = new FakeMinter();
    const cache = f.cache({ maxSize: 10_000, maxBytes: 10_000 });
    const e = f.entry('e', '/w');
    await cache.get(e, ['small']);
    expect(cache.size).toBe(1);
    f.tokenLength = 20_000;
    f.ms += 200_000; // past half-life: re-minted, now too large to keep
    const big = await cache.get(e, ['small']);
    expect(big.token).toHaveLength(20_000);
    expect(cache.size).toBe(0); // the superseded token is gone too
    expect(cache.stats().bytes).toBe(0);
    await cache.get(e, ['small']);
    expect(f.mints).toHaveLength(3);
  });

  it('past a bound, expired tokens go before live ones', async () => {
    const f = new FakeMinter();
    const cache = f.cache({ maxSize: 10_000, maxPerIdentity: 2 });
    const e = f.entry('e', '/w');
    await cache.get(e, ['live']);
    f.ttl = 10;
    await cache.get(e, ['short']); // more recently used, but expires first
    f.ttl = 300;
    f.ms += 20_000;
    await cache.get(e, ['third']);
    expect(cache.size).toBe(2);
    await cache.get(e, ['live']);
    expect(f.mints).toHaveLength(3);
  });

  it('refuses bad limits and out-of-bounds audiences as caller misuse (TypeError), before minting', async () => {
    const f = new FakeMinter();
    for (const bad of [{ maxBytes: 0 }, { maxPerIdentity: -1 }, { maxSize: 1.5 }, { maxBytes: Number.NaN }]) {
      expect(() => f.cache(bad)).toThrow(TypeError);
    }
    const cache = f.cache({});
    expect(cache.stats()).toMatchObject({ maxSize: 10_000, maxBytes: 16 * 1024 * 1024, maxPerIdentity: 64 });
    const e = f.entry('e', '/w');
    const many = Array.from({ length: MAX_JWT_SVID_AUDIENCES + 1 }, (_, i) => `a${i}`);
    await expect(cache.get(e, many)).rejects.toThrow(new TypeError('JwtSvidCache.get: too many audiences: 33 distinct values (at most 32)'));
    await expect(cache.get(e, ['ok', 'x'.repeat(MAX_JWT_SVID_AUDIENCE_LENGTH + 1)])).rejects.toThrow(TypeError);
    expect(f.mints).toHaveLength(0);
  });
});
