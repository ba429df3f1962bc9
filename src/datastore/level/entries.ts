/**
 * @module datastore/level/entries
 *
 * Registration entries on LevelDB: create (in chunks, each one batch), read, update with an
 * expected revision, delete, count, and the listings that walk the index prefixes.
 *
 * Threats it stops: duplicate entries from racing creates (uniqueness is checked and
 * written inside the store's write queue) and lost updates (`updateEntry` refuses a stale
 * revision with `ERR_DATASTORE_CONFLICT`).
 */
import { entryUniqueKey, validateEntry, withEntryDefaults, type EntryInput, type RegistrationEntry, type ValidEntry } from '../../registration/entry.js';
import { formatSelector } from '../../registration/selector.js';
import { MayflyError } from '../../spiffe/errors.js';
import type { CreateEntryResult, ListEntriesQuery, Page } from '../datastore.js';
import {
  checkEntryQuery,
  checkParentIds,
  DatastoreError,
  encodePageToken,
  ENTRY_PAGE_KIND,
  governanceMatches,
  invalid,
  MAX_BATCH_CREATE,
  setMatches,
  type CheckedEntryQuery,
} from '../records.js';
import { IdStream, UnionStream } from './index-walk.js';
import { entryDelOps, entryOps, FETCH_CHUNK, SEP, SEP_END, type Op } from './keys.js';
import type { LevelStore } from './store.js';

/** Items per LevelDB batch in createEntries: bounds the time the write queue is held. */
const CREATE_CHUNK = 500;

function stored(e: ValidEntry, revision: number, createdAt: number): RegistrationEntry {
  return { ...e, selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })), revision, createdAt };
}

function alreadyExists(existingId: string, why: string): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `registration entry already exists (${why}): entry ${existingId}`, {
    existingEntryId: existingId,
  });
}

export async function createEntries(s: LevelStore, inputs: readonly EntryInput[]): Promise<CreateEntryResult[]> {
  s.check();
  if (!Array.isArray(inputs)) throw new TypeError('createEntries needs an array');
  if (inputs.length > MAX_BATCH_CREATE) throw invalid(`createEntries takes at most ${MAX_BATCH_CREATE} entries per call (got ${inputs.length})`);
  const results: CreateEntryResult[] = new Array(inputs.length);
  const valid: { i: number; e: ValidEntry; u: string }[] = [];
  inputs.forEach((input, i) => {
    try {
      const e = validateEntry(input);
      valid.push({ i, e, u: entryUniqueKey(e) });
    } catch (err) {
      if (!(err instanceof MayflyError)) throw err;
      results[i] = { error: err };
    }
  });
  for (let start = 0; start < valid.length; start += CREATE_CHUNK) {
    const chunk = valid.slice(start, start + CREATE_CHUNK);
    await s.exclusive(async () => {
      const byId = await s.db.getMany(chunk.map((c) => `e!${c.e.entryId}`));
      const byUnique = await s.db.getMany(chunk.map((c) => `u!${c.u}`));
      const seenIds = new Map<string, string>();
      const seenUnique = new Map<string, string>();
      const ops: Op[] = [];
      const created: { i: number; entry: RegistrationEntry }[] = [];
      const createdAt = s.seconds();
      chunk.forEach((c, k) => {
        const existingUnique = byUnique[k] ?? seenUnique.get(c.u);
        if (byId[k] !== undefined || seenIds.has(c.e.entryId)) {
          results[c.i] = { error: alreadyExists(c.e.entryId, 'same entry ID') };
        } else if (existingUnique !== undefined) {
          results[c.i] = { error: alreadyExists(existingUnique, 'same parent ID, SPIFFE ID and selectors') };
        } else {
          const entry = stored(c.e, 0, createdAt);
          seenIds.set(entry.entryId, entry.entryId);
          seenUnique.set(c.u, entry.entryId);
          ops.push(...entryOps(entry, c.u));
          created.push({ i: c.i, entry });
        }
      });
      if (created.length === 0) return;
      ops.push({ type: 'put', key: 'c!entries', value: String((await s.count('c!entries')) + created.length) });
      try {
        await s.write(ops);
      } catch (err) {
        for (const c of created) results[c.i] = { error: err as MayflyError };
        return;
      }
      for (const c of created) results[c.i] = { entry: c.entry };
    });
  }
  return results;
}

export async function getEntry(s: LevelStore, entryId: string): Promise<RegistrationEntry | undefined> {
  s.check();
  if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
  return s.readEntry(entryId);
}

export async function updateEntry(
  s: LevelStore,
  input: EntryInput & { entryId: string },
  opts: { expectedRevision: number },
): Promise<RegistrationEntry> {
  s.check();
  if (typeof opts !== 'object' || opts === null || !Number.isInteger(opts.expectedRevision)) {
    throw new TypeError('updateEntry needs { expectedRevision: integer }');
  }
  if (typeof input !== 'object' || input === null || typeof input.entryId !== 'string') {
    throw invalid('updateEntry needs the entry with its entryId');
  }
  const e = validateEntry(input);
  return s.exclusive(async () => {
    const raw = await s.db.get(`e!${e.entryId}`);
    if (raw === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${e.entryId} does not exist`);
    const old = withEntryDefaults(JSON.parse(raw) as RegistrationEntry);
    if (old.revision !== opts.expectedRevision) {
      throw new DatastoreError(
        'ERR_DATASTORE_CONFLICT',
        `registration entry ${e.entryId} is at revision ${old.revision}, not ${opts.expectedRevision}: it changed since it was read; read it again and retry`,
      );
    }
    const next = stored(e, old.revision + 1, old.createdAt);
    const u = entryUniqueKey(next);
    if (u !== entryUniqueKey(old)) {
      const other = await s.db.get(`u!${u}`);
      if (other !== undefined && other !== e.entryId) throw alreadyExists(other, 'same parent ID, SPIFFE ID and selectors');
    }
    await s.write([...entryDelOps(old), ...entryOps(next, u)]);
    return next;
  });
}

export async function deleteEntry(s: LevelStore, entryId: string): Promise<RegistrationEntry> {
  s.check();
  if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
  return s.exclusive(async () => {
    const old = await s.readEntry(entryId);
    if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${entryId} does not exist`);
    const n = await s.count('c!entries');
    await s.write([...entryDelOps(old), { type: 'put', key: 'c!entries', value: String(Math.max(0, n - 1)) }]);
    return old;
  });
}

export async function countEntries(s: LevelStore): Promise<number> {
  s.check();
  return s.count('c!entries');
}

function matches(e: RegistrationEntry, q: CheckedEntryQuery): boolean {
  if (q.bySpiffeId !== undefined && e.spiffeId !== q.bySpiffeId) return false;
  if (q.byParentId !== undefined && e.parentId !== q.byParentId) return false;
  if (q.bySelectors !== undefined && !setMatches(e.selectors.map(formatSelector), q.bySelectors.keys, q.bySelectors.match)) return false;
  if (q.byFederatesWith !== undefined && !setMatches(e.federatesWith, q.byFederatesWith.keys, q.byFederatesWith.match)) return false;
  return governanceMatches(e, q);
}

/** The cheapest index walk that yields every candidate of `q` in ascending id order. */
function candidates(s: LevelStore, q: CheckedEntryQuery): IdStream | UnionStream | undefined {
  const stream = (prefix: string): IdStream => new IdStream(s.db, prefix, q.after);
  if (q.bySpiffeId !== undefined) return stream(`s!${q.bySpiffeId}${SEP}`);
  if (q.byParentId !== undefined) return stream(`p!${q.byParentId}${SEP}`);
  const setFilter = (f: { keys: string[]; match: string } | undefined, tag: string): IdStream | UnionStream | undefined => {
    if (f === undefined) return undefined;
    // exact / superset: every match holds ALL query keys, so one key's index suffices.
    if (f.match === 'exact' || f.match === 'superset') return stream(`${tag}!${f.keys[0]!}${SEP}`);
    // subset / any: every match holds at least one query key.
    return new UnionStream(f.keys.map((k) => stream(`${tag}!${k}${SEP}`)));
  };
  if (q.byOwner !== undefined) return stream(`o!${q.byOwner}${SEP}`);
  // Every match holds every label asked for, so one label's index suffices.
  if (q.byLabels !== undefined) return stream(`g!${q.byLabels[0]!}${SEP}`);
  return setFilter(q.bySelectors, 'l') ?? setFilter(q.byFederatesWith, 'f');
}

export async function listEntries(s: LevelStore, query?: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
  s.check();
  const q = checkEntryQuery(query);
  const items: RegistrationEntry[] = [];
  const ids = candidates(s, q);
  if (ids === undefined) {
    // No filter: walk the records themselves.
    const opts = q.after === undefined ? { gte: 'e!', lt: 'e"', limit: q.pageSize } : { gt: `e!${q.after}`, lt: 'e"', limit: q.pageSize };
    for (const v of await s.db.values(opts).all()) items.push(withEntryDefaults(JSON.parse(v) as RegistrationEntry));
  } else {
    try {
      let exhausted = false;
      while (!exhausted && items.length < q.pageSize) {
        const batch: string[] = [];
        while (batch.length < FETCH_CHUNK) {
          const id = await ids.next();
          if (id === undefined) {
            exhausted = true;
            break;
          }
          batch.push(id);
        }
        if (batch.length === 0) break;
        const values = await s.db.getMany(batch.map((id) => `e!${id}`));
        for (const v of values) {
          if (v === undefined) continue; // deleted since the index was read
          const e = withEntryDefaults(JSON.parse(v) as RegistrationEntry);
          if (matches(e, q)) {
            items.push(e);
            if (items.length === q.pageSize) break;
          }
        }
      }
    } finally {
      await ids.close();
    }
  }
  const last = items[items.length - 1];
  return { items, nextPageToken: items.length === q.pageSize && last !== undefined ? encodePageToken(ENTRY_PAGE_KIND, last.entryId) : '' };
}

export async function listEntriesForParents(s: LevelStore, parentIds: readonly string[]): Promise<RegistrationEntry[]> {
  s.check();
  const parents = checkParentIds(parentIds);
  const out: RegistrationEntry[] = [];
  for (const p of parents) {
    const prefix = `p!${p}${SEP}`;
    const keys = await s.db.keys({ gte: prefix, lt: `p!${p}${SEP_END}` }).all();
    for (let i = 0; i < keys.length; i += FETCH_CHUNK) {
      const values = await s.db.getMany(keys.slice(i, i + FETCH_CHUNK).map((k) => `e!${k.slice(prefix.length)}`));
      for (const v of values) {
        if (v === undefined) continue;
        const e = withEntryDefaults(JSON.parse(v) as RegistrationEntry);
        if (e.parentId === p) out.push(e);
      }
    }
  }
  return out;
}
