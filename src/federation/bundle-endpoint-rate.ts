/**
 * @module federation/bundle-endpoint-rate
 *
 * A token bucket per client address for the public read-only listeners (the bundle
 * endpoint, and OIDC discovery which the server composes on the same listener).
 *
 * Threat: one client (or a few) flooding a public endpoint until it cannot answer the
 * federated peers that poll it. Each address gets `burst` requests at once and then
 * `perSecond`; the table of addresses is bounded (`maxClients`, oldest forgotten first) so
 * a spray of source addresses cannot grow memory without bound.
 */

export interface RateLimit {
  /** Sustained requests per second per client address. */
  readonly perSecond: number;
  /** Requests a client may make at once before the sustained rate applies. */
  readonly burst: number;
  /** Most client addresses remembered (default 10,000). */
  readonly maxClients?: number;
}

export interface RateLimiterConfig extends RateLimit {
  /** Milliseconds (injected clock; default `Date.now`). */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(cfg: RateLimiterConfig) {
    if (typeof cfg !== 'object' || cfg === null) throw new TypeError('RateLimiter needs { perSecond, burst }');
    if (!(cfg.perSecond > 0) || !Number.isFinite(cfg.perSecond)) throw new TypeError('perSecond must be a positive number');
    if (!Number.isInteger(cfg.burst) || cfg.burst < 1) throw new TypeError('burst must be a positive integer');
    this.#perSecond = cfg.perSecond;
    this.#burst = cfg.burst;
    this.#max = cfg.maxClients ?? 10_000;
    this.#now = cfg.now ?? Date.now;
  }

  /** Takes one token for `client`: 0 when allowed, else the seconds to wait (≥ 1). */
  take(client: string): number {
    const now = this.#now();
    let b = this.#buckets.get(client);
    if (b === undefined) {
      if (this.#buckets.size >= this.#max) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
      b = { tokens: this.#burst, at: now };
    } else {
      this.#buckets.delete(client); // re-inserted below: most recently seen last
      b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#perSecond);
      b.at = now;
    }
    this.#buckets.set(client, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.#perSecond));
  }
}
