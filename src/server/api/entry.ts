/**
 * @module server/api/entry
 *
 * The `Entry` service: registration entry CRUD for admins. Every entry is validated with
 * the server's trust domain (`validateEntry`) before the datastore sees it, so entries
 * outside the trust domain or over the size bounds are refused with INVALID_ARGUMENT and
 * never stored; so are entries whose SPIFFE ID is in the reserved `/spire` namespace (the
 * server's and agents' own identities). Each successful write is announced on the change hub, which is what makes
 * the agents' authorised-entry streams move.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ListEntriesQuery } from '../../datastore/datastore.js';
import { isTemplateId, templateSample } from '../../registration/template.js';
import { entryIdProblem, labelKeyProblem, labelValueProblem, MAX_ENTRY_LABELS, ownerProblem, validateEntry, type ValidEntry } from '../../registration/entry.js';
import { validateSelector } from '../../registration/selector.js';
import { SpiffeId, TrustDomain } from '../../spiffe/id.js';
import type { Transport } from '../auth.js';
import { checkBatch, pageSizeFromWire, pageTokenFromWire, unary, type ApiContext } from '../context.js';
import { entryFromWire, entryToWire, matchFromWire, type WireEntry, type WireMatch, type WireSelector } from '../messages.js';
import { checkEntryVisible, checkEntryWritable, entryVisible, scopeOfCaller, type RegistrarScope } from '../registrar-scope.js';
import { badRequest, itemStatusOf, notFound, OK_STATUS, type ItemStatus } from '../status.js';
import { MayflyError } from '../../spiffe/errors.js';
import { certifyEntryHandler } from './entry-certify.js';

interface ListEntriesRequest {
  filter: {
    by_spiffe_id: string;
    by_parent_id: string;
    by_selectors: { selectors: WireSelector[]; match: WireMatch } | null;
    by_federates_with: { trust_domains: string[]; match: WireMatch } | null;
    by_owner?: string;
    by_labels?: Record<string, string> | null;
  } | null;
  page_size: number;
  page_token: string;
}

const MAX_FILTER_ITEMS = 256;
/** Entries per datastore batch write (the datastore takes up to 10,000). */
const CREATE_CHUNK = 1000;

function idFilter(v: string | undefined, what: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (isTemplateId(v)) return v; // an entry template's ID, matched as stored (registration/template)
  try {
    return SpiffeId.parse(v).toString();
  } catch (err) {
    throw badRequest(`${what}: ${(err as Error).message}`);
  }
}

/**
 * Refuses an entry (or node alias) SPIFFE ID in the reserved `/spire` namespace, as SPIRE
 * does: `/spire/server` is the server's own identity and `/spire/agent/...` are agents'.
 * An entry holding one would let a workload (or an alias) act as the server or an agent.
 */
export function checkNotReservedId(ctx: ApiContext, spiffeId: string, what: string): void {
  // A template's fixed parts are checked here; each ID it yields again when signed (api/svid).
  const id = SpiffeId.parse(isTemplateId(spiffeId) ? templateSample(spiffeId) : spiffeId);
  if (id.equals(ctx.serverId) || id.path === '/spire' || id.path.startsWith('/spire/')) {
    throw badRequest(`${what} ${spiffeId} is reserved: the /spire namespace holds the server's and agents' own identities and may not be registered; choose another path`);
  }
}

/** Applies server.conf's entry policy (`require_owner`) to a validated entry. */
function checkEntryPolicy(ctx: ApiContext, entry: ValidEntry): void {
  if (ctx.limits.requireOwner && entry.owner === '') {
    throw badRequest(`entry for ${entry.spiffeId} has no owner, and this server requires one (server.conf: require_owner = true): give it an owner, e.g. -owner team-payments`);
  }
}

function entryIdFromWire(id: string | undefined): string {
  const p = entryIdProblem(id);
  if (p !== undefined) throw badRequest(`entry id ${p}`);
  return id as string;
}

export function listEntriesQuery(ctx: ApiContext, req: ListEntriesRequest): ListEntriesQuery {
  const q: ListEntriesQuery = {};
  const f = req.filter;
  const bySpiffeId = idFilter(f?.by_spiffe_id, 'filter.by_spiffe_id');
  if (bySpiffeId !== undefined) q.bySpiffeId = bySpiffeId;
  const byParentId = idFilter(f?.by_parent_id, 'filter.by_parent_id');
  if (byParentId !== undefined) q.byParentId = byParentId;
  const sels = f?.by_selectors?.selectors ?? [];
  if (sels.length > 0) {
    if (sels.length > MAX_FILTER_ITEMS) throw badRequest(`filter.by_selectors holds ${sels.length} selectors; the limit is ${MAX_FILTER_ITEMS}`);
    q.bySelectors = { selectors: sels.map((s) => validateSelector(s)), match: matchFromWire(f?.by_selectors?.match) };
  }
  const tds = f?.by_federates_with?.trust_domains ?? [];
  if (tds.length > 0) {
    if (tds.length > MAX_FILTER_ITEMS) throw badRequest(`filter.by_federates_with holds ${tds.length} trust domains; the limit is ${MAX_FILTER_ITEMS}`);
    q.byFederatesWith = { trustDomains: tds.map((t) => TrustDomain.parse(t).name), match: matchFromWire(f?.by_federates_with?.match) };
  }
  if (f?.by_owner !== undefined && f.by_owner !== '') {
    const p = ownerProblem(f.by_owner);
    if (p !== undefined) throw badRequest(`filter.by_owner ${p}`);
    q.byOwner = f.by_owner;
  }
  const labels = f?.by_labels ?? {};
  const labelKeys = Object.keys(labels);
  if (labelKeys.length > 0) {
    if (labelKeys.length > MAX_ENTRY_LABELS) throw badRequest(`filter.by_labels holds ${labelKeys.length} labels; the limit is ${MAX_ENTRY_LABELS}`);
    for (const k of labelKeys) {
      const p = labelKeyProblem(k) ?? labelValueProblem(labels[k]);
      if (p !== undefined) throw badRequest(`filter.by_labels[${JSON.stringify(k.slice(0, 64))}] ${p}`);
    }
    q.byLabels = labels;
  }
  const pageSize = pageSizeFromWire(ctx, req.page_size);
  if (pageSize !== undefined) q.pageSize = pageSize;
  const pageToken = pageTokenFromWire(req.page_token);
  if (pageToken !== undefined) q.pageToken = pageToken;
  return q;
}

/** Entries a scoped registrar may see, counted by walking the store (CountEntries). */
async function countInScope(ctx: ApiContext, scope: RegistrarScope): Promise<number> {
  let n = 0;
  let pageToken: string | undefined;
  do {
    const page = await ctx.ds.listEntries({ pageSize: 1000, ...(pageToken !== undefined ? { pageToken } : {}) });
    for (const e of page.items) if (entryVisible(scope, e)) n++;
    pageToken = page.nextPageToken === '' ? undefined : page.nextPageToken;
  } while (pageToken !== undefined);
  return n;
}

/**
 * A scoped update: the stored entry and the new one must both be in scope, and the stored
 * one must be the revision the update replaces (otherwise the write could replace an entry
 * changed, e.g. moved out of scope, after this check).
 */
async function checkUpdateInScope(ctx: ApiContext, scope: RegistrarScope, next: ValidEntry, entryId: string, revision: number): Promise<void> {
  const stored = await ctx.ds.getEntry(entryId);
  if (stored === undefined) throw notFound(`no entry with id ${entryId}`);
  checkEntryWritable(scope, stored, 'update', 'the stored entry');
  checkEntryWritable(scope, { ...next, entryId }, 'update', 'the updated entry');
  if (stored.revision !== revision) {
    throw new MayflyError('ERR_DATASTORE_CONFLICT', `entry ${entryId} is at revision ${stored.revision}, not ${revision}; read it again and retry`);
  }
}

export function entryService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  const changed = (): void => ctx.hub.publish({ kind: 'entries' });
  return {
    CertifyEntry: certifyEntryHandler(ctx, t),

    CountEntries: unary(ctx, t, 'CountEntries', 'admin', async (_req, caller) => {
      const scope = scopeOfCaller(caller);
      return { count: scope === undefined ? await ctx.ds.countEntries() : await countInScope(ctx, scope) };
    }),

    // A scoped registrar's pages hold only its entries (a page may then be short; the token still pages on).
    ListEntries: unary<ListEntriesRequest, unknown>(ctx, t, 'ListEntries', 'admin', async (req, caller) => {
      const scope = scopeOfCaller(caller);
      const page = await ctx.ds.listEntries(listEntriesQuery(ctx, req));
      return { entries: page.items.filter((e) => entryVisible(scope, e)).map(entryToWire), next_page_token: page.nextPageToken };
    }),

    GetEntry: unary<{ id: string }, WireEntry>(ctx, t, 'GetEntry', 'admin', async (req, caller) => {
      const id = entryIdFromWire(req.id);
      const e = await ctx.ds.getEntry(id);
      if (e === undefined) throw notFound(`no entry with id ${id}`);
      checkEntryVisible(scopeOfCaller(caller), e);
      return entryToWire(e);
    }),

    BatchCreateEntry: unary<{ entries: WireEntry[] }, unknown>(ctx, t, 'BatchCreateEntry', 'admin', async (req, caller) => {
      const scope = scopeOfCaller(caller);
      const list = req.entries ?? [];
      checkBatch(ctx, list.length, 'entries');
      const results: { status: ItemStatus; entry: WireEntry | null }[] = [];
      // Validate every item here, then write the valid ones with the datastore's batch
      // create: one durable (synced) write per chunk instead of one per entry. Items stay
      // independent and in order; a duplicate within the batch fails like a later create.
      const valid: { i: number; entry: ReturnType<typeof validateEntry> }[] = [];
      for (const w of list) {
        try {
          const entry = validateEntry(entryFromWire(w), { trustDomain: ctx.trustDomain });
          checkNotReservedId(ctx, entry.spiffeId, 'spiffe_id');
          checkEntryPolicy(ctx, entry);
          checkEntryWritable(scope, entry, 'create');
          valid.push({ i: results.length, entry });
          results.push({ status: OK_STATUS, entry: null });
        } catch (err) {
          results.push({ status: itemStatusOf(err), entry: null });
        }
      }
      let any = false;
      try {
        for (let k = 0; k < valid.length; k += CREATE_CHUNK) {
          const chunk = valid.slice(k, k + CREATE_CHUNK);
          const created = await ctx.ds.createEntries(chunk.map((v) => v.entry));
          created.forEach((r, j) => {
            const i = (chunk[j] as { i: number }).i;
            if (r.entry !== undefined) {
              results[i] = { status: OK_STATUS, entry: entryToWire(r.entry) };
              any = true;
            } else {
              results[i] = { status: itemStatusOf(r.error), entry: null };
            }
          });
        }
      } finally {
        if (any) changed();
      }
      return { results };
    }),

    BatchUpdateEntry: unary<{ entries: WireEntry[] }, unknown>(ctx, t, 'BatchUpdateEntry', 'admin', async (req, caller) => {
      const scope = scopeOfCaller(caller);
      const list = req.entries ?? [];
      checkBatch(ctx, list.length, 'entries');
      const results: { status: ItemStatus; entry: WireEntry | null }[] = [];
      let any = false;
      for (const w of list) {
        try {
          const entryId = entryIdFromWire(w?.id);
          const valid = validateEntry({ ...entryFromWire(w), entryId }, { trustDomain: ctx.trustDomain });
          checkNotReservedId(ctx, valid.spiffeId, 'spiffe_id');
          checkEntryPolicy(ctx, valid);
          const revision = w.revision ?? 0;
          if (!Number.isSafeInteger(revision) || revision < 0) throw badRequest('revision must be a non-negative integer');
          if (scope !== undefined) await checkUpdateInScope(ctx, scope, valid, entryId, revision);
          const stored = await ctx.ds.updateEntry({ ...valid, entryId }, { expectedRevision: revision });
          results.push({ status: OK_STATUS, entry: entryToWire(stored) });
          any = true;
        } catch (err) {
          results.push({ status: itemStatusOf(err), entry: null });
        }
      }
      if (any) changed();
      return { results };
    }),

    BatchDeleteEntry: unary<{ ids: string[] }, unknown>(ctx, t, 'BatchDeleteEntry', 'admin', async (req, caller) => {
      const scope = scopeOfCaller(caller);
      const ids = req.ids ?? [];
      checkBatch(ctx, ids.length, 'ids');
      const results: { status: ItemStatus; id: string }[] = [];
      let any = false;
      for (const raw of ids) {
        try {
          const id = entryIdFromWire(raw);
          if (scope !== undefined) {
            const stored = await ctx.ds.getEntry(id);
            if (stored === undefined) throw notFound(`no entry with id ${id}`);
            checkEntryWritable(scope, stored, 'delete');
          }
          await ctx.ds.deleteEntry(id);
          results.push({ status: OK_STATUS, id });
          any = true;
        } catch (err) {
          results.push({ status: itemStatusOf(err), id: typeof raw === 'string' ? raw.slice(0, 255) : '' });
        }
      }
      if (any) changed();
      return { results };
    }),
  };
}
