/**
 * @module server/spire-api/entry-admin
 *
 * SPIRE's Entry admin RPCs (CountEntries, ListEntries, GetEntry, BatchCreateEntry,
 * BatchUpdateEntry, BatchDeleteEntry) over Mayfly's own Entry handlers, so authorisation,
 * validation, audit and the agents' push streams are Mayfly's one code path. Requests are
 * checked with SPIRE's rules and wording first (entry-convert.ts), then translated; the
 * answers keep SPIRE's status codes, per-item statuses (in request order) and output masks
 * (a nil mask: every field; a set mask: only the fields set, the ID always).
 *
 * Where Mayfly answers differently from SPIRE on purpose, it says so at the spot:
 * - updates carry no revision check (SPIRE has none), but never drop Mayfly's own fields
 *   (owner, labels, purpose): each is read, merged and written at the revision read;
 * - `store_svid` is refused (no SVIDStore plugins), per item, INVALID_ARGUMENT;
 * - a batch is split into Mayfly batches of `limits.maxBatch`, so SPIRE's unlimited batch
 *   sizes work (bounded only by the message size);
 * - Mayfly's own entry rules stay: an update that would make two entries one registration
 *   is ALREADY_EXISTS (SPIRE lets it through), a DNS name that is none is INVALID_ARGUMENT
 *   (SPIRE stores it), and `federates_with` may name a trust domain whose bundle is not
 *   there yet (SPIRE: INTERNAL); test/interop/spire/spire-api-admin-parity pins each.
 */
import type { ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { entryIdProblem } from '../../registration/entry.js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { WireEntry, WireStatus } from '../messages.js';
import { mayflyCaller, type MayflyCall } from './call.js';
import { spireError, SpireStatus, spireUnary } from './spire-call.js';
import type { MayflyImpls } from './delegate.js';
import { entryFilterFromSpire, memberIdFromSpire, mergeEntryUpdate, repeatedSelector, selectorsFromSpire, workloadIdFromSpire, type SpireEntryFilter } from './entry-convert.js';
import { countAll, spireListPage, spirePage, type SourcePage } from './paging.js';
import { applyMask, entryFromSpire, entryToSpire, type SpireEntry, type SpireMask } from './types.js';

interface ListEntriesRequest {
  filter: Partial<SpireEntryFilter> | null;
  output_mask: SpireMask | null;
  page_size: number;
  page_token: string;
}

interface ItemResult {
  status: WireStatus;
  entry: Partial<SpireEntry> | null;
}

interface MayflyBatchResult {
  results: { status: WireStatus; entry: WireEntry | null }[];
}

/** Attempts of one update when a concurrent write moved the revision between read and write. */
const UPDATE_ATTEMPTS = 3;

const ok = (): WireStatus => ({ code: GrpcStatus.OK, message: 'OK' });
const st = (code: number, message: string): WireStatus => ({ code, message });

function errText(err: unknown): string {
  return err instanceof Error ? ((err as { details?: string }).details ?? err.message) : String(err);
}

function masked(e: WireEntry, mask: SpireMask | null | undefined): Partial<SpireEntry> {
  return applyMask(entryToSpire(e), mask, ['id']);
}

/**
 * An entry as SPIRE's create and update answer it: SPIRE re-reads the row it wrote, and
 * its selectors come back ordered by type, then value (what `spire-server entry create`
 * then prints); listings keep the order they were given in.
 */
function written(e: WireEntry, mask: SpireMask | null | undefined): Partial<SpireEntry> {
  const selectors = [...e.selectors].sort((a, b) => (a.type === b.type ? cmp(a.value, b.value) : cmp(a.type, b.type)));
  return masked({ ...e, selectors }, mask);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One Mayfly ListEntries page as a paging source. */
function entryPages(call: MayflyCall, filter: unknown): (size: number, token: string) => Promise<SourcePage<WireEntry>> {
  return async (size, token) => {
    const res = await call<{ entries: WireEntry[]; next_page_token: string }>('ListEntries', { filter, page_size: size, page_token: token });
    return { items: res.entries, next: res.next_page_token };
  };
}

/** SPIRE's checks of an entry to create (ProtoToRegistrationEntry), then Mayfly's wire entry. */
function entryToCreate(ctx: ApiContext, e: Partial<SpireEntry> | null | undefined): WireEntry {
  if (e === null || e === undefined) throw new Error('missing entry');
  try {
    memberIdFromSpire(ctx.trustDomain, e.parent_id);
  } catch (err) {
    throw new Error(`invalid parent ID: ${errText(err)}`, { cause: err });
  }
  try {
    workloadIdFromSpire(ctx.trustDomain, e.spiffe_id);
  } catch (err) {
    throw new Error(`invalid spiffe ID: ${errText(err)}`, { cause: err });
  }
  const sels = selectorsFromSpire(e.selectors);
  if (sels.length === 0) throw new Error('selector list is empty');
  return entryFromSpire(e);
}

export function entryAdminHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const maxPage = ctx.limits.maxPageSize;
  const caller = (call: ServerUnaryCall<unknown, unknown>): MayflyCall => mayflyCaller(mayfly.Entry, call);

  /** The stored entry SPIRE's CreateOrReturnRegistrationEntry calls "similar": same SPIFFE ID, parent and selectors. */
  const similar = async (call: MayflyCall, w: WireEntry): Promise<WireEntry | undefined> => {
    const filter = { by_spiffe_id: w.spiffe_id, by_parent_id: w.parent_id, by_selectors: { selectors: w.selectors, match: 'MATCH_EXACT' }, by_federates_with: null };
    const page = await spirePage({ pageSize: 0, pageToken: '', maxPage, fetch: entryPages(call, filter) });
    return page.items[0];
  };

  return {
    CountEntries: spireUnary<{ filter: Partial<SpireEntryFilter> | null }, { count: number }>(ctx, t, 'spire.Entry/CountEntries', 'admin', async (req, _caller, call) => {
      const f = entryFilterFromSpire(ctx.trustDomain, req.filter);
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      if (f.empty) return { count: (await m<{ count: number }>('CountEntries', {})).count };
      return { count: await countAll(maxPage, entryPages(m, f.mayfly), f.keep ?? (() => true)) };
    }),

    ListEntries: spireUnary<ListEntriesRequest, { entries: Partial<SpireEntry>[]; next_page_token: string }>(ctx, t, 'spire.Entry/ListEntries', 'admin', async (req, _caller, call) => {
      const f = entryFilterFromSpire(ctx.trustDomain, req.filter);
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      const page = await spireListPage<WireEntry>('entries', { pageSize: req.page_size ?? 0, pageToken: req.page_token ?? '', maxPage, fetch: entryPages(m, f.mayfly), ...(f.keep ? { keep: f.keep } : {}) });
      return { entries: page.items.map((e) => masked(e, req.output_mask)), next_page_token: page.next };
    }),

    GetEntry: spireUnary<{ id: string; output_mask: SpireMask | null }, Partial<SpireEntry>>(ctx, t, 'spire.Entry/GetEntry', 'admin', async (req, _caller, call) => {
      const id = req.id ?? '';
      if (id === '') throw spireError(GrpcStatus.INVALID_ARGUMENT, 'missing ID');
      // No entry can have an ID Mayfly would refuse: SPIRE says NotFound for any unknown ID.
      if (entryIdProblem(id) !== undefined) throw spireError(GrpcStatus.NOT_FOUND, 'entry not found');
      try {
        return masked(await caller(call as ServerUnaryCall<unknown, unknown>)<WireEntry>('GetEntry', { id }), req.output_mask);
      } catch (err) {
        if (err instanceof SpireStatus && err.code === GrpcStatus.NOT_FOUND) throw spireError(GrpcStatus.NOT_FOUND, 'entry not found');
        throw err;
      }
    }),

    BatchCreateEntry: spireUnary<{ entries: Partial<SpireEntry>[]; output_mask: SpireMask | null }, { results: ItemResult[] }>(ctx, t, 'spire.Entry/BatchCreateEntry', 'admin', async (req, _caller, call) => {
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      const list = req.entries ?? [];
      const results: ItemResult[] = new Array<ItemResult>(list.length);
      const valid: { i: number; w: WireEntry }[] = [];
      list.forEach((e, i) => {
        try {
          const w = entryToCreate(ctx, e);
          const again = repeatedSelector(w.selectors);
          if (again === undefined) valid.push({ i, w });
          else results[i] = { status: st(GrpcStatus.ALREADY_EXISTS, `failed to create entry: selector ${again} is repeated`), entry: null };
        } catch (err) {
          results[i] = { status: st(GrpcStatus.INVALID_ARGUMENT, `failed to convert entry: ${errText(err)}`), entry: null };
        }
      });
      for (let k = 0; k < valid.length; k += ctx.limits.maxBatch) {
        const chunk = valid.slice(k, k + ctx.limits.maxBatch);
        const res = await m<MayflyBatchResult>('BatchCreateEntry', { entries: chunk.map((v) => v.w) });
        for (const [j, r] of res.results.entries()) {
          const { i, w } = chunk[j] as { i: number; w: WireEntry };
          if (r.status.code === GrpcStatus.OK && r.entry) results[i] = { status: ok(), entry: written(r.entry, req.output_mask) };
          else if (r.status.code === GrpcStatus.ALREADY_EXISTS) {
            // SPIRE answers with the entry that already holds the registration.
            const existing = await similar(m, w);
            results[i] = { status: st(GrpcStatus.ALREADY_EXISTS, 'similar entry already exists'), entry: existing ? masked(existing, req.output_mask) : null };
          } else results[i] = { status: st(r.status.code, `failed to create entry: ${r.status.message}`), entry: null };
        }
      }
      return { results };
    }),

    BatchUpdateEntry: spireUnary<{ entries: Partial<SpireEntry>[]; input_mask: SpireMask | null; output_mask: SpireMask | null }, { results: ItemResult[] }>(
      ctx, t, 'spire.Entry/BatchUpdateEntry', 'admin', async (req, _caller, call) => {
        const m = caller(call as ServerUnaryCall<unknown, unknown>);
        const results: ItemResult[] = [];
        for (const e of req.entries ?? []) results.push(await updateOne(m, e, req.input_mask, req.output_mask));
        return { results };
      },
    ),

    BatchDeleteEntry: spireUnary<{ ids: string[] }, { results: { status: WireStatus; id: string }[] }>(ctx, t, 'spire.Entry/BatchDeleteEntry', 'admin', async (req, _caller, call) => {
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      const ids = req.ids ?? [];
      const results: { status: WireStatus; id: string }[] = new Array<{ status: WireStatus; id: string }>(ids.length);
      const pending: { i: number; id: string }[] = [];
      ids.forEach((id, i) => {
        if (id === '') results[i] = { status: st(GrpcStatus.INVALID_ARGUMENT, 'missing entry ID'), id };
        else if (entryIdProblem(id) !== undefined) results[i] = { status: st(GrpcStatus.NOT_FOUND, 'entry not found'), id };
        else pending.push({ i, id });
      });
      for (let k = 0; k < pending.length; k += ctx.limits.maxBatch) {
        const chunk = pending.slice(k, k + ctx.limits.maxBatch);
        const res = await m<{ results: { status: WireStatus; id: string }[] }>('BatchDeleteEntry', { ids: chunk.map((p) => p.id) });
        for (const [j, r] of res.results.entries()) {
          const { i, id } = chunk[j] as { i: number; id: string };
          const code = r.status.code;
          results[i] = {
            id,
            status: code === GrpcStatus.OK ? ok() : code === GrpcStatus.NOT_FOUND ? st(code, 'entry not found') : st(code, `failed to delete entry: ${r.status.message}`),
          };
        }
      }
      return { results };
    }),
  };
}

/** One item of BatchUpdateEntry: read, merge SPIRE's fields, write at the revision read. */
async function updateOne(m: MayflyCall, e: Partial<SpireEntry> | null, inputMask: SpireMask | null, outputMask: SpireMask | null): Promise<ItemResult> {
  const id = e?.id ?? '';
  const notFound: ItemResult = { status: st(GrpcStatus.NOT_FOUND, 'failed to update entry: record not found'), entry: null };
  // SPIRE looks an empty ID up like any other and finds nothing: NOT_FOUND, not INVALID_ARGUMENT.
  if (e === null || id === '' || entryIdProblem(id) !== undefined) return notFound;
  for (let attempt = 1; ; attempt++) {
    let stored: WireEntry;
    try {
      stored = await m<WireEntry>('GetEntry', { id });
    } catch (err) {
      if (!(err instanceof SpireStatus)) throw err;
      if (err.code === GrpcStatus.NOT_FOUND) return notFound;
      // E.g. an entry outside a scoped registrar's scope: a refusal of this item only.
      return { status: st(err.code, `failed to update entry: ${err.message}`), entry: null };
    }
    let merged: WireEntry;
    try {
      merged = mergeEntryUpdate(stored, e, inputMask);
    } catch (err) {
      return { status: st(GrpcStatus.INVALID_ARGUMENT, `failed to convert entry: ${errText(err)}`), entry: null };
    }
    const again = repeatedSelector(merged.selectors);
    if (again !== undefined) return { status: st(GrpcStatus.ALREADY_EXISTS, `failed to update entry: selector ${again} is repeated`), entry: null };
    const res = await m<MayflyBatchResult>('BatchUpdateEntry', { entries: [merged] });
    const r = res.results[0];
    if (r === undefined) throw spireError(GrpcStatus.INTERNAL, 'failed to update entry: no result');
    if (r.status.code === GrpcStatus.OK && r.entry) return { status: ok(), entry: written(r.entry, outputMask) };
    // Mayfly's revision check saw a write between our read and write: read again, as
    // SPIRE's update (in one transaction) would simply have come after it.
    if (r.status.code === GrpcStatus.FAILED_PRECONDITION && attempt < UPDATE_ATTEMPTS) continue;
    if (r.status.code === GrpcStatus.NOT_FOUND) return notFound;
    return { status: st(r.status.code, `failed to update entry: ${r.status.message}`), entry: null };
  }
}
