/**
 * @module agent/clock
 *
 * Time for the agent: the current time and timers at absolute instants. Everything in the
 * agent that waits (renewals, reconnect backoff, expiry) goes through a `Scheduler`, so
 * tests drive rotation with `ManualScheduler` (in `testing.ts`) instead of sleeping.
 */

export interface Scheduler {
  now(): Date;
  /** Runs `fn` once at (or soon after) `at`; returns a function that cancels it. */
  at(at: Date, fn: () => void): () => void;
}

/** Node's longest setTimeout delay; longer waits are re-armed. */
const MAX_DELAY_MS = 2_147_483_647;

/** Real time: `setTimeout`, unref-ed so a pending renewal never keeps the process alive alone. */
export class SystemScheduler implements Scheduler {
  readonly #now: () => Date;

  constructor(cfg: { now?: () => Date } = {}) {
    this.#now = cfg.now ?? (() => new Date());
  }

  now(): Date {
    return this.#now();
  }

  at(at: Date, fn: () => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = (): void => {
      if (cancelled) return;
      const delay = at.getTime() - this.#now().getTime();
      if (delay <= 0) {
        timer = setTimeout(() => {
          if (!cancelled) fn();
        }, 0);
      } else {
        timer = setTimeout(arm, Math.min(delay, MAX_DELAY_MS));
      }
      timer.unref();
    };
    arm();
    return () => {
      cancelled = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }
}

/**
 * Exponential backoff with full jitter between `minMs` and `maxMs` (1 s … 30 s by default):
 * attempt n waits a random time in [d/2, d] where d = min(max, min·2ⁿ), so many agents
 * that lost the same server do not reconnect in lockstep.
 */
export class Backoff {
  readonly #min: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(cfg: { minMs?: number; maxMs?: number; random?: () => number } = {}) {
    this.#min = cfg.minMs ?? 1000;
    this.#max = cfg.maxMs ?? 30_000;
    this.#random = cfg.random ?? Math.random;
  }

  /** The next delay (ms), growing with each call until `reset`. */
  next(): number {
    const d = Math.min(this.#max, this.#min * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.max(this.#min, Math.round(d / 2 + (this.#random() * d) / 2));
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/**
 * When to renew a certificate valid from `notBefore` to `notAfter`: at half its lifetime,
 * moved by up to ±10 % of that half (uniformly, from `random()` ∈ [0, 1)), so a fleet
 * of SVIDs issued together does not come back to the server at the same instant.
 */
export function renewalTime(notBefore: Date, notAfter: Date, random: () => number = Math.random): Date {
  const life = notAfter.getTime() - notBefore.getTime();
  const half = life / 2;
  const jitter = (random() * 2 - 1) * 0.1 * half;
  return new Date(notBefore.getTime() + half + jitter);
}
