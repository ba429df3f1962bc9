/**
 * @module server/registrar-scope
 *
 * Scoped registrars (issue 11; SPIRE's API authorisation is all-or-nothing, spire#3620): an
 * admin SVID named in server.conf's `registrars` block may only register, change, see and
 * delete entries within its scope, and only see, ban and evict the agents its `parent_ids`
 * name. Every entry and agent handler (server/api/entry, server/api/agent) asks this module,
 * so SPIRE's Entry and Agent APIs, which run those handlers (server/spire-api), get the same
 * checks; every other admin RPC is refused to a scoped registrar by server/auth.
 *
 * Threats it stops:
 * - A CI registrar for team A registering, moving or deleting team B's workloads: an entry
 *   is in scope only when its SPIFFE ID is under one of `spiffe_id_prefixes` (by whole path
 *   segments: `spiffe://td/team-a` covers `spiffe://td/team-a/x`, never `spiffe://td/team-ab`),
 *   its parent is one of `parent_ids` (exact, or any ID below an `…/*` pattern) and its owner
 *   is one of `owners`. An update must find both the stored entry and the new one in scope,
 *   and is pinned to the revision that was checked, so an entry cannot be pulled in or pushed
 *   out of scope in one step, nor swapped between the check and the write.
 * - A registrar widening its own rights: it may not create or change admin entries (a new,
 *   unscoped admin) or downstream entries (an intermediate CA signing any ID). IDs in the
 *   reserved `/spire` namespace (`spiffe://td/spire/server`-shaped) are refused to everyone
 *   by server/api/entry, and a prefix inside it is refused at config time (server/config-registrars).
 * - Probing: an out-of-scope entry or agent is PERMISSION_DENIED, listings and counts only
 *   ever include what is in scope, and every refusal names the scope (no guessing what went wrong).
 */
import { denied } from './status.js';

/** What one registrar may touch (server.conf `registrars { registrar "<admin SPIFFE ID>" { … } }`). */
export interface RegistrarScope {
  /** The admin SVID's SPIFFE ID this scope binds. */
  readonly registrar: string;
  /** SPIFFE ID prefixes, normalised (no trailing `/`); an ID is under one when equal to it or below it by whole segments. */
  readonly spiffeIdPrefixes: readonly string[];
  /** Parent IDs: exact SPIFFE IDs, or `<id>/*` for any ID strictly below `<id>`. */
  readonly parentIds: readonly string[];
  /** Owners (exact); an entry without an owner is never in a registrar's scope. */
  readonly owners: readonly string[];
}

/** What the check reads of an entry (a RegistrationEntry, validated input or stored record). */
export interface ScopedEntry {
  readonly entryId?: string;
  readonly spiffeId: string;
  readonly parentId: string;
  readonly owner: string;
  readonly admin: boolean;
  readonly downstream: boolean;
}

/** The scope a caller is held to, if any: only scoped admin SVIDs carry one (server/auth). */
export function scopeOfCaller(caller: { readonly kind: string; readonly scope?: RegistrarScope }): RegistrarScope | undefined {
  return caller.kind === 'admin' ? caller.scope : undefined;
}

/** `id` equals `prefix` or lies below it by whole path segments. */
export function idUnder(id: string, prefix: string): boolean {
  return id === prefix || id.startsWith(`${prefix}/`);
}

/** `id` matches a `parent_ids` pattern: exactly, or strictly below an `…/*` pattern. */
export function parentMatches(id: string, pattern: string): boolean {
  if (pattern.endsWith('/*')) return id.startsWith(pattern.slice(0, -1));
  return id === pattern;
}

/** One line naming the scope, for refusals. */
export function describeScope(s: RegistrarScope): string {
  const list = (xs: readonly string[]): string => `[${xs.join(', ')}]`;
  return `registrar ${s.registrar} is scoped (server.conf registrars) to spiffe_id_prefixes ${list(s.spiffeIdPrefixes)}, parent_ids ${list(s.parentIds)}, owners ${list(s.owners)}`;
}

/** Why `e` is outside `s` (the first dimension that fails), or undefined when it is inside. */
export function entryOutsideScope(s: RegistrarScope, e: ScopedEntry): string | undefined {
  if (!s.spiffeIdPrefixes.some((p) => idUnder(e.spiffeId, p))) return `its SPIFFE ID ${e.spiffeId} is under none of spiffe_id_prefixes`;
  if (!s.parentIds.some((p) => parentMatches(e.parentId, p))) return `its parent ${e.parentId} matches none of parent_ids`;
  if (!s.owners.includes(e.owner)) return e.owner === '' ? 'it has no owner' : `its owner ${JSON.stringify(e.owner)} is none of owners`;
  return undefined;
}

/** Whether a scoped caller may see `e` (listings, counts, GetEntry). */
export function entryVisible(s: RegistrarScope | undefined, e: ScopedEntry): boolean {
  return s === undefined || entryOutsideScope(s, e) === undefined;
}

/**
 * Throws PERMISSION_DENIED, naming the scope, unless `s` may write `e` (`verb`: `create`,
 * `update`, `delete`; `which` says which side of an update, e.g. `the stored entry`).
 * No-op for unscoped callers.
 */
export function checkEntryWritable(s: RegistrarScope | undefined, e: ScopedEntry, verb: string, which = 'the entry'): void {
  if (s === undefined) return;
  const named = e.entryId !== undefined && e.entryId !== '' ? `${which} ${e.entryId}` : `${which} for ${e.spiffeId}`;
  const outside = entryOutsideScope(s, e);
  if (outside !== undefined) throw denied(`may not ${verb} ${named}: ${outside}; ${describeScope(s)}`);
  if (e.admin) throw denied(`may not ${verb} ${named}: it is an admin entry, and a scoped registrar may not grant or change admin rights; ${describeScope(s)}`);
  if (e.downstream) throw denied(`may not ${verb} ${named}: it is a downstream entry (an intermediate CA), which a scoped registrar may not grant or change; ${describeScope(s)}`);
}

/** Throws PERMISSION_DENIED unless `s` may see `e` (GetEntry). */
export function checkEntryVisible(s: RegistrarScope | undefined, e: ScopedEntry): void {
  if (s === undefined) return;
  const outside = entryOutsideScope(s, e);
  if (outside !== undefined) throw denied(`may not read entry ${e.entryId ?? e.spiffeId}: ${outside}; ${describeScope(s)}`);
}

/** Whether a scoped caller may see, ban or evict the agent `agentId`: its ID matches one of `parent_ids`. */
export function agentVisible(s: RegistrarScope | undefined, agentId: string): boolean {
  return s === undefined || s.parentIds.some((p) => parentMatches(agentId, p));
}

/** Throws PERMISSION_DENIED, naming the scope, unless `s` may act on the agent. */
export function checkAgentInScope(s: RegistrarScope | undefined, agentId: string, verb: string): void {
  if (agentVisible(s, agentId)) return;
  throw denied(`may not ${verb} agent ${agentId}: it matches none of parent_ids; ${describeScope(s as RegistrarScope)}`);
}

/**
 * The admin RPCs a scoped registrar may call (each checks the scope itself); any other admin
 * RPC (minting SVIDs, join tokens, bundles, federation, authorities, audit, inventory, purge)
 * is refused by server/auth, since none of them is bounded by entry scope.
 */
export const SCOPED_REGISTRAR_METHODS: ReadonlySet<string> = new Set([
  'CountEntries',
  'ListEntries',
  'GetEntry',
  'BatchCreateEntry',
  'BatchUpdateEntry',
  'BatchDeleteEntry',
  'CertifyEntry',
  'CountAgents',
  'ListAgents',
  'GetAgent',
  'BanAgent',
  'DeleteAgent',
  // SPIRE's same RPCs (server/spire-api, issue 14): each runs the Mayfly handler above,
  // which checks the scope; SPIRE's CreateJoinToken and Debug stay refused.
  'spire.Entry/CountEntries',
  'spire.Entry/ListEntries',
  'spire.Entry/GetEntry',
  'spire.Entry/BatchCreateEntry',
  'spire.Entry/BatchUpdateEntry',
  'spire.Entry/BatchDeleteEntry',
  'spire.Agent/CountAgents',
  'spire.Agent/ListAgents',
  'spire.Agent/GetAgent',
  'spire.Agent/BanAgent',
  'spire.Agent/DeleteAgent',
]);
