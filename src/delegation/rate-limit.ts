/**
 * @module delegation/rate-limit
 *
 * Token buckets keyed by a string (the actor's SPIFFE ID, the source address) for the token
 * endpoint: each key holds up to `burst` tokens, refilled at `ratePerSecond`; a request
 * takes one or is refused with the seconds until one is back (the `Retry-After`). The clock
 * is injected.
 *
 * Threats: one agent (or one host) flooding the exchange (user-token verification and
 * signing are its costly part) and starving the others — each key has its own bucket, so
 * one over its limit never delays another; memory growth from many keys (at most `maxKeys`
 * buckets: full ones are dropped first, as a full bucket is the same as none, then the
 * least recently used).
 */

export const DEFAULT_MAX_KEYS = 10_000;

/**
 * The bucket key of a source address: an IPv4 address (also IPv4-mapped IPv6) as itself,
 * an IPv6 address as its /64 (one host is routinely given a whole /64, so keying by full
 * address would hand it 2^64 buckets).
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] as string;
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.toLowerCase().split('%')[0]!.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export interface TokenBucketsConfig {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly now: () => number;
  readonly maxKeys?: number;
}

export type Take = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number; /** the first refusal since this key was last let through */ readonly first: boolean };

interface Bucket {
  tokens: number;
  at: number;
  refusing: boolean;
}

export class TokenBuckets {
  readonly #cfg: TokenBucketsConfig;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(cfg: TokenBucketsConfig) {
    if (!(cfg.ratePerSecond > 0) || !Number.isFinite(cfg.ratePerSecond)) throw new TypeError('ratePerSecond must be a positive number');
    if (!Number.isInteger(cfg.burst) || cfg.burst < 1) throw new TypeError('burst must be a positive integer');
    this.#cfg = cfg;
    this.#maxKeys = cfg.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  /** Buckets held (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }

  take(key: string): Take {
    const now = this.#cfg.now();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(now);
      b = { tokens: this.#cfg.burst, at: now, refusing: false };
      this.#buckets.set(key, b);
    } else {
      this.#refill(b, now);
      this.#buckets.delete(key); // least recently used first
      this.#buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.refusing = false;
      return { ok: true };
    }
    const first = !b.refusing;
    b.refusing = true;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.#cfg.ratePerSecond)), first };
  }

  #refill(b: Bucket, now: number): void {
    const elapsed = Math.max(0, now - b.at) / 1000;
    b.tokens = Math.min(this.#cfg.burst, b.tokens + elapsed * this.#cfg.ratePerSecond);
    b.at = now;
  }

  #evict(now: number): void {
    for (const [k, b] of this.#buckets) {
      this.#refill(b, now);
      if (b.tokens >= this.#cfg.burst) this.#buckets.delete(k);
    }
    while (this.#buckets.size >= this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
  }
}
