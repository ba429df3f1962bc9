/**
 * @module server/authorized
 *
 * Which registration entries an agent may hold SVIDs for: the entries parented by the
 * agent's own SPIFFE ID or by a node alias it belongs to (an entry parented by the server
 * whose selectors are all among the agent's node selectors), and, recursively, the entries
 * parented by those entries' SPIFFE IDs (nested and downstream workloads). Expired entries
 * are left out.
 *
 * Threat: an agent obtaining an identity that is not its to hand out. Every SVID an agent
 * asks for is checked against this set, computed from the datastore at the time of the
 * request; nothing the agent sends widens it. The server's own SPIFFE ID is never followed
 * as a parent (its children are every agent's node aliases) and never handed out.
 */
import type { AttestedAgent, RegistrationEntry } from '../datastore/datastore.js';
import { isTemplateId } from '../registration/template.js';
import type { ApiContext } from './api-context.js';
import { nowSeconds } from './api-context.js';

/** Upper bound on the authorised set (guards against a runaway entry graph). */
export const MAX_AUTHORIZED_ENTRIES = 100_000;
const MAX_PARENTS_PER_QUERY = 1024;

/** The SPIFFE IDs of the node-alias entries `agent` belongs to. */
export async function nodeAliasesOf(ctx: ApiContext, agent: AttestedAgent): Promise<string[]> {
  return (await nodeAliasesWithExpiry(ctx, agent)).ids;
}

/** Node aliases of `agent`, and the earliest expiry among them (0 = none expires). */
async function nodeAliasesWithExpiry(ctx: ApiContext, agent: AttestedAgent): Promise<{ ids: string[]; firstExpiry: number }> {
  if (agent.selectors.length === 0) return { ids: [], firstExpiry: 0 };
  const now = nowSeconds(ctx);
  const out = new Set<string>();
  let firstExpiry = 0;
  let pageToken: string | undefined;
  do {
    const page = await ctx.ds.listEntries({
      byParentId: ctx.serverId.toString(),
      bySelectors: { selectors: agent.selectors.slice(0, 256), match: 'subset' },
      pageSize: 1000,
      pageToken,
    });
    for (const e of page.items) {
      if (e.expiresAt !== 0 && e.expiresAt <= now) continue;
      // An entry template names no one node: it is no node alias (registration/template).
      if (isTemplateId(e.spiffeId)) continue;
      out.add(e.spiffeId);
      firstExpiry = earlier(firstExpiry, e.expiresAt);
    }
    pageToken = page.nextPageToken === '' ? undefined : page.nextPageToken;
  } while (pageToken !== undefined);
  return { ids: [...out], firstExpiry };
}

/** The earlier of two expiry times where 0 means never. */
function earlier(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

/** Every entry `agent` is authorised for, sorted by entry ID. */
export async function authorizedEntries(ctx: ApiContext, agent: AttestedAgent): Promise<RegistrationEntry[]> {
  return (await authorizedEntrySet(ctx, agent)).entries;
}

/**
 * Every entry `agent` is authorised for (sorted by entry ID), and `validUntil`: the first
 * second (Unix) at which an entry or node alias behind the set expires, so a copy of the
 * set is stale from then on even without a change notice (0 = nothing expires).
 */
export async function authorizedEntrySet(ctx: ApiContext, agent: AttestedAgent): Promise<{ entries: RegistrationEntry[]; validUntil: number }> {
  const now = nowSeconds(ctx);
  const byId = new Map<string, RegistrationEntry>();
  const serverId = ctx.serverId.toString();
  // The server's own ID is never followed as a parent: its children are the node-alias
  // entries of every agent, so one entry (or alias) naming it would hand them all over.
  const usedParents = new Set<string>([serverId]);
  const aliases = await nodeAliasesWithExpiry(ctx, agent);
  let validUntil = aliases.firstExpiry;
  let frontier = [agent.spiffeId, ...aliases.ids];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (let i = 0; i < frontier.length; i += MAX_PARENTS_PER_QUERY) {
      const parents = frontier.slice(i, i + MAX_PARENTS_PER_QUERY).filter((p) => !usedParents.has(p));
      if (parents.length === 0) continue;
      for (const p of parents) usedParents.add(p);
      for (const e of await ctx.ds.listEntriesForParents(parents)) {
        if (byId.has(e.entryId)) continue;
        if (e.expiresAt !== 0 && e.expiresAt <= now) continue;
        // No agent may hold the server's identity, whatever an old entry says.
        if (e.spiffeId === serverId) continue;
        byId.set(e.entryId, e);
        validUntil = earlier(validUntil, e.expiresAt);
        if (byId.size > MAX_AUTHORIZED_ENTRIES) throw new Error(`agent ${agent.spiffeId} is authorised for more than ${MAX_AUTHORIZED_ENTRIES} entries`);
        // A template's ID is no concrete parent: nothing is nested under an entry template.
        if (!usedParents.has(e.spiffeId) && !isTemplateId(e.spiffeId)) next.push(e.spiffeId);
      }
    }
    frontier = next;
  }
  const entries = [...byId.values()].sort((a, b) => (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
  return { entries, validUntil };
}
