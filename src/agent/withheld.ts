/**
 * @module agent/withheld
 *
 * Entries the server withholds from this agent although it is authorised for them (issue 11:
 * an owner certification that lapsed). The agent has already dropped them (they are not in
 * the update's entries, so their workloads get PERMISSION_DENIED); this logs the server's
 * reason once per entry and reason, and once when the entry is served again, so an operator
 * on the node sees why an identity went away instead of guessing.
 */
import type { AgentLogger } from './logger.js';
import type { AuthorizedUpdate } from './server-client.js';

export class WithheldEntriesLog {
  readonly #logger: AgentLogger;
  #reasons = new Map<string, string>();

  constructor(logger: AgentLogger) {
    this.#logger = logger;
  }

  note(u: Pick<AuthorizedUpdate, 'withheldEntries' | 'entries'>): void {
    const next = new Map<string, string>();
    for (const w of u.withheldEntries ?? []) {
      next.set(w.entryId, w.reason);
      if (this.#reasons.get(w.entryId) !== w.reason) this.#logger.warn({ entryId: w.entryId, spiffeId: w.spiffeId, reason: w.reason }, 'the server withholds an entry: its SVIDs are no longer served');
    }
    const served = new Set(u.entries.map((e) => e.entryId));
    for (const id of this.#reasons.keys()) {
      if (!next.has(id) && served.has(id)) this.#logger.info({ entryId: id }, 'a withheld entry is served again');
    }
    this.#reasons = next;
  }

  /** Entries withheld at the last update (for tests). */
  get size(): number {
    return this.#reasons.size;
  }
}
