/**
 * @module server/authorized-cache
 *
 * A per-agent copy of the authorised-entry set (server/authorized), so a batch of SVID
 * requests does not walk the entry graph in the datastore on every call.
 *
 * Threat: a stale copy letting an agent obtain an SVID for an entry that was deleted,
 * re-parented or has expired, or keeping a banned/evicted agent's set alive. So a copy is
 * dropped on every change notice that can alter it — any entry change (which covers node
 * aliases), and any change to that agent — and it is never used past the first expiry of
 * an entry or node alias behind it. A computation that started before a notice is not
 * stored: a generation counter, bumped by every notice, must be unchanged when it ends.
 * (Whether the agent itself is still attested and not banned is checked on every call by
 * server/auth, from the datastore, independently of this cache.)
 */
import type { AttestedAgent, RegistrationEntry } from '../datastore/datastore.js';
import { authorizedEntrySet } from './authorized.js';
import type { ApiContext } from './api-context.js';
import { nowSeconds } from './api-context.js';
import type { ChangeHub } from './hub.js';

interface Copy {
  /** agent selectors the set was computed for */
  key: string;
  byId: ReadonlyMap<string, RegistrationEntry>;
  validUntil: number;
}

export class AuthorizedEntryCache {
  readonly #copies = new Map<string, Copy>();
  readonly #max: number;
  #generation = 0;
  #unsubscribe: (() => void) | undefined;

  /** Subscribes to `hub`; `maxAgents` bounds how many agents' sets are kept (default 10,000). */
  constructor(cfg: { hub: ChangeHub; maxAgents?: number }) {
    this.#max = cfg.maxAgents ?? 10_000;
    this.#unsubscribe = cfg.hub.subscribe((topic) => {
      this.#generation++;
      if (topic.kind === 'entries') this.#copies.clear();
      else if (topic.kind === 'agent') this.#copies.delete(topic.agentId);
    });
  }

  /** The entries `agent` is authorised for, by entry ID. */
  async get(ctx: ApiContext, agent: AttestedAgent): Promise<ReadonlyMap<string, RegistrationEntry>> {
    const key = agent.selectors.map((s) => `${s.type}:${s.value}`).join('\n');
    const hit = this.#copies.get(agent.spiffeId);
    const now = nowSeconds(ctx);
    if (hit !== undefined && hit.key === key && (hit.validUntil === 0 || now < hit.validUntil)) return hit.byId;
    const generation = this.#generation;
    const set = await authorizedEntrySet(ctx, agent);
    const byId = new Map(set.entries.map((e) => [e.entryId, e]));
    if (generation === this.#generation && this.#unsubscribe !== undefined) {
      if (this.#copies.size >= this.#max && !this.#copies.has(agent.spiffeId)) {
        const oldest = this.#copies.keys().next().value;
        if (oldest !== undefined) this.#copies.delete(oldest);
      }
      this.#copies.set(agent.spiffeId, { key, byId, validUntil: set.validUntil });
    }
    return byId;
  }

  /** Agents with a cached set (for tests). */
  get size(): number {
    return this.#copies.size;
  }

  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#copies.clear();
  }
}
