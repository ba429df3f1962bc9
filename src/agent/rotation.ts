/**
 * @module agent/rotation
 *
 * When the agent's SVID cache asks the server for X509-SVIDs: issuance passes (every entry
 * whose SVID is missing, due for renewal, expired, changed or stale goes to the server as a
 * CSR, key generated here, in batches with a few calls in flight) and the one timer that
 * starts the next pass at the earliest renewal, expiry or retry. An SVID is due for renewal
 * at half its lifetime ± 10 % (`renewalTime` in clock.ts, fixed when the cache keeps it).
 * The cache (cache.ts) keeps the entries, SVIDs and bundles and serves workloads; it starts
 * a pass after every update. As SPIRE separates its manager from its cache.
 *
 * Threats it stops:
 * - an SVID expiring unrenewed while the server can be reached: a timer is always armed
 *   for the earliest renewal, expiry or retry, and a pass that was asked for while one ran
 *   runs again right after it;
 * - agents hammering the server: renewals are jittered, the first failed call stops the
 *   pass and the next waits a growing, jittered backoff (1 s … 30 s), and an entry the
 *   server refused (or whose SVID the cache discarded) waits 30 s before it is asked for
 *   again.
 */
import type { KeyObject } from 'node:crypto';
import type { RegistrationEntry } from '../registration/entry.js';
import { DEFAULT_KEY_TYPE, generateKeyPair, type KeyType } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { Backoff, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import type { NewX509SvidRequest, NewX509SvidResult } from './server-client.js';
import { dnsKeyOf, type CachedX509Svid } from './x509-accept.js';

/** The server call rotation makes (the agent routes it to its current client). */
export interface X509SvidIssuer {
  newX509Svids(batch: readonly NewX509SvidRequest[]): Promise<NewX509SvidResult[]>;
}

/** What rotation reads and updates: the cache's state (cache.ts). */
export interface RotationSubject {
  /** The entries to hold an X509-SVID for. */
  entries(): readonly RegistrationEntry[];
  /** The entry as the cache holds it now (undefined once removed). */
  entry(entryId: string): RegistrationEntry | undefined;
  /** The X509-SVID held for an entry. */
  svid(entryId: string): CachedX509Svid | undefined;
  /** Every X509-SVID held. */
  svids(): Iterable<CachedX509Svid>;
  /** Checks an SVID the server returned for `entry` and keeps it; false when it was discarded. */
  keep(entry: RegistrationEntry, chain: readonly Buffer[], key: KeyObject, now: Date): boolean;
  /** The results of one call have been kept: the SVIDs served may have changed. */
  issued(): void;
  /** The timer fired (a renewal, expiry or retry is due); a pass follows. */
  timerFired(): void;
}

export interface X509SvidRotationConfig {
  subject: RotationSubject;
  issuer: X509SvidIssuer;
  scheduler: Scheduler;
  /** Uniform [0, 1): backoff jitter (tests pin it). */
  random?: () => number;
  logger?: AgentLogger;
  /** CSRs per BatchNewX509SVID call (default 500, the server's limit). */
  maxBatch?: number;
  /** BatchNewX509SVID calls in flight at once (default 2): keys are made while the server signs. */
  maxConcurrentBatches?: number;
  /** Key type of workload SVIDs (default EC P-256). */
  keyType?: KeyType;
}

/** Per-entry failure retry: the server refused this one item. */
const ENTRY_RETRY_MS = 30_000;

/** Issuance passes and the renewal timer for the cache's X509-SVIDs. */
export class X509SvidRotation {
  readonly #subject: RotationSubject;
  readonly #issuer: X509SvidIssuer;
  readonly #sched: Scheduler;
  readonly #log: AgentLogger;
  readonly #keyType: KeyType;
  readonly #maxBatch: number;
  readonly #maxConcurrentBatches: number;
  /** entryId → when to try again after the server refused that item. */
  readonly #failed = new Map<string, number>();
  #inflight: Promise<void> | undefined;
  #again = false;
  #serverRetryAt = 0;
  readonly #backoff: Backoff;
  #cancelTimer: (() => void) | undefined;
  #closed = false;

  constructor(cfg: X509SvidRotationConfig) {
    this.#subject = cfg.subject;
    this.#issuer = cfg.issuer;
    this.#sched = cfg.scheduler;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#keyType = cfg.keyType ?? DEFAULT_KEY_TYPE;
    this.#maxBatch = cfg.maxBatch ?? 500;
    this.#maxConcurrentBatches = Math.max(1, Math.floor(cfg.maxConcurrentBatches ?? 2));
    this.#backoff = new Backoff({ random: cfg.random ?? Math.random });
  }

  /** The issuance pass in flight, if any (it ends after re-arming the timer). */
  get inflight(): Promise<void> | undefined {
    return this.#inflight;
  }

  /** True while the last answer for the entry was a refusal (or an SVID the cache discarded). */
  hasFailed(entryId: string): boolean {
    return this.#failed.has(entryId);
  }

  /** Forgets the failures of entries no longer held. */
  retain(entryIds: { has(entryId: string): boolean }): void {
    for (const id of [...this.#failed.keys()]) if (!entryIds.has(id)) this.#failed.delete(id);
  }

  #due(e: RegistrationEntry, nowMs: number): boolean {
    const retry = this.#failed.get(e.entryId);
    if (retry !== undefined && retry > nowMs) return false;
    const s = this.#subject.svid(e.entryId);
    if (s === undefined) return true;
    return s.stale || s.spiffeId !== e.spiffeId || s.dnsKey !== dnsKeyOf(e) || nowMs >= s.renewAt.getTime() || nowMs >= s.notAfter.getTime();
  }

  /** Starts an issuance pass, or asks the running one to go again. */
  kick(): void {
    if (this.#closed) return;
    if (this.#inflight !== undefined) {
      this.#again = true;
      return;
    }
    this.#inflight = (async () => {
      do {
        this.#again = false;
        await this.#issuePass();
      } while (this.#again && !this.#closed);
    })()
      .catch((err: unknown) => this.#log.error({ err }, 'X509-SVID issuance failed unexpectedly'))
      .finally(() => {
        this.#inflight = undefined;
        this.#reschedule();
      });
  }

  async #issuePass(): Promise<void> {
    const nowMs = this.#sched.now().getTime();
    if (this.#serverRetryAt > nowMs) return;
    const due = this.#subject.entries().filter((e) => this.#due(e, nowMs));
    if (due.length === 0) return;
    const chunks: RegistrationEntry[][] = [];
    for (let i = 0; i < due.length; i += this.#maxBatch) chunks.push(due.slice(i, i + this.#maxBatch));
    // Up to maxConcurrentBatches calls in flight; the first server failure stops the pass.
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && !this.#closed && next < chunks.length) {
        if (!(await this.#issueChunk(chunks[next++] as RegistrationEntry[]))) failed = true;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#maxConcurrentBatches, chunks.length) }, () => worker()));
  }

  /** One BatchNewX509SVID call for `chunk`; false when the server could not be reached. */
  async #issueChunk(chunk: readonly RegistrationEntry[]): Promise<boolean> {
    const keys = new Map<string, KeyObject>();
    const batch = chunk.map((e) => {
      const kp = generateKeyPair(this.#keyType);
      keys.set(e.entryId, kp.privateKey);
      return { entryId: e.entryId, csr: createCsr({ privateKey: kp.privateKey }) };
    });
    let results: NewX509SvidResult[];
    try {
      results = await this.#issuer.newX509Svids(batch);
    } catch (err) {
      const delay = this.#backoff.next();
      this.#serverRetryAt = this.#sched.now().getTime() + delay;
      this.#log.warn({ err, entries: chunk.length, retryInMs: delay }, 'cannot get X509-SVIDs from the server; serving cached SVIDs until they expire');
      return false;
    }
    this.#backoff.reset();
    this.#serverRetryAt = 0;
    const now = this.#sched.now();
    for (const r of results) {
      const key = keys.get(r.entryId);
      const entry = this.#subject.entry(r.entryId);
      if (key === undefined || entry === undefined) continue; // not ours, or removed meanwhile
      if (!r.ok) {
        this.#failed.set(r.entryId, now.getTime() + ENTRY_RETRY_MS);
        this.#log.warn({ entryId: r.entryId, code: r.code, message: r.message }, 'server refused an X509-SVID for entry');
        continue;
      }
      if (!this.#subject.keep(entry, r.svid.certChain, key, now)) {
        this.#failed.set(r.entryId, now.getTime() + ENTRY_RETRY_MS);
        continue;
      }
      this.#failed.delete(r.entryId);
    }
    this.#subject.issued();
    return true;
  }

  /** Arms one timer for the next renewal, expiry or retry. */
  #reschedule(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    const nowMs = this.#sched.now().getTime();
    let next = Infinity;
    const consider = (t: number): void => {
      if (t > nowMs && t < next) next = t;
    };
    for (const s of this.#subject.svids()) {
      consider(s.renewAt.getTime());
      consider(s.notAfter.getTime());
    }
    for (const t of this.#failed.values()) consider(t);
    consider(this.#serverRetryAt);
    if (next === Infinity) return;
    this.#cancelTimer = this.#sched.at(new Date(next), () => {
      this.#cancelTimer = undefined;
      this.#onTimer();
    });
  }

  #onTimer(): void {
    if (this.#closed) return;
    this.#subject.timerFired();
    this.kick();
  }

  /** Stops the timer; no pass starts after this. */
  close(): void {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}
