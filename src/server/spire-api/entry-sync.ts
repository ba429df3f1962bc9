/**
 * @module server/spire-api/entry-sync
 *
 * The entries an agent is authorised for, as SPIRE's agents fetch them:
 * GetAuthorizedEntries (all at once) and SyncAuthorizedEntries (SPIRE 1.13's default, a
 * sparse sync). The set is Mayfly's (server/authorized, through the authorised-entry
 * cache when the server has one): the same one Mayfly's push stream sends and
 * BatchNewX509SVID checks against.
 *
 * SyncAuthorizedEntries, as SPIRE's server does it (pkg/server/api/entry/v1/service.go):
 * the first request carries only the output mask (IDs there are INVALID_ARGUMENT, a mask
 * without revision_number too); up to `entryPageSize` entries (500) come back whole in one
 * response; more come as pages of {id, revision_number, created_at} with `more` set on all
 * but the last, after which each request of IDs is answered with those entries (unknown
 * IDs skipped) in pages of at most `entryPageSize`, `more` false on the last. The agent
 * takes the size of the first revision page as the server's page size.
 *
 * Threat: an agent learning entries that are not its own. Only the caller's authorised set
 * is ever read; IDs an agent asks for outside it are skipped exactly like unknown ones.
 */
import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { RegistrationEntry } from '../../datastore/datastore.js';
import type { Caller, Transport } from '../auth.js';
import { authorizedEntries } from '../authorized.js';
import { unary, type ApiContext } from '../context.js';
import { entryToAgentWire } from '../messages.js';
import { badRequest } from '../status.js';
import type { MayflyImpls } from './delegate.js';
import { agentBidi, spireErrors, StreamReader } from './stream.js';
import { applyMask, entryToSpire, type SpireEntry, type SpireMask } from './types.js';

/** SPIRE's `defaultEntryPageSize`. */
export const SPIRE_ENTRY_PAGE_SIZE = 500;

interface SyncRequest {
  output_mask: SpireMask | null;
  ids: string[];
}

interface EntryRevision {
  id: string;
  revision_number: number;
  created_at: number;
}

interface SyncResponse {
  entry_revisions: EntryRevision[];
  entries: Partial<SpireEntry>[];
  more: boolean;
}

/** The caller's authorised entries, sorted by entry ID. */
async function authorizedFor(ctx: ApiContext, caller: Extract<Caller, { kind: 'agent' }>): Promise<RegistrationEntry[]> {
  if (ctx.authorizedCache === undefined) return authorizedEntries(ctx, caller.agent);
  const map = await ctx.authorizedCache.get(ctx, caller.agent);
  return [...map.values()].sort((a, b) => (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
}

const toSpire = (e: RegistrationEntry, mask: SpireMask | null): Partial<SpireEntry> => applyMask(entryToSpire(entryToAgentWire(e)), mask, ['id']);

export interface EntrySyncOptions {
  /** Entries per page (default SPIRE's 500); tests use a small one. */
  pageSize?: number;
}

export function entrySyncHandlers(ctx: ApiContext, t: Transport, _mayfly: MayflyImpls, opts: EntrySyncOptions = {}): UntypedServiceImplementation {
  const pageSize = opts.pageSize ?? SPIRE_ENTRY_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new TypeError('pageSize must be a positive integer');
  return {
    GetAuthorizedEntries: spireErrors(
      unary<{ output_mask: SpireMask | null }, { entries: Partial<SpireEntry>[] }>(ctx, t, 'GetAuthorizedEntries', 'agent', async (req, caller) => {
        if (caller.kind !== 'agent') throw badRequest('GetAuthorizedEntries is for attested agents only');
        const entries = await authorizedFor(ctx, caller);
        return { entries: entries.map((e) => toSpire(e, req.output_mask ?? null)) };
      }),
    ),

    SyncAuthorizedEntries: agentBidi<SyncRequest, SyncResponse>(ctx, t, 'SyncAuthorizedEntries', async (caller, call) => {
      const entries = await authorizedFor(ctx, caller);
      await syncAuthorizedEntries(call, entries, pageSize);
    }),
  };
}

async function syncAuthorizedEntries(call: ServerDuplexStream<SyncRequest, SyncResponse>, entries: readonly RegistrationEntry[], pageSize: number): Promise<void> {
  const reader = new StreamReader(call);
  const first = await reader.next();
  if (first === null) return;
  if ((first.ids ?? []).length > 0) throw badRequest('specifying IDs on initial request is not supported');
  const mask = first.output_mask ?? null;
  if (mask !== null && mask.revision_number !== true) throw badRequest('revision number cannot be masked');
  const send = (r: Partial<SyncResponse>): void => void call.write({ entry_revisions: [], entries: [], more: false, ...r });

  if (entries.length <= pageSize) {
    send({ entries: entries.map((e) => toSpire(e, mask)) });
    call.end();
    return;
  }
  for (let i = 0; i < entries.length; i += pageSize) {
    const page = entries.slice(i, i + pageSize).map((e) => ({ id: e.entryId, revision_number: e.revision, created_at: e.createdAt }));
    send({ entry_revisions: page, more: i + pageSize < entries.length });
  }
  // `entries` is sorted by ID: each request is answered by one merge pass.
  const byId = new Map(entries.map((e) => [e.entryId, e]));
  for (;;) {
    const req = await reader.next();
    if (req === null) break;
    const ids = [...new Set(req.ids ?? [])].sort();
    let out: Partial<SpireEntry>[] = [];
    for (const id of ids) {
      const e = byId.get(id);
      if (e === undefined) continue;
      if (out.length === pageSize) {
        send({ entries: out, more: true });
        out = [];
      }
      out.push(toSpire(e, mask));
    }
    send({ entries: out, more: false });
  }
  call.end();
}
