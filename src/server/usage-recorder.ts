/**
 * @module server/usage-recorder
 *
 * Accumulates entry usage (issuances by agent, Workload API deliveries agents report) in
 * memory and writes it to the datastore in batches, off the issuance path: `issued` and
 * `delivered` only update a map; a timer (or a full map) flushes it with one
 * `recordEntryUsage` call per 10,000 entries. A failed flush keeps the deltas and retries on
 * the next tick; `close()` flushes what is left, so a clean stop loses nothing (a crash loses
 * at most one interval).
 *
 * Threat: the issuance path slowed or blocked by bookkeeping. Nothing here is awaited by a
 * handler; the map is bounded (`maxPending` entries: past it a flush starts and further new
 * entries are counted as dropped until it is done).
 */
import type { EntryUsageDelta } from '../datastore/datastore.js';
import type { ServerLogger } from './ports.js';

export interface UsageSink {
  issued(entryId: string, agentId: string): void;
  delivered(entryId: string, at: number): void;
}

export interface EntryUsageRecorderConfig {
  store: { recordEntryUsage(deltas: readonly EntryUsageDelta[]): Promise<void> };
  now?: () => Date;
  logger?: Pick<ServerLogger, 'warn'>;
  /** Flush period (ms, default 5000). */
  flushIntervalMs?: number;
  /** Entries held before a flush is forced (default 10,000). */
  maxPending?: number;
}

interface Pending {
  first: number;
  last: number;
  count: number;
  agents: Set<string>;
  delivered: number;
}

const BATCH = 10_000;
const MAX_AGENTS_PER_DELTA = 64;

export class EntryUsageRecorder implements UsageSink {
  readonly #cfg: EntryUsageRecorderConfig;
  readonly #now: () => Date;
  #pending = new Map<string, Pending>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #dropped = 0;

  constructor(cfg: EntryUsageRecorderConfig) {
    this.#cfg = cfg;
    this.#now = cfg.now ?? (() => new Date());
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#cfg.flushIntervalMs ?? 5000);
    this.#timer.unref();
  }

  /** Deltas of entries not yet written (for tests and metrics). */
  get pendingEntries(): number {
    return this.#pending.size;
  }

  get dropped(): number {
    return this.#dropped;
  }

  #slot(entryId: string): Pending | undefined {
    let p = this.#pending.get(entryId);
    if (p === undefined) {
      if (this.#pending.size >= (this.#cfg.maxPending ?? BATCH)) {
        void this.flush();
        if (this.#pending.size >= (this.#cfg.maxPending ?? BATCH)) {
          this.#dropped++;
          return undefined;
        }
      }
      p = { first: 0, last: 0, count: 0, agents: new Set(), delivered: 0 };
      this.#pending.set(entryId, p);
    }
    return p;
  }

  issued(entryId: string, agentId: string): void {
    const p = this.#slot(entryId);
    if (p === undefined) return;
    const t = Math.floor(this.#now().getTime() / 1000);
    if (p.first === 0) p.first = t;
    p.last = Math.max(p.last, t);
    p.count++;
    if (agentId !== '') {
      p.agents.delete(agentId);
      p.agents.add(agentId);
      if (p.agents.size > MAX_AGENTS_PER_DELTA) p.agents.delete(p.agents.values().next().value as string);
    }
  }

  delivered(entryId: string, at: number): void {
    const p = this.#slot(entryId);
    if (p !== undefined) p.delivered = Math.max(p.delivered, at);
  }

  /** Writes what is pending; concurrent calls share one write. */
  flush(): Promise<void> {
    this.#flushing ??= this.#write().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #write(): Promise<void> {
    if (this.#pending.size === 0) return;
    const taken = this.#pending;
    this.#pending = new Map();
    const deltas: EntryUsageDelta[] = [...taken].map(([entryId, p]) => ({
      entryId,
      ...(p.count > 0 ? { firstIssuedAt: p.first, lastIssuedAt: p.last, issuanceCount: p.count } : {}),
      ...(p.agents.size > 0 ? { agents: [...p.agents] } : {}),
      ...(p.delivered > 0 ? { lastDeliveredAt: p.delivered } : {}),
    }));
    for (let i = 0; i < deltas.length; i += BATCH) {
      const chunk = deltas.slice(i, i + BATCH);
      try {
        await this.#cfg.store.recordEntryUsage(chunk);
      } catch (err) {
        // Put the rest back (merged with what arrived meanwhile) for the next tick.
        for (const d of deltas.slice(i)) this.#restore(d, taken.get(d.entryId)!);
        this.#cfg.logger?.warn({ err, entries: deltas.length - i }, 'writing entry usage records failed; retrying at the next flush');
        return;
      }
    }
  }

  #restore(d: EntryUsageDelta, p: Pending): void {
    const cur = this.#pending.get(d.entryId);
    if (cur === undefined) {
      this.#pending.set(d.entryId, p);
      return;
    }
    if (p.count > 0) cur.first = cur.first === 0 ? p.first : Math.min(cur.first, p.first);
    cur.last = Math.max(cur.last, p.last);
    cur.count += p.count;
    for (const a of p.agents) if (cur.agents.size < MAX_AGENTS_PER_DELTA) cur.agents.add(a);
    cur.delivered = Math.max(cur.delivered, p.delivered);
  }

  /** Stops the timer and writes what is left. */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
    if (this.#pending.size > 0) await this.flush();
  }
}
