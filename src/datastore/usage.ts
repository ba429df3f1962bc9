/**
 * @module datastore/usage
 *
 * Per-entry usage records (issue 11): first and last issuance, issuance count, the agents
 * that fetched the entry's SVIDs, and the last Workload API delivery an agent reported.
 * The server accumulates deltas in memory and writes them in batches (server/usage-recorder);
 * both stores merge a delta into the stored record with `mergeEntryUsage`.
 *
 * Threat: an unbounded record. An entry fetched by 100,000 agents keeps the
 * `MAX_USAGE_AGENTS` most recent ones (and `agentCount` says how many were ever seen).
 */
import type { EntryUsage, EntryUsageDelta } from './datastore.js';
import { invalid, MAX_BATCH_CREATE } from './records.js';

export const MAX_USAGE_AGENTS = 64;

/** `delta` merged into `old` (undefined: none stored yet). */
export function mergeEntryUsage(old: EntryUsage | undefined, d: EntryUsageDelta): EntryUsage {
  const agents = [...(old?.agents ?? [])];
  let agentCount = old?.agentCount ?? 0;
  for (const a of d.agents ?? []) {
    const at = agents.indexOf(a);
    if (at >= 0) agents.splice(at, 1);
    else agentCount++;
    agents.push(a);
  }
  while (agents.length > MAX_USAGE_AGENTS) agents.shift();
  const issued = (d.issuanceCount ?? 0) > 0;
  const min = (a: number, b: number): number => (a === 0 ? b : b === 0 ? a : Math.min(a, b));
  return {
    entryId: d.entryId,
    firstIssuedAt: issued ? min(old?.firstIssuedAt ?? 0, d.firstIssuedAt ?? 0) : old?.firstIssuedAt ?? 0,
    lastIssuedAt: Math.max(old?.lastIssuedAt ?? 0, issued ? d.lastIssuedAt ?? 0 : 0),
    issuanceCount: (old?.issuanceCount ?? 0) + (d.issuanceCount ?? 0),
    agents,
    agentCount,
    lastDeliveredAt: Math.max(old?.lastDeliveredAt ?? 0, d.lastDeliveredAt ?? 0),
  };
}

const isTime = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);

/** Checks a batch of deltas (1..10,000) and returns them. */
export function checkUsageDeltas(deltas: readonly EntryUsageDelta[]): readonly EntryUsageDelta[] {
  if (!Array.isArray(deltas)) throw new TypeError('recordEntryUsage needs an array');
  if (deltas.length > MAX_BATCH_CREATE) throw invalid(`recordEntryUsage takes at most ${MAX_BATCH_CREATE} records per call (got ${deltas.length})`);
  const seen = new Set<string>();
  for (const d of deltas) {
    if (typeof d?.entryId !== 'string' || d.entryId === '' || d.entryId.length > 255 || d.entryId.includes('\0')) throw invalid('a usage record needs an entryId');
    if (seen.has(d.entryId)) throw invalid(`usage for entry ${d.entryId} is given twice in one batch`);
    seen.add(d.entryId);
    if (![d.firstIssuedAt, d.lastIssuedAt, d.issuanceCount, d.lastDeliveredAt].every(isTime)) throw invalid(`usage for entry ${d.entryId}: times and counts must be integers >= 0`);
    if (d.agents !== undefined && (!Array.isArray(d.agents) || d.agents.length > MAX_USAGE_AGENTS || (d.agents as readonly unknown[]).some((a) => typeof a !== 'string' || a.length > 2048))) {
      throw invalid(`usage for entry ${d.entryId}: agents must be at most ${MAX_USAGE_AGENTS} SPIFFE ID strings`);
    }
  }
  return deltas;
}
