/**
 * @module server/inventory
 *
 * The identity inventory (issue 11, item 4): one pass over entries, agents and entry usage
 * that names what needs an owner's attention. Pure: the caller passes the data and the
 * clock (`now`, unix seconds), so the same input always gives the same report.
 *
 * Threat: identities nobody answers for. An entry that was never used, whose owner is
 * unknown, whose parent agent is gone or banned, or whose selectors match every process
 * keeps a door open that nobody is watching; the report names each one and what to do.
 */
import type { AttestedAgent, Datastore, EntryUsage } from '../datastore/datastore.js';
import type { RegistrationEntry } from '../registration/entry.js';
import { formatSelector } from '../registration/selector.js';
import type { CertificationStatus } from './certification.js';

export type EntryFindingKind =
  | 'never_issued'
  | 'unused'
  | 'no_owner'
  | 'expired'
  | 'parent_gone'
  | 'parent_banned'
  | 'duplicate'
  | 'over_broad'
  | 'long_ttl'
  // Owner certification (server/certification), when it is on.
  | 'certification_due'
  | 'certification_lapsed'
  | 'certification_exempt';

/** A certification finding for one entry, from the caller (server/api/inventory). */
export type CertificationFindingOf = (e: RegistrationEntry) => { kind: 'certification_due' | 'certification_lapsed' | 'certification_exempt'; detail: string; action: string } | undefined;

/** Every finding kind, entries' and agents'. */
export const INVENTORY_KINDS: readonly (EntryFindingKind | AgentFinding['kind'])[] = [
  'never_issued', 'unused', 'no_owner', 'expired', 'parent_gone', 'parent_banned', 'duplicate', 'over_broad', 'long_ttl', 'agent_not_seen',
];

export interface EntryFinding {
  readonly kind: EntryFindingKind;
  readonly entryId: string;
  readonly spiffeId: string;
  readonly owner: string;
  readonly detail: string;
  readonly action: string;
}

export interface AgentFinding {
  readonly kind: 'agent_not_seen';
  readonly agentId: string;
  readonly lastSeenAt: number;
  readonly detail: string;
  readonly action: string;
}

export interface InventoryReport {
  readonly generatedAt: number;
  readonly entryCount: number;
  readonly agentCount: number;
  readonly entries: readonly EntryFinding[];
  readonly agents: readonly AgentFinding[];
}

export interface InventoryInput {
  readonly entries: readonly RegistrationEntry[];
  readonly agents: readonly AttestedAgent[];
  readonly usage: readonly EntryUsage[];
  /** The server's own SPIFFE ID (`spiffe://td/spire/server`): a valid parent for node entries. */
  readonly serverId: string;
  /** Unix seconds. */
  readonly now: number;
  /** Days without an issuance (or agent contact) before it is reported (default 30). */
  readonly unusedDays?: number;
  /** How many longest-TTL entries to list (default 10). */
  readonly topTtl?: number;
  /** Owner certification findings, when certification is on. */
  readonly certification?: CertificationFindingOf;
}

const DAY = 86_400;
/** Selector types whose single selector matches every process on a node. */
const MATCH_ALL_TYPES = new Set(['unix', 'k8s', 'docker', 'systemd']);
/** Selectors that on their own match every process (root, or a value every process has). */
const MATCH_ALL_VALUES = new Set(['unix:uid:0', 'unix:gid:0']);

function overBroad(e: RegistrationEntry): string | undefined {
  if (e.selectors.length !== 1) return undefined;
  const s = e.selectors[0]!;
  const f = formatSelector(s);
  if (MATCH_ALL_VALUES.has(f)) return `only selector ${f} (every root process)`;
  if (MATCH_ALL_TYPES.has(s.type) && !s.value.includes(':')) return `only selector ${f}`;
  return undefined;
}

function days(seconds: number): number {
  return Math.floor(seconds / DAY);
}

/** Computes the inventory report. Throws TypeError on a nonsensical clock or threshold. */
export function computeInventory(input: InventoryInput): InventoryReport {
  const { now } = input;
  const unusedDays = input.unusedDays ?? 30;
  const topTtl = input.topTtl ?? 10;
  if (!Number.isInteger(now) || now < 0) throw new TypeError('computeInventory: now must be unix seconds');
  if (!Number.isInteger(unusedDays) || unusedDays < 1) throw new TypeError('computeInventory: unusedDays must be a positive integer');
  const usage = new Map(input.usage.map((u) => [u.entryId, u]));
  const agents = new Map(input.agents.map((a) => [a.spiffeId, a]));
  const entryIds = new Set(input.entries.map((e) => e.spiffeId));
  const out: EntryFinding[] = [];
  const add = (e: RegistrationEntry, kind: EntryFindingKind, detail: string, action: string): void => {
    out.push({ kind, entryId: e.entryId, spiffeId: e.spiffeId, owner: e.owner, detail, action });
  };
  const sorted = [...input.entries].sort((a, b) => (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
  const groups = new Map<string, RegistrationEntry[]>();
  for (const e of sorted) {
    const u = usage.get(e.entryId);
    const last = Math.max(u?.lastIssuedAt ?? 0, u?.lastDeliveredAt ?? 0);
    if (last === 0) {
      add(e, 'never_issued', `created ${days(now - e.createdAt)} days ago, no SVID issued`, 'check the selectors match a workload, or delete the entry');
    } else if (now - last >= unusedDays * DAY) {
      add(e, 'unused', `last used ${days(now - last)} days ago`, 'ask the owner whether it is still needed; delete it if not');
    }
    if (e.owner === '') add(e, 'no_owner', 'no owner recorded', 'set an owner (entry update -owner)');
    if (e.expiresAt !== 0 && e.expiresAt <= now) add(e, 'expired', `expired ${days(now - e.expiresAt)} days ago`, 'delete the entry or extend -entryExpiry');
    if (e.parentId !== input.serverId) {
      const parent = agents.get(e.parentId);
      if (parent?.banned === true) add(e, 'parent_banned', `parent agent ${e.parentId} is banned`, 'delete the entry or move it to a live agent');
      else if (parent === undefined && !entryIds.has(e.parentId)) add(e, 'parent_gone', `parent ${e.parentId} is neither an attested agent nor a node entry`, 'delete the entry or move it to a live agent');
    }
    const cert = input.certification?.(e);
    if (cert !== undefined) add(e, cert.kind, cert.detail, cert.action);
    const broad = overBroad(e);
    if (broad !== undefined) add(e, 'over_broad', broad, 'add selectors that name the workload (path, sha256, service account)');
    const key = `${e.parentId}\n${e.selectors.map(formatSelector).sort().join('\n')}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [e]);
    else g.push(e);
  }
  for (const g of groups.values()) {
    if (new Set(g.map((e) => e.spiffeId)).size < 2) continue;
    for (const e of g) {
      const others = g.filter((o) => o !== e).map((o) => o.spiffeId).join(', ');
      add(e, 'duplicate', `same parent and selectors as ${others}`, 'the workload gets several identities: keep one, delete the others');
    }
  }
  const ttl = (e: RegistrationEntry): number => Math.max(e.x509SvidTtl, e.jwtSvidTtl);
  const longest = sorted.filter((e) => ttl(e) > 0).sort((a, b) => ttl(b) - ttl(a)).slice(0, topTtl);
  for (const e of longest) {
    add(e, 'long_ttl', `x509 TTL ${e.x509SvidTtl}s, JWT TTL ${e.jwtSvidTtl}s`, 'shorten the TTL unless the workload cannot renew');
  }
  const agentOut: AgentFinding[] = [];
  for (const a of [...input.agents].sort((x, y) => (x.spiffeId < y.spiffeId ? -1 : 1))) {
    if (now - a.updatedAt >= unusedDays * DAY) {
      agentOut.push({
        kind: 'agent_not_seen',
        agentId: a.spiffeId,
        lastSeenAt: a.updatedAt,
        detail: `not seen for ${days(now - a.updatedAt)} days`,
        action: 'evict the agent (agent evict) if the node is gone',
      });
    }
  }
  return { generatedAt: now, entryCount: input.entries.length, agentCount: input.agents.length, entries: out, agents: agentOut };
}

async function all<T>(list: (q: { pageSize: number; pageToken?: string }) => Promise<{ items: T[]; nextPageToken: string }>): Promise<T[]> {
  const out: T[] = [];
  let pageToken: string | undefined;
  for (;;) {
    const page = await list({ pageSize: 1000, ...(pageToken === undefined ? {} : { pageToken }) });
    out.push(...page.items);
    if (page.nextPageToken === '') return out;
    pageToken = page.nextPageToken;
  }
}

/** Reads every entry, agent and usage record from `ds` and computes the report at `now` (unix seconds). */
export async function inventoryFromStore(
  ds: Pick<Datastore, 'listEntries' | 'listAgents' | 'listEntryUsage'>,
  serverId: string,
  now: number,
  unusedDays: number,
  certification?: CertificationFindingOf,
): Promise<InventoryReport> {
  const [entries, agents, usage] = await Promise.all([all((q) => ds.listEntries(q)), all((q) => ds.listAgents(q)), ds.listEntryUsage()]);
  return computeInventory({ entries, agents, usage, serverId, now, unusedDays, ...(certification !== undefined ? { certification } : {}) });
}

const iso = (s: number): string => new Date(s * 1000).toISOString();

/** The owner certification findings (issue 11 item 5) of `gate` at `now`, when certification is on (server/certification). */
export function certificationFindings(gate: { status(e: RegistrationEntry, now: number): CertificationStatus } | undefined, now: number): CertificationFindingOf | undefined {
  if (gate === undefined) return undefined;
  return (e) => {
    const s = gate.status(e, now);
    const how = `mayfly-server entry certify -entryID ${e.entryId} -owner ${e.owner === '' ? '<owner>' : e.owner}`;
    const last = s.certifiedAt === 0 ? 'never certified' : `last certified ${iso(s.certifiedAt)}`;
    if (s.state === 'due') return { kind: 'certification_due', detail: `certification due since ${iso(s.dueAt)} (${last}); not served from ${iso(s.lapsesAt)}`, action: `the owner certifies it: ${how}` };
    if (s.state === 'lapsed') return { kind: 'certification_lapsed', detail: `not served since ${iso(s.lapsesAt)} (${last})`, action: `the owner certifies it (${how}), or delete it` };
    if (s.state === 'exempt') return { kind: 'certification_exempt', detail: `exempt from certification (break-glass): served until its owner certifies it (${last})`, action: `the owner certifies it, which ends the exemption: ${how}` };
    return undefined;
  };
}
