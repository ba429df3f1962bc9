/**
 * @module datastore/postgres/entries
 *
 * Registration entries on PostgreSQL: the entry row (its fields in `body`, plus the
 * columns that are indexed) with its selector and federation rows, written together.
 *
 * Threats it stops:
 * - two servers registering the same workload at once: a UNIQUE index on the same
 *   SHA-256 key the LevelDB store uses (`entryUniqueKey`) and the entry ID primary key;
 *   inserts use `ON CONFLICT DO NOTHING`, so the loser waits for the winner's commit and
 *   then reports the winner's entry ID.
 * - lost updates: `UPDATE ... WHERE revision = $expected` under the row lock.
 * - half-applied writes: an entry, its selector rows and its federation rows are written
 *   in one transaction.
 * - unbounded reads: listings are keyset-paged with `LIMIT`.
 */
import type { PoolClient } from 'pg';
import { entryUniqueKey, validateEntry, withEntryDefaults, type EntryInput, type RegistrationEntry, type ValidEntry } from '../../registration/entry.js';
import { formatSelector } from '../../registration/selector.js';
import { MayflyError } from '../../spiffe/errors.js';
import type { CreateEntryResult, ListEntriesQuery, Page, SetMatch } from '../datastore.js';
import {
  checkEntryQuery,
  checkParentIds,
  DatastoreError,
  encodePageToken,
  ENTRY_PAGE_KIND,
  invalid,
  MAX_BATCH_CREATE,
  type CheckedEntryQuery,
} from '../records.js';
import { PG_UNIQUE_VIOLATION, pgCode, unavailable, type PostgresStore } from './store.js';

/** Entries per transaction in createEntries (the LevelDB store's batch size). */
const CREATE_CHUNK = 500;

export interface EntryRow {
  entry_id: string;
  body: string;
  revision: string;
  created_at: string;
}

function alreadyExists(existingId: string, why: string): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `registration entry already exists (${why}): entry ${existingId}`, {
    existingEntryId: existingId,
  });
}

/** The entry's fields as stored in `body` (revision and createdAt live in their own columns). */
function entryBody(e: ValidEntry): string {
  const { entryId: _id, ...rest } = e;
  return JSON.stringify({ ...rest, selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })) });
}

export function entryFromRow(r: EntryRow): RegistrationEntry {
  const body = JSON.parse(r.body) as Omit<ValidEntry, 'entryId'>;
  return withEntryDefaults({ entryId: r.entry_id, ...body, revision: Number(r.revision), createdAt: Number(r.created_at) });
}

function stored(e: ValidEntry, revision: number, createdAt: number): RegistrationEntry {
  return { ...e, selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })), revision, createdAt };
}

export const ENTRY_COLUMNS = 'e.entry_id, e.body, e.revision, e.created_at';

/** SQL for "the entry's set (rows of `table`.`col`) matches the query keys $n under `match`". */
function setCondition(table: string, col: string, param: string, match: SetMatch): string {
  const has = `e.entry_id IN (SELECT x.entry_id FROM ${table} x WHERE x.${col} = ANY(${param}))`;
  const countIn = `(SELECT count(*) FROM ${table} x WHERE x.entry_id = e.entry_id AND x.${col} = ANY(${param}))`;
  const noneOutside = `NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.entry_id = e.entry_id AND x.${col} <> ALL(${param}))`;
  switch (match) {
    case 'any':
      return has;
    case 'subset':
      // At least one key in the query (so the set is non-empty) and none outside it.
      return `${has} AND ${noneOutside}`;
    case 'superset':
      return `${has} AND ${countIn} = cardinality(${param})`;
    case 'exact':
      return `${has} AND ${countIn} = cardinality(${param}) AND ${noneOutside}`;
  }
}

export function createEntries(s: PostgresStore, inputs: readonly EntryInput[]): Promise<CreateEntryResult[]> {
  return s.run(async () => {
    if (!Array.isArray(inputs)) throw new TypeError('createEntries needs an array');
    if (inputs.length > MAX_BATCH_CREATE) throw invalid(`createEntries takes at most ${MAX_BATCH_CREATE} entries per call (got ${inputs.length})`);
    const results: CreateEntryResult[] = new Array(inputs.length);
    const valid: { i: number; e: ValidEntry; u: string }[] = [];
    // Duplicates inside the batch are settled here, first one wins, as in the LevelDB store.
    const seenIds = new Set<string>();
    const seenUnique = new Map<string, string>();
    inputs.forEach((input, i) => {
      try {
        const e = validateEntry(input);
        const u = entryUniqueKey(e);
        const sameUnique = seenUnique.get(u);
        if (seenIds.has(e.entryId)) results[i] = { error: alreadyExists(e.entryId, 'same entry ID') };
        else if (sameUnique !== undefined) results[i] = { error: alreadyExists(sameUnique, 'same parent ID, SPIFFE ID and selectors') };
        else {
          seenIds.add(e.entryId);
          seenUnique.set(u, e.entryId);
          valid.push({ i, e, u });
        }
      } catch (err) {
        if (!(err instanceof MayflyError)) throw err;
        results[i] = { error: err };
      }
    });
    for (let start = 0; start < valid.length; start += CREATE_CHUNK) {
      const chunk = valid.slice(start, start + CREATE_CHUNK);
      try {
        await createChunk(s, chunk, results);
      } catch (err) {
        const e = err instanceof MayflyError ? err : unavailable('PostgreSQL datastore write failed', err);
        for (const c of chunk) if (results[c.i] === undefined) results[c.i] = { error: e };
      }
    }
    return results;
  });
}

/** Inserts one chunk of mutually distinct entries in one transaction; fills `results` for it. */
async function createChunk(s: PostgresStore, chunk: { i: number; e: ValidEntry; u: string }[], results: CreateEntryResult[]): Promise<void> {
  const S = s.S;
  // Rows in unique-key order so two servers inserting overlapping batches take their
  // index locks in the same order (no deadlock).
  const rows = [...chunk].sort((a, b) => (a.u < b.u ? -1 : a.u > b.u ? 1 : 0));
  const created = await s.tx(async (c) => {
    const createdAt = s.seconds();
    const ins = await c.query<{ entry_id: string }>(
      `INSERT INTO ${S}.entries (entry_id, unique_key, spiffe_id, parent_id, revision, created_at, body, owner, labels)
       SELECT id, u, s, p, 0, $5, b, o, l::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[], $7::text[], $8::text[]) AS t(id, u, s, p, b, o, l)
       ON CONFLICT DO NOTHING RETURNING entry_id`,
      [
        rows.map((r) => r.e.entryId),
        rows.map((r) => r.u),
        rows.map((r) => r.e.spiffeId),
        rows.map((r) => r.e.parentId),
        createdAt,
        rows.map((r) => entryBody(r.e)),
        rows.map((r) => r.e.owner),
        rows.map((r) => JSON.stringify(r.e.labels)),
      ],
    );
    const won = new Set(ins.rows.map((r) => r.entry_id));
    const winners = rows.filter((r) => won.has(r.e.entryId));
    await insertSets(s, c, winners.map((r) => r.e));
    return { won, createdAt };
  });
  const losers: typeof chunk = [];
  for (const c of chunk) {
    if (created.won.has(c.e.entryId)) results[c.i] = { entry: stored(c.e, 0, created.createdAt) };
    else losers.push(c);
  }
  if (losers.length === 0) return;
  // Name what each loser collided with: a committed row with its ID or its unique key.
  const byId = await s.query<{ entry_id: string }>(`SELECT entry_id FROM ${S}.entries WHERE entry_id = ANY($1::text[])`, [losers.map((l) => l.e.entryId)]);
  const byUnique = await s.query<{ entry_id: string; unique_key: string }>(
    `SELECT entry_id, unique_key FROM ${S}.entries WHERE unique_key = ANY($1::text[])`,
    [losers.map((l) => l.u)],
  );
  const ids = new Set(byId.rows.map((r) => r.entry_id));
  const uniques = new Map(byUnique.rows.map((r) => [r.unique_key, r.entry_id]));
  const retry: typeof chunk = [];
  for (const l of losers) {
    const other = uniques.get(l.u);
    if (ids.has(l.e.entryId)) results[l.i] = { error: alreadyExists(l.e.entryId, 'same entry ID') };
    else if (other !== undefined) results[l.i] = { error: alreadyExists(other, 'same parent ID, SPIFFE ID and selectors') };
    else retry.push(l); // the row it collided with was deleted meanwhile: try again
  }
  if (retry.length > 0) await createChunk(s, retry, results);
}

/** Writes the selector and federation rows of `entries` (inside the caller's transaction). */
async function insertSets(s: PostgresStore, c: PoolClient, entries: readonly ValidEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const S = s.S;
  const selIds: string[] = [];
  const sels: string[] = [];
  const fedIds: string[] = [];
  const feds: string[] = [];
  for (const e of entries) {
    for (const s of e.selectors) {
      selIds.push(e.entryId);
      sels.push(formatSelector(s));
    }
    for (const f of e.federatesWith) {
      fedIds.push(e.entryId);
      feds.push(f);
    }
  }
  await c.query(`INSERT INTO ${S}.entry_selectors (entry_id, selector) SELECT * FROM unnest($1::text[], $2::text[])`, [selIds, sels]);
  if (feds.length > 0) {
    await c.query(`INSERT INTO ${S}.entry_federates_with (entry_id, trust_domain) SELECT * FROM unnest($1::text[], $2::text[])`, [fedIds, feds]);
  }
}

export function getEntry(s: PostgresStore, entryId: string): Promise<RegistrationEntry | undefined> {
  return s.run(async () => {
    if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
    if (entryId === '' || entryId.includes('\0')) return undefined;
    const r = await s.query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM ${s.S}.entries e WHERE e.entry_id = $1`, [entryId]);
    return r.rows[0] === undefined ? undefined : entryFromRow(r.rows[0]);
  });
}

export function updateEntry(s: PostgresStore, input: EntryInput & { entryId: string }, opts: { expectedRevision: number }): Promise<RegistrationEntry> {
  return s.run(async () => {
    if (typeof opts !== 'object' || opts === null || !Number.isInteger(opts.expectedRevision)) {
      throw new TypeError('updateEntry needs { expectedRevision: integer }');
    }
    if (typeof input !== 'object' || input === null || typeof input.entryId !== 'string') {
      throw invalid('updateEntry needs the entry with its entryId');
    }
    const e = validateEntry(input);
    const u = entryUniqueKey(e);
    const S = s.S;
    try {
      return await s.tx(async (c) => {
        // The row lock taken here makes concurrent updates queue; each re-checks the
        // revision against the row the previous one committed.
        const r = await c.query<{ revision: string; created_at: string }>(
          `UPDATE ${S}.entries SET unique_key = $3, spiffe_id = $4, parent_id = $5, body = $6, owner = $7, labels = $8::jsonb, revision = revision + 1
           WHERE entry_id = $1 AND revision = $2 RETURNING revision, created_at`,
          [e.entryId, opts.expectedRevision, u, e.spiffeId, e.parentId, entryBody(e), e.owner, JSON.stringify(e.labels)],
        );
        const row = r.rows[0];
        if (row === undefined) {
          const cur = await c.query<{ revision: string }>(`SELECT revision FROM ${S}.entries WHERE entry_id = $1`, [e.entryId]);
          if (cur.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${e.entryId} does not exist`);
          throw new DatastoreError(
            'ERR_DATASTORE_CONFLICT',
            `registration entry ${e.entryId} is at revision ${cur.rows[0].revision}, not ${opts.expectedRevision}: it changed since it was read; read it again and retry`,
          );
        }
        await c.query(`DELETE FROM ${S}.entry_selectors WHERE entry_id = $1`, [e.entryId]);
        await c.query(`DELETE FROM ${S}.entry_federates_with WHERE entry_id = $1`, [e.entryId]);
        await insertSets(s, c, [e]);
        return stored(e, Number(row.revision), Number(row.created_at));
      });
    } catch (err) {
      if (pgCode(err) !== PG_UNIQUE_VIOLATION) throw err;
      const other = await s.query<{ entry_id: string }>(`SELECT entry_id FROM ${S}.entries WHERE unique_key = $1`, [u]);
      const id = other.rows[0]?.entry_id;
      if (id !== undefined && id !== e.entryId) throw alreadyExists(id, 'same parent ID, SPIFFE ID and selectors');
      throw new DatastoreError('ERR_DATASTORE_CONFLICT', `registration entry ${e.entryId} collided with a concurrent write; read it again and retry`, { cause: err });
    }
  });
}

export function deleteEntry(s: PostgresStore, entryId: string): Promise<RegistrationEntry> {
  return s.run(async () => {
    if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
    // Selector and federation rows go with it (ON DELETE CASCADE), in the same statement.
    const r = await s.query<EntryRow>(`DELETE FROM ${s.S}.entries e WHERE e.entry_id = $1 RETURNING ${ENTRY_COLUMNS}`, [entryId]);
    if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${entryId} does not exist`);
    return entryFromRow(r.rows[0]);
  });
}

export function countEntries(s: PostgresStore): Promise<number> {
  return s.run(async () => Number((await s.query<{ n: string }>(`SELECT count(*) AS n FROM ${s.S}.entries`)).rows[0]!.n));
}

export function listEntries(s: PostgresStore, query?: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
  return s.run(async () => {
    const q: CheckedEntryQuery = checkEntryQuery(query);
    const S = s.S;
    const params: unknown[] = [];
    const param = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [];
    if (q.after !== undefined) where.push(`e.entry_id > ${param(q.after)}`);
    if (q.bySpiffeId !== undefined) where.push(`e.spiffe_id = ${param(q.bySpiffeId)}`);
    if (q.byParentId !== undefined) where.push(`e.parent_id = ${param(q.byParentId)}`);
    if (q.bySelectors !== undefined) {
      where.push(setCondition(`${S}.entry_selectors`, 'selector', `${param(q.bySelectors.keys)}::text[]`, q.bySelectors.match));
    }
    if (q.byFederatesWith !== undefined) {
      where.push(setCondition(`${S}.entry_federates_with`, 'trust_domain', `${param(q.byFederatesWith.keys)}::text[]`, q.byFederatesWith.match));
    }
    if (q.byOwner !== undefined) where.push(`e.owner = ${param(q.byOwner)}`);
    if (q.byLabels !== undefined) {
      const want: Record<string, string> = {};
      for (const pair of q.byLabels) {
        const at = pair.indexOf('=');
        want[pair.slice(0, at)] = pair.slice(at + 1);
      }
      where.push(`e.labels @> ${param(JSON.stringify(want))}::jsonb`);
    }
    const sql =
      `SELECT ${ENTRY_COLUMNS} FROM ${S}.entries e` +
      (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY e.entry_id LIMIT ${param(q.pageSize)}`;
    const items = (await s.query<EntryRow>(sql, params)).rows.map(entryFromRow);
    const last = items[items.length - 1];
    return { items, nextPageToken: items.length === q.pageSize && last !== undefined ? encodePageToken(ENTRY_PAGE_KIND, last.entryId) : '' };
  });
}

export function listEntriesForParents(s: PostgresStore, parentIds: readonly string[]): Promise<RegistrationEntry[]> {
  return s.run(async () => {
    const parents = checkParentIds(parentIds);
    const r = await s.query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM ${s.S}.entries e WHERE e.parent_id = ANY($1::text[])`, [parents]);
    return r.rows.map(entryFromRow);
  });
}
