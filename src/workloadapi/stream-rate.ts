/**
 * @module workloadapi/stream-rate
 *
 * How fast one local user may open Workload API streams (FetchX509SVID, FetchX509Bundles,
 * FetchJWTBundles): a token bucket per caller uid, refilled at `perSecond` up to `burst`.
 *
 * Threat: a stream-open flood denying the Workload API to everyone else. Each stream costs
 * the agent an attestation and its first message, which carries the bundles and the CRLs
 * (issue 10: with many revocations, megabytes, copied into every stream's framing). The
 * connection and per-connection stream caps bound how many streams one user holds at once,
 * not how fast it opens and resets them: a client resetting streams as fast as it can made
 * the agent copy a CRL per reset and starved other workloads. A stream opened beyond the
 * caller's budget is refused with RESOURCE_EXHAUSTED before attestation and before any
 * message is built or written, so a flood costs the agent a trailer per call; other uids have
 * their own buckets. Unary calls (JWT-SVID fetches, validation) are not limited here.
 *
 * Defaults: 256 streams at once, 64 a second after that, per uid; far above what SPIFFE
 * clients open (a few long-lived streams per process, reopened on agent restart).
 */

export interface StreamRateConfig {
  /** Streams a uid may open in a burst (default 256). */
  burst?: number;
  /** Streams a uid may open per second once its burst is spent (default 64). */
  perSecond?: number;
  /** Milliseconds clock (default `Date.now`); injected by tests. */
  nowMs?: () => number;
}

export const DEFAULT_STREAM_BURST = 256;
export const DEFAULT_STREAMS_PER_SECOND = 64;
/** Buckets kept at most; full buckets are dropped first (a full bucket is the state of a new uid). */
const MAX_BUCKETS = 4096;

export class StreamRate {
  readonly burst: number;
  readonly perSecond: number;
  readonly #now: () => number;
  readonly #buckets = new Map<number, { tokens: number; at: number }>();

  constructor(cfg: StreamRateConfig = {}) {
    this.burst = cfg.burst ?? DEFAULT_STREAM_BURST;
    this.perSecond = cfg.perSecond ?? DEFAULT_STREAMS_PER_SECOND;
    for (const [k, v] of [['burst', this.burst], ['perSecond', this.perSecond]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`stream rate ${k} must be a positive integer; got ${String(v)}`);
    }
    this.#now = cfg.nowMs ?? Date.now;
  }

  /** Takes one stream from `uid`'s budget; false when it has none left now. */
  take(uid: number): boolean {
    const now = this.#now();
    let b = this.#buckets.get(uid);
    if (b === undefined) {
      if (this.#buckets.size >= MAX_BUCKETS) this.#sweep(now);
      b = { tokens: this.burst, at: now };
      this.#buckets.set(uid, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #sweep(now: number): void {
    for (const [uid, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.#buckets.delete(uid);
    }
    // Still full of busy uids: forget the oldest (it starts again with a full burst, bounded by MAX_BUCKETS uids).
    if (this.#buckets.size >= MAX_BUCKETS) this.#buckets.delete(this.#buckets.keys().next().value as number);
  }
}
