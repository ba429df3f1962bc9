/**
 * @module agent/jwt-cache
 *
 * The agent's JWT-SVID cache, per (SPIFFE ID, audience set): a cached token is served until
 * half its lifetime has passed, then re-minted by the server; concurrent requests for one
 * key share one server call; past half-life a still-valid token keeps being served while
 * the server is unreachable.
 *
 * Threats it stops:
 * - serving a JWT-SVID for an identity the agent no longer holds. A minted token whose
 *   SPIFFE ID is not the entry's is refused; a token minted for an entry that changed or
 *   disappeared meanwhile is returned to its caller but not cached; `retain` drops tokens
 *   of SPIFFE IDs no entry names any more.
 * - memory exhaustion by one entitled workload. Every distinct audience set is a new cache
 *   entry, and a set may be up to 32 × 1,024 characters (spiffe/jwt/limits, checked again
 *   here), so a count bound alone let one workload grow the agent by a GiB. The cache is
 *   bounded three ways, each configurable: `maxBytes` (default 16 MiB) on the estimated
 *   memory of all entries (token + key + SPIFFE ID, 2 bytes a character for strings with
 *   characters past U+00FF, plus `ENTRY_OVERHEAD_BYTES`); `maxPerIdentity` (default 64)
 *   distinct audience sets per SPIFFE ID, so one identity holds at most ~5 MiB of maximal
 *   sets and cannot by itself push every other one out; and `maxSize` (default 10,000)
 *   entries in all. Past a bound, expired tokens go
 *   first, then the least recently used (of that identity, for `maxPerIdentity`). A token
 *   whose entry alone exceeds `maxBytes` is returned to its caller but not cached.
 *   A fetch is O(1) in the number of entries (Maps kept in use order); the sweep of
 *   expired tokens runs only when a bound is exceeded and a token may have expired since
 *   the last sweep (at most once per second of the clock: expiry times are whole seconds).
 *   Not bounded here: mints in flight (one per distinct key being fetched), which the
 *   Workload API endpoint bounds with its connection, stream and 64 KiB request limits.
 */
import type { RegistrationEntry } from '../registration/entry.js';
import { MayflyError } from '../spiffe/errors.js';
import { audienceLimitProblem } from '../spiffe/jwt/limits.js';
import type { AgentLogger } from './logger.js';
import type { IssuedJwtSvidWire } from './server-client.js';

export interface CachedJwt {
  readonly spiffeId: string;
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** Cache key of a JWT-SVID: the SPIFFE ID and the sorted, de-duplicated audience set. */
export function jwtCacheKey(spiffeId: string, audience: readonly string[]): string {
  return JSON.stringify([spiffeId, [...new Set(audience)].sort()]);
}

/** Default bounds of the cache. */
export const DEFAULT_JWT_CACHE_MAX_BYTES = 16 * 1024 * 1024;
export const DEFAULT_JWT_CACHE_MAX_PER_IDENTITY = 64;
export const DEFAULT_JWT_CACHE_MAX_SIZE = 10_000;
/** Estimated fixed cost of one entry (Map and Set slots, the record, the CachedJwt). */
export const ENTRY_OVERHEAD_BYTES = 256;

export interface JwtSvidCacheConfig {
  /** Mints a JWT-SVID for an entry at the server. */
  mint: (entryId: string, audience: readonly string[]) => Promise<IssuedJwtSvidWire>;
  /** Whether `entry` is still held with the same SPIFFE ID (checked after a mint, before caching). */
  isCurrent: (entry: RegistrationEntry) => boolean;
  now: () => Date;
  log: AgentLogger;
  /** Largest number of cached JWT-SVIDs (default 10,000). */
  maxSize?: number;
  /** Largest estimated memory of all cached JWT-SVIDs, bytes (default 16 MiB). */
  maxBytes?: number;
  /** Largest number of audience sets cached per SPIFFE ID (default 64). */
  maxPerIdentity?: number;
}

/** What the cache holds now, and its bounds (tests, metrics). */
export interface JwtSvidCacheStats {
  readonly entries: number;
  /** Estimated memory of the cached entries (see the module comment). */
  readonly bytes: number;
  /** SPIFFE IDs with at least one cached token. */
  readonly identities: number;
  /** Most entries one SPIFFE ID holds. */
  readonly largestIdentity: number;
  readonly maxSize: number;
  readonly maxBytes: number;
  readonly maxPerIdentity: number;
}

interface Slot {
  readonly jwt: CachedJwt;
  readonly bytes: number;
}

/** Estimated bytes of a string held in V8: one a character, two if any is past U+00FF. */
function stringBytes(s: string): number {
  return /[\u0100-\uffff]/.test(s) ? 2 * s.length : s.length;
}

function limit(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`JwtSvidCache ${name} must be a positive integer; got ${String(v)}`);
  return v;
}

export class JwtSvidCache {
  readonly #cfg: JwtSvidCacheConfig;
  readonly #maxSize: number;
  readonly #maxBytes: number;
  readonly #maxPerIdentity: number;
  /** key → slot, least recently used first. */
  readonly #jwt = new Map<string, Slot>();
  /** SPIFFE ID → its keys, least recently used first. */
  readonly #byId = new Map<string, Set<string>>();
  readonly #inflight = new Map<string, Promise<CachedJwt>>();
  #bytes = 0;
  /** No cached token expires before this (seconds); a lower bound once tokens are evicted. */
  #earliestExpiry = Infinity;

  constructor(cfg: JwtSvidCacheConfig) {
    if (typeof cfg !== 'object' || cfg === null) throw new TypeError('JwtSvidCache needs a config object');
    this.#cfg = cfg;
    this.#maxSize = limit('maxSize', cfg.maxSize, DEFAULT_JWT_CACHE_MAX_SIZE);
    this.#maxBytes = limit('maxBytes', cfg.maxBytes, DEFAULT_JWT_CACHE_MAX_BYTES);
    this.#maxPerIdentity = limit('maxPerIdentity', cfg.maxPerIdentity, DEFAULT_JWT_CACHE_MAX_PER_IDENTITY);
  }

  /** Number of cached JWT-SVIDs. */
  get size(): number {
    return this.#jwt.size;
  }

  stats(): JwtSvidCacheStats {
    let largest = 0;
    for (const keys of this.#byId.values()) largest = Math.max(largest, keys.size);
    return {
      entries: this.#jwt.size,
      bytes: this.#bytes,
      identities: this.#byId.size,
      largestIdentity: largest,
      maxSize: this.#maxSize,
      maxBytes: this.#maxBytes,
      maxPerIdentity: this.#maxPerIdentity,
    };
  }

  /** Drops every cached token whose SPIFFE ID is not in `spiffeIds`. */
  retain(spiffeIds: ReadonlySet<string>): void {
    for (const [id, keys] of this.#byId) if (!spiffeIds.has(id)) for (const k of keys) this.#delete(k);
  }

  /** Drops every cached token `drop` selects (e.g. signed with a tainted key); returns how many. */
  dropWhere(drop: (j: CachedJwt) => boolean): number {
    let n = 0;
    for (const [k, v] of this.#jwt) {
      if (!drop(v.jwt)) continue;
      this.#delete(k);
      n++;
    }
    return n;
  }

  /** A JWT-SVID for `e` and `audience` (sorted, de-duplicated): cached, or minted now. */
  async get(e: RegistrationEntry, audience: readonly string[]): Promise<CachedJwt> {
    const problem = audienceLimitProblem(audience);
    if (problem !== undefined) throw new TypeError(`JwtSvidCache.get: ${problem}`);
    const key = jwtCacheKey(e.spiffeId, audience);
    const nowSec = this.#cfg.now().getTime() / 1000;
    const cached = this.#jwt.get(key)?.jwt;
    if (cached !== undefined && nowSec < cached.issuedAt + (cached.expiresAt - cached.issuedAt) / 2) {
      this.#touch(key);
      return cached;
    }
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = (async () => {
        const w = await this.#cfg.mint(e.entryId, audience);
        if (w.spiffeId !== e.spiffeId) throw new MayflyError('ERR_AGENT_SERVER_CALL', `server minted a JWT-SVID for ${w.spiffeId}, not for ${e.spiffeId}`);
        const j: CachedJwt = { spiffeId: w.spiffeId, token: w.token, issuedAt: w.issuedAt, expiresAt: w.expiresAt };
        if (this.#cfg.isCurrent(e)) this.#store(key, j);
        return j;
      })().finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    try {
      return await pending;
    } catch (err) {
      // Past half-life but still valid: keep serving it while the server is away.
      if (cached !== undefined && this.#cfg.now().getTime() / 1000 < cached.expiresAt) {
        this.#cfg.log.warn({ err, spiffeId: e.spiffeId }, 'cannot re-mint JWT-SVID; serving the cached one until it expires');
        if (this.#jwt.get(key)?.jwt === cached) this.#touch(key);
        return cached;
      }
      throw err;
    }
  }

  /** Marks `key` most recently used, in the whole cache and in its identity's keys. */
  #touch(key: string): void {
    const slot = this.#jwt.get(key);
    if (slot === undefined) return;
    this.#jwt.delete(key);
    this.#jwt.set(key, slot);
    const keys = this.#byId.get(slot.jwt.spiffeId);
    keys?.delete(key);
    keys?.add(key);
  }

  #delete(key: string): void {
    const slot = this.#jwt.get(key);
    if (slot === undefined) return;
    this.#jwt.delete(key);
    this.#bytes -= slot.bytes;
    const keys = this.#byId.get(slot.jwt.spiffeId);
    keys?.delete(key);
    if (keys?.size === 0) this.#byId.delete(slot.jwt.spiffeId);
  }

  #store(key: string, j: CachedJwt): void {
    this.#delete(key); // superseded, whether or not the new token fits
    const bytes = stringBytes(j.token) + stringBytes(key) + stringBytes(j.spiffeId) + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.#maxBytes) {
      this.#cfg.log.debug({ spiffeId: j.spiffeId, bytes, maxBytes: this.#maxBytes }, 'JWT-SVID larger than the whole cache budget; served, not cached');
      return;
    }
    this.#jwt.set(key, { jwt: j, bytes });
    this.#bytes += bytes;
    let keys = this.#byId.get(j.spiffeId);
    if (keys === undefined) this.#byId.set(j.spiffeId, (keys = new Set()));
    keys.add(key);
    this.#earliestExpiry = Math.min(this.#earliestExpiry, j.expiresAt);
    if (keys.size <= this.#maxPerIdentity && this.#jwt.size <= this.#maxSize && this.#bytes <= this.#maxBytes) return;
    this.#sweepExpired();
    // Still over a bound: drop the least recently used (Maps and Sets keep use order). The
    // new entry is the most recently used and fits every bound alone, so it stays.
    for (const k of keys) {
      if (keys.size <= this.#maxPerIdentity) break;
      this.#delete(k);
    }
    for (const k of this.#jwt.keys()) {
      if (this.#jwt.size <= this.#maxSize && this.#bytes <= this.#maxBytes) break;
      this.#delete(k);
    }
  }

  /** Drops expired tokens, when one may have expired since the last sweep. */
  #sweepExpired(): void {
    const nowSec = this.#cfg.now().getTime() / 1000;
    if (nowSec < this.#earliestExpiry) return;
    let earliest = Infinity;
    for (const [k, v] of this.#jwt) {
      if (v.jwt.expiresAt <= nowSec) this.#delete(k);
      else earliest = Math.min(earliest, v.jwt.expiresAt);
    }
    this.#earliestExpiry = earliest;
  }
}
