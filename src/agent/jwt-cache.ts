/**
 * @module agent/jwt-cache
 *
 * The agent's JWT-SVID cache, per (SPIFFE ID, audience set): a cached token is served until
 * half its lifetime has passed, then re-minted by the server; concurrent requests for one
 * key share one server call; past half-life a still-valid token keeps being served while
 * the server is unreachable. Bounded: expired tokens go first, then the least recently
 * minted.
 *
 * Threat it stops: serving a JWT-SVID for an identity the agent no longer holds. A minted
 * token whose SPIFFE ID is not the entry's is refused; a token minted for an entry that
 * changed or disappeared meanwhile is returned to its caller but not cached; `retain`
 * drops tokens of SPIFFE IDs no entry names any more.
 */
import type { RegistrationEntry } from '../registration/entry.js';
import { MayflyError } from '../spiffe/errors.js';
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

export interface JwtSvidCacheConfig {
  /** Mints a JWT-SVID for an entry at the server. */
  mint: (entryId: string, audience: readonly string[]) => Promise<IssuedJwtSvidWire>;
  /** Whether `entry` is still held with the same SPIFFE ID (checked after a mint, before caching). */
  isCurrent: (entry: RegistrationEntry) => boolean;
  now: () => Date;
  log: AgentLogger;
  /** Largest number of cached JWT-SVIDs. */
  maxSize: number;
}

export class JwtSvidCache {
  readonly #cfg: JwtSvidCacheConfig;
  readonly #jwt = new Map<string, CachedJwt>();
  readonly #inflight = new Map<string, Promise<CachedJwt>>();

  constructor(cfg: JwtSvidCacheConfig) {
    this.#cfg = cfg;
  }

  /** Number of cached JWT-SVIDs. */
  get size(): number {
    return this.#jwt.size;
  }

  /** Drops every cached token whose SPIFFE ID is not in `spiffeIds`. */
  retain(spiffeIds: ReadonlySet<string>): void {
    for (const [k, v] of this.#jwt) if (!spiffeIds.has(v.spiffeId)) this.#jwt.delete(k);
  }

  /** Drops every cached token `drop` selects (e.g. signed with a tainted key); returns how many. */
  dropWhere(drop: (j: CachedJwt) => boolean): number {
    let n = 0;
    for (const [k, v] of this.#jwt) {
      if (!drop(v)) continue;
      this.#jwt.delete(k);
      n++;
    }
    return n;
  }

  /** A JWT-SVID for `e` and `audience` (sorted, de-duplicated): cached, or minted now. */
  async get(e: RegistrationEntry, audience: readonly string[]): Promise<CachedJwt> {
    const key = jwtCacheKey(e.spiffeId, audience);
    const nowSec = this.#cfg.now().getTime() / 1000;
    const cached = this.#jwt.get(key);
    if (cached !== undefined && nowSec < cached.issuedAt + (cached.expiresAt - cached.issuedAt) / 2) return cached;
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
        return cached;
      }
      throw err;
    }
  }

  #store(key: string, j: CachedJwt): void {
    this.#jwt.delete(key);
    this.#jwt.set(key, j);
    if (this.#jwt.size <= this.#cfg.maxSize) return;
    const nowSec = this.#cfg.now().getTime() / 1000;
    for (const [k, v] of this.#jwt) if (v.expiresAt <= nowSec) this.#jwt.delete(k);
    // Still too many: drop the least recently minted (Map keeps insertion order).
    for (const k of this.#jwt.keys()) {
      if (this.#jwt.size <= this.#cfg.maxSize) break;
      this.#jwt.delete(k);
    }
  }
}
