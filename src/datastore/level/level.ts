/**
 * @module datastore/level
 *
 * The Datastore on LevelDB (classic-level), for a single server process.
 *
 * Threats and how this module meets them:
 * - Lost or half-applied writes on a crash (`kill -9`, power loss): every write is one
 *   LevelDB batch (the record and all of its index keys together) written with
 *   `sync: true`, so an acknowledged write is on disk and indexes never disagree with
 *   records.
 * - Races between writers (two creates of the same entry, two consumes of one join
 *   token): LevelDB has no transactions, so every read-check-write runs inside one
 *   in-process queue (`#exclusive`). Reads outside the queue see consistent snapshots.
 *   That queue only works if ONE process owns the directory: LevelDB's LOCK file makes a
 *   second open (from this or another process) fail with `ERR_DATASTORE_UNAVAILABLE`.
 * - Join tokens leaked from a copy of the data directory: tokens are stored under their
 *   SHA-256, never in clear.
 *
 * Key layout (UTF-8 keys; `\0` separates parts because no SPIFFE ID, selector, trust
 * domain or entry ID can hold it):
 *   m!schema                       → "1"
 *   c!entries, c!agents            → counts, kept in the same batches as the records
 *   e!<entryId>                    → entry JSON
 *   u!<sha256(parent,id,sorted selectors)> → entryId   (uniqueness)
 *   s!<spiffeId>\0<entryId>        → ""  (by SPIFFE ID)
 *   p!<parentId>\0<entryId>        → ""  (by parent ID)
 *   l!<type:value>\0<entryId>      → ""  (by selector)
 *   f!<trust domain>\0<entryId>    → ""  (by federatesWith)
 *   a!<agent spiffeId>             → agent JSON
 *   t!<sha256(token)>              → join token JSON (without the token)
 *   b!<trust domain>               → bundle JSON
 *   j!ca                           → CA journal, base64
 *
 * Nothing is loaded into memory at open: lookups and listings walk the index prefixes.
 */
import { createHash } from 'node:crypto';
import { Level } from 'level';
import { entryUniqueKey, validateEntry, type EntryInput, type RegistrationEntry, type ValidEntry } from '../../registration/entry.js';
import { formatSelector } from '../../registration/selector.js';
import { MayflyError } from '../../spiffe/errors.js';
import type {
  AgentUpdate,
  AttestedAgent,
  CreateEntryResult,
  Datastore,
  JoinToken,
  ListAgentsQuery,
  ListEntriesQuery,
  NewAgent,
  Page,
  StoredBundle,
} from '../datastore.js';
import {
  AGENT_PAGE_KIND,
  checkAgentFields,
  checkAgentQuery,
  checkAgentSpiffeId,
  checkBundleInput,
  checkCaJournal,
  checkEntryQuery,
  checkJoinToken,
  checkNewAgent,
  checkPageSize,
  checkParentIds,
  checkTime,
  checkTrustDomainArg,
  DatastoreError,
  decodePageToken,
  encodePageToken,
  ENTRY_PAGE_KIND,
  invalid,
  MAX_BATCH_CREATE,
  setMatches,
  unixSeconds,
  type CheckedEntryQuery,
} from '../records.js';

const SCHEMA_VERSION = '1';
const SEP = '\0';
const SEP_END = '\u0001';
/** Items per LevelDB batch in createEntries: bounds the time the write queue is held. */
const CREATE_CHUNK = 500;
/** Entries fetched per getMany while filtering a listing. */
const FETCH_CHUNK = 256;

type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export interface LevelDatastoreConfig {
  /** The data directory (created if missing). One server process owns it. */
  path: string;
  /** Clock for createdAt / updatedAt. */
  now?: () => Date;
  /**
   * LevelDB memtable/log size in bytes (default 16 MiB, LevelDB's own is 4 MiB). Larger
   * means fewer level-0 compactions during bulk loads (100k entries: ~34 s at 4 MiB vs
   * ~21 s at 16 MiB on a loaded 2-core machine) at the price of a longer log replay at open.
   */
  writeBufferSize?: number;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function indexKeys(e: Pick<RegistrationEntry, 'entryId' | 'spiffeId' | 'parentId' | 'selectors' | 'federatesWith'>): string[] {
  const keys = [`s!${e.spiffeId}${SEP}${e.entryId}`, `p!${e.parentId}${SEP}${e.entryId}`];
  for (const s of e.selectors) keys.push(`l!${formatSelector(s)}${SEP}${e.entryId}`);
  for (const f of e.federatesWith) keys.push(`f!${f}${SEP}${e.entryId}`);
  return keys;
}

function entryOps(e: RegistrationEntry, uniqueKey = entryUniqueKey(e)): Op[] {
  const ops: Op[] = [
    { type: 'put', key: `e!${e.entryId}`, value: JSON.stringify(e) },
    { type: 'put', key: `u!${uniqueKey}`, value: e.entryId },
  ];
  for (const k of indexKeys(e)) ops.push({ type: 'put', key: k, value: '' });
  return ops;
}

function entryDelOps(e: RegistrationEntry): Op[] {
  const ops: Op[] = [
    { type: 'del', key: `e!${e.entryId}` },
    { type: 'del', key: `u!${entryUniqueKey(e)}` },
  ];
  for (const k of indexKeys(e)) ops.push({ type: 'del', key: k });
  return ops;
}

function stored(e: ValidEntry, revision: number, createdAt: number): RegistrationEntry {
  return { ...e, selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })), revision, createdAt };
}

function alreadyExists(existingId: string, why: string): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `registration entry already exists (${why}): entry ${existingId}`, {
    existingEntryId: existingId,
  });
}

/** Ascending ids from one index prefix, strictly after `after`. */
class IdStream {
  readonly #it: ReturnType<Level<string, string>['keys']>;
  readonly #prefixLen: number;
  #buf: string[] = [];
  #done = false;

  constructor(db: Level<string, string>, prefix: string, after: string | undefined) {
    this.#prefixLen = prefix.length;
    const end = prefix.slice(0, -1) + SEP_END;
    this.#it = after === undefined ? db.keys({ gte: prefix, lt: end }) : db.keys({ gt: prefix + after, lt: end });
  }

  async next(): Promise<string | undefined> {
    if (this.#buf.length === 0 && !this.#done) {
      const keys = (await this.#it.nextv(FETCH_CHUNK)) as string[];
      if (keys.length === 0) this.#done = true;
      // Reverse so pop() yields ascending order cheaply.
      this.#buf = keys.map((k) => k.slice(this.#prefixLen)).reverse();
    }
    return this.#buf.pop();
  }

  async close(): Promise<void> {
    await this.#it.close();
  }
}

/** Ascending, duplicate-free union of several id streams. */
class UnionStream {
  readonly #streams: IdStream[];
  #heads: (string | undefined)[] | undefined;

  constructor(streams: IdStream[]) {
    this.#streams = streams;
  }

  async next(): Promise<string | undefined> {
    if (this.#heads === undefined) this.#heads = await Promise.all(this.#streams.map((s) => s.next()));
    let min: string | undefined;
    for (const h of this.#heads) if (h !== undefined && (min === undefined || h < min)) min = h;
    if (min === undefined) return undefined;
    for (let i = 0; i < this.#heads.length; i++) {
      if (this.#heads[i] === min) this.#heads[i] = await this.#streams[i]!.next();
    }
    return min;
  }

  async close(): Promise<void> {
    await Promise.all(this.#streams.map((s) => s.close()));
  }
}

/** Opens (creating if needed) a LevelDB datastore. `ERR_DATASTORE_UNAVAILABLE` when the directory is locked by another process or instance, or unreadable. */
export async function openLevelDatastore(config: LevelDatastoreConfig): Promise<LevelDatastore> {
  if (typeof config !== 'object' || config === null || typeof config.path !== 'string' || config.path === '') {
    throw new TypeError('openLevelDatastore needs { path: string }');
  }
  const db = new Level<string, string>(config.path, {
    keyEncoding: 'utf8',
    valueEncoding: 'utf8',
    writeBufferSize: config.writeBufferSize ?? 16 * 1024 * 1024,
  });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') {
      throw new DatastoreError(
        'ERR_DATASTORE_UNAVAILABLE',
        `datastore ${config.path} is locked: another Mayfly server process (or another open in this one) owns it; stop it or point this server at its own data directory`,
        { cause: err },
      );
    }
    throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `cannot open datastore ${config.path}: ${(cause as Error | undefined)?.message ?? (err as Error).message}`, {
      cause: err,
    });
  }
  const schema = await db.get('m!schema');
  if (schema === undefined) {
    // A fresh directory, or one with no Mayfly data at all.
    const any = await db.keys({ limit: 1 }).all();
    if (any.length !== 0) {
      await db.close();
      throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `${config.path} holds a LevelDB database that is not a Mayfly datastore`);
    }
    await db.put('m!schema', SCHEMA_VERSION, { sync: true });
  } else if (schema !== SCHEMA_VERSION) {
    await db.close();
    throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `datastore ${config.path} has schema version ${schema}; this build reads version ${SCHEMA_VERSION}`);
  }
  return new LevelDatastore(db, config.now ?? (() => new Date()));
}

export class LevelDatastore implements Datastore {
  readonly #db: Level<string, string>;
  readonly #now: () => Date;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @internal use openLevelDatastore */
  constructor(db: Level<string, string>, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  #check(): void {
    if (this.#closed || this.#closing !== undefined) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed');
  }

  #seconds(): number {
    return unixSeconds(this.#now());
  }

  /** Runs `fn` after every earlier exclusive section has finished: the only place writes happen. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#check();
    const run = this.#queue.then(() => {
      if (this.#closed) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed');
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #write(ops: Op[]): Promise<void> {
    try {
      await this.#db.batch(ops, { sync: true });
    } catch (err) {
      throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `datastore write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async #count(key: string): Promise<number> {
    const v = await this.#db.get(key);
    return v === undefined ? 0 : Number(v);
  }

  // ---------------------------------------------------------------- entries

  async createEntry(input: EntryInput): Promise<RegistrationEntry> {
    const [r] = await this.createEntries([input]);
    if (r!.error !== undefined) throw r!.error;
    return r!.entry;
  }

  async createEntries(inputs: readonly EntryInput[]): Promise<CreateEntryResult[]> {
    this.#check();
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
      await this.#exclusive(async () => {
        const byId = await this.#db.getMany(chunk.map((c) => `e!${c.e.entryId}`));
        const byUnique = await this.#db.getMany(chunk.map((c) => `u!${c.u}`));
        const seenIds = new Map<string, string>();
        const seenUnique = new Map<string, string>();
        const ops: Op[] = [];
        const created: { i: number; entry: RegistrationEntry }[] = [];
        const createdAt = this.#seconds();
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
        ops.push({ type: 'put', key: 'c!entries', value: String((await this.#count('c!entries')) + created.length) });
        try {
          await this.#write(ops);
        } catch (err) {
          for (const c of created) results[c.i] = { error: err as MayflyError };
          return;
        }
        for (const c of created) results[c.i] = { entry: c.entry };
      });
    }
    return results;
  }

  async getEntry(entryId: string): Promise<RegistrationEntry | undefined> {
    this.#check();
    if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
    return this.#readEntry(entryId);
  }

  /** No closed-check: also used inside exclusive sections that must finish during close(). */
  async #readEntry(entryId: string): Promise<RegistrationEntry | undefined> {
    if (entryId === '' || entryId.includes(SEP)) return undefined;
    const v = await this.#db.get(`e!${entryId}`);
    return v === undefined ? undefined : (JSON.parse(v) as RegistrationEntry);
  }

  async #readAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    const v = await this.#db.get(`a!${spiffeId}`);
    return v === undefined ? undefined : (JSON.parse(v) as AttestedAgent);
  }

  async updateEntry(input: EntryInput & { entryId: string }, opts: { expectedRevision: number }): Promise<RegistrationEntry> {
    this.#check();
    if (typeof opts !== 'object' || opts === null || !Number.isInteger(opts.expectedRevision)) {
      throw new TypeError('updateEntry needs { expectedRevision: integer }');
    }
    if (typeof input !== 'object' || input === null || typeof input.entryId !== 'string') {
      throw invalid('updateEntry needs the entry with its entryId');
    }
    const e = validateEntry(input);
    return this.#exclusive(async () => {
      const raw = await this.#db.get(`e!${e.entryId}`);
      if (raw === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${e.entryId} does not exist`);
      const old = JSON.parse(raw) as RegistrationEntry;
      if (old.revision !== opts.expectedRevision) {
        throw new DatastoreError(
          'ERR_DATASTORE_CONFLICT',
          `registration entry ${e.entryId} is at revision ${old.revision}, not ${opts.expectedRevision}: it changed since it was read; read it again and retry`,
        );
      }
      const next = stored(e, old.revision + 1, old.createdAt);
      const u = entryUniqueKey(next);
      if (u !== entryUniqueKey(old)) {
        const other = await this.#db.get(`u!${u}`);
        if (other !== undefined && other !== e.entryId) throw alreadyExists(other, 'same parent ID, SPIFFE ID and selectors');
      }
      await this.#write([...entryDelOps(old), ...entryOps(next, u)]);
      return next;
    });
  }

  async deleteEntry(entryId: string): Promise<RegistrationEntry> {
    this.#check();
    if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
    return this.#exclusive(async () => {
      const old = await this.#readEntry(entryId);
      if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${entryId} does not exist`);
      const n = await this.#count('c!entries');
      await this.#write([...entryDelOps(old), { type: 'put', key: 'c!entries', value: String(Math.max(0, n - 1)) }]);
      return old;
    });
  }

  async countEntries(): Promise<number> {
    this.#check();
    return this.#count('c!entries');
  }

  #matches(e: RegistrationEntry, q: CheckedEntryQuery): boolean {
    if (q.bySpiffeId !== undefined && e.spiffeId !== q.bySpiffeId) return false;
    if (q.byParentId !== undefined && e.parentId !== q.byParentId) return false;
    if (q.bySelectors !== undefined && !setMatches(e.selectors.map(formatSelector), q.bySelectors.keys, q.bySelectors.match)) return false;
    if (q.byFederatesWith !== undefined && !setMatches(e.federatesWith, q.byFederatesWith.keys, q.byFederatesWith.match)) return false;
    return true;
  }

  /** The cheapest index walk that yields every candidate of `q` in ascending id order. */
  #candidates(q: CheckedEntryQuery): IdStream | UnionStream | undefined {
    const stream = (prefix: string): IdStream => new IdStream(this.#db, prefix, q.after);
    if (q.bySpiffeId !== undefined) return stream(`s!${q.bySpiffeId}${SEP}`);
    if (q.byParentId !== undefined) return stream(`p!${q.byParentId}${SEP}`);
    const setFilter = (f: { keys: string[]; match: string } | undefined, tag: string): IdStream | UnionStream | undefined => {
      if (f === undefined) return undefined;
      // exact / superset: every match holds ALL query keys, so one key's index suffices.
      if (f.match === 'exact' || f.match === 'superset') return stream(`${tag}!${f.keys[0]!}${SEP}`);
      // subset / any: every match holds at least one query key.
      return new UnionStream(f.keys.map((k) => stream(`${tag}!${k}${SEP}`)));
    };
    return setFilter(q.bySelectors, 'l') ?? setFilter(q.byFederatesWith, 'f');
  }

  async listEntries(query?: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
    this.#check();
    const q = checkEntryQuery(query);
    const items: RegistrationEntry[] = [];
    const ids = this.#candidates(q);
    if (ids === undefined) {
      // No filter: walk the records themselves.
      const opts = q.after === undefined ? { gte: 'e!', lt: 'e"', limit: q.pageSize } : { gt: `e!${q.after}`, lt: 'e"', limit: q.pageSize };
      for (const v of await this.#db.values(opts).all()) items.push(JSON.parse(v) as RegistrationEntry);
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
          const values = await this.#db.getMany(batch.map((id) => `e!${id}`));
          for (const v of values) {
            if (v === undefined) continue; // deleted since the index was read
            const e = JSON.parse(v) as RegistrationEntry;
            if (this.#matches(e, q)) {
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

  async listEntriesForParents(parentIds: readonly string[]): Promise<RegistrationEntry[]> {
    this.#check();
    const parents = checkParentIds(parentIds);
    const out: RegistrationEntry[] = [];
    for (const p of parents) {
      const prefix = `p!${p}${SEP}`;
      const keys = await this.#db.keys({ gte: prefix, lt: `p!${p}${SEP_END}` }).all();
      for (let i = 0; i < keys.length; i += FETCH_CHUNK) {
        const values = await this.#db.getMany(keys.slice(i, i + FETCH_CHUNK).map((k) => `e!${k.slice(prefix.length)}`));
        for (const v of values) {
          if (v === undefined) continue;
          const e = JSON.parse(v) as RegistrationEntry;
          if (e.parentId === p) out.push(e);
        }
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- agents

  async createAgent(agent: NewAgent): Promise<AttestedAgent> {
    this.#check();
    checkNewAgent(agent);
    return this.#exclusive(async () => {
      if ((await this.#db.get(`a!${agent.spiffeId}`)) !== undefined) {
        throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `agent ${agent.spiffeId} is already recorded`);
      }
      const now = this.#seconds();
      const rec: AttestedAgent = {
        spiffeId: agent.spiffeId,
        attestationType: agent.attestationType,
        serialNumber: agent.serialNumber,
        certNotAfter: agent.certNotAfter,
        selectors: (agent.selectors ?? []).map((s) => ({ type: s.type, value: s.value })),
        banned: agent.banned ?? false,
        canReattest: agent.canReattest ?? false,
        createdAt: now,
        updatedAt: now,
      };
      const n = await this.#count('c!agents');
      await this.#write([
        { type: 'put', key: `a!${rec.spiffeId}`, value: JSON.stringify(rec) },
        { type: 'put', key: 'c!agents', value: String(n + 1) },
      ]);
      return rec;
    });
  }

  async getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    this.#check();
    if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
    return this.#readAgent(spiffeId);
  }

  async updateAgent(spiffeId: string, update: AgentUpdate): Promise<AttestedAgent> {
    this.#check();
    checkAgentSpiffeId(spiffeId);
    if (typeof update !== 'object' || update === null) throw new TypeError('agent update must be an object');
    checkAgentFields(update, false);
    return this.#exclusive(async () => {
      const old = await this.#readAgent(spiffeId);
      if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
      const rec: AttestedAgent = {
        spiffeId,
        attestationType: update.attestationType ?? old.attestationType,
        serialNumber: update.serialNumber ?? old.serialNumber,
        certNotAfter: update.certNotAfter ?? old.certNotAfter,
        selectors: (update.selectors ?? old.selectors).map((s) => ({ type: s.type, value: s.value })),
        banned: update.banned ?? old.banned,
        canReattest: update.canReattest ?? old.canReattest,
        createdAt: old.createdAt,
        updatedAt: this.#seconds(),
      };
      await this.#write([{ type: 'put', key: `a!${spiffeId}`, value: JSON.stringify(rec) }]);
      return rec;
    });
  }

  async listAgents(query: ListAgentsQuery = {}): Promise<Page<AttestedAgent>> {
    this.#check();
    const pageSize = checkPageSize(query.pageSize);
    checkAgentQuery(query);
    const after = decodePageToken(AGENT_PAGE_KIND, query.pageToken);
    const items: AttestedAgent[] = [];
    const it = this.#db.values(after === undefined ? { gte: 'a!', lt: 'a"' } : { gt: `a!${after}`, lt: 'a"' });
    try {
      while (items.length < pageSize) {
        const vs = await it.nextv(FETCH_CHUNK);
        if (vs.length === 0) break;
        for (const v of vs) {
          const a = JSON.parse(v) as AttestedAgent;
          if (query.byBanned !== undefined && a.banned !== query.byBanned) continue;
          if (query.byExpiredBefore !== undefined && !(a.certNotAfter < query.byExpiredBefore)) continue;
          items.push(a);
          if (items.length === pageSize) break;
        }
      }
    } finally {
      await it.close();
    }
    const last = items[items.length - 1];
    return { items, nextPageToken: items.length === pageSize && last !== undefined ? encodePageToken(AGENT_PAGE_KIND, last.spiffeId) : '' };
  }

  async deleteAgent(spiffeId: string): Promise<AttestedAgent> {
    this.#check();
    if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
    return this.#exclusive(async () => {
      const old = await this.#readAgent(spiffeId);
      if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
      const n = await this.#count('c!agents');
      await this.#write([
        { type: 'del', key: `a!${spiffeId}` },
        { type: 'put', key: 'c!agents', value: String(Math.max(0, n - 1)) },
      ]);
      return old;
    });
  }

  async countAgents(): Promise<number> {
    this.#check();
    return this.#count('c!agents');
  }

  async purgeExpiredAgents(before: number, opts: { includeBanned?: boolean } = {}): Promise<number> {
    this.#check();
    checkTime(before, 'before');
    const includeBanned = opts.includeBanned === true;
    return this.#exclusive(async () => {
      const ops: Op[] = [];
      for await (const v of this.#db.values({ gte: 'a!', lt: 'a"' })) {
        const a = JSON.parse(v) as AttestedAgent;
        if (a.certNotAfter < before && (includeBanned || !a.banned)) ops.push({ type: 'del', key: `a!${a.spiffeId}` });
      }
      if (ops.length === 0) return 0;
      const n = await this.#count('c!agents');
      ops.push({ type: 'put', key: 'c!agents', value: String(Math.max(0, n - ops.length)) });
      await this.#write(ops);
      return ops.length - 1;
    });
  }

  // ---------------------------------------------------------------- join tokens

  async createJoinToken(input: { token: string; expiresAt: number }): Promise<JoinToken> {
    this.#check();
    if (typeof input !== 'object' || input === null) throw new TypeError('join token must be an object');
    const token = checkJoinToken(input.token);
    const expiresAt = checkTime(input.expiresAt, 'join token expiresAt');
    const key = `t!${sha256(token)}`;
    return this.#exclusive(async () => {
      if ((await this.#db.get(key)) !== undefined) throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', 'that join token already exists');
      const createdAt = this.#seconds();
      await this.#write([{ type: 'put', key, value: JSON.stringify({ expiresAt, createdAt }) }]);
      return { token, expiresAt, createdAt };
    });
  }

  async consumeJoinToken(token: string, now: number): Promise<JoinToken> {
    this.#check();
    checkTime(now, 'now');
    const rejected = (): MayflyError => new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is unknown, already used or expired');
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw rejected();
    const key = `t!${sha256(token)}`;
    return this.#exclusive(async () => {
      const v = await this.#db.get(key);
      if (v === undefined) throw rejected();
      // Deleted whether valid or expired: an expired token is dead either way.
      await this.#write([{ type: 'del', key }]);
      const rec = JSON.parse(v) as { expiresAt: number; createdAt: number };
      if (now >= rec.expiresAt) throw rejected();
      return { token, expiresAt: rec.expiresAt, createdAt: rec.createdAt };
    });
  }

  async purgeExpiredJoinTokens(before: number): Promise<number> {
    this.#check();
    checkTime(before, 'before');
    return this.#exclusive(async () => {
      const ops: Op[] = [];
      for await (const [k, v] of this.#db.iterator({ gte: 't!', lt: 't"' })) {
        if ((JSON.parse(v) as { expiresAt: number }).expiresAt <= before) ops.push({ type: 'del', key: k });
      }
      if (ops.length > 0) await this.#write(ops);
      return ops.length;
    });
  }

  // ---------------------------------------------------------------- bundles

  async getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    this.#check();
    checkTrustDomainArg(trustDomain, 'trustDomain');
    const v = await this.#db.get(`b!${trustDomain}`);
    return v === undefined ? undefined : (JSON.parse(v) as StoredBundle);
  }

  async setBundle(input: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle> {
    this.#check();
    checkBundleInput(input);
    return this.#exclusive(async () => {
      const rec: StoredBundle = { trustDomain: input.trustDomain, bundle: input.bundle, sequence: input.sequence, updatedAt: this.#seconds() };
      await this.#write([{ type: 'put', key: `b!${rec.trustDomain}`, value: JSON.stringify(rec) }]);
      return rec;
    });
  }

  async listBundles(): Promise<StoredBundle[]> {
    this.#check();
    return (await this.#db.values({ gte: 'b!', lt: 'b"' }).all()).map((v) => JSON.parse(v) as StoredBundle);
  }

  async deleteBundle(trustDomain: string): Promise<void> {
    this.#check();
    checkTrustDomainArg(trustDomain, 'trustDomain');
    return this.#exclusive(async () => {
      if ((await this.#db.get(`b!${trustDomain}`)) === undefined) {
        throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no bundle is stored for trust domain ${trustDomain}`);
      }
      const users = await this.#db.keys({ gte: `f!${trustDomain}${SEP}`, lt: `f!${trustDomain}${SEP_END}`, limit: 1 }).all();
      if (users.length > 0) {
        const id = users[0]!.slice(`f!${trustDomain}${SEP}`.length);
        throw new DatastoreError(
          'ERR_DATASTORE_CONFLICT',
          `cannot delete the bundle of ${trustDomain}: registration entries federate with it (e.g. entry ${id}); update or delete them first`,
        );
      }
      await this.#write([{ type: 'del', key: `b!${trustDomain}` }]);
    });
  }

  // ---------------------------------------------------------------- CA journal

  async getCaJournal(): Promise<Uint8Array | undefined> {
    this.#check();
    const v = await this.#db.get('j!ca');
    return v === undefined ? undefined : new Uint8Array(Buffer.from(v, 'base64'));
  }

  async setCaJournal(bytes: Uint8Array): Promise<void> {
    this.#check();
    const b = checkCaJournal(bytes);
    const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
    await this.#exclusive(() => this.#write([{ type: 'put', key: 'j!ca', value: text }]));
  }

  // ---------------------------------------------------------------- lifecycle

  async close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      await this.#queue;
      this.#closed = true;
      await this.#db.close();
    })();
    return this.#closing;
  }

  /**
   * Checks that every entry has exactly its index keys and every index key points at an
   * entry that has it, and that the counts match. Returns the problems found ([] when
   * consistent). For tests and an operator's consistency check; reads the whole store.
   */
  async verifyIndexes(): Promise<string[]> {
    this.#check();
    const problems: string[] = [];
    const expected = new Set<string>();
    let entries = 0;
    for await (const v of this.#db.values({ gte: 'e!', lt: 'e"' })) {
      const e = JSON.parse(v) as RegistrationEntry;
      entries++;
      for (const k of indexKeys(e)) expected.add(k);
      const u = await this.#db.get(`u!${entryUniqueKey(e)}`);
      if (u !== e.entryId) problems.push(`entry ${e.entryId}: uniqueness key points at ${String(u)}`);
    }
    let uniques = 0;
    for await (const _ of this.#db.keys({ gte: 'u!', lt: 'u"' })) uniques++;
    if (uniques !== entries) problems.push(`${uniques} uniqueness keys for ${entries} entries`);
    for (const prefix of ['s!', 'p!', 'l!', 'f!']) {
      const end = prefix[0] + '"';
      for await (const k of this.#db.keys({ gte: prefix, lt: end })) {
        if (!expected.delete(k)) problems.push(`index key ${JSON.stringify(k)} has no matching entry`);
      }
    }
    for (const k of expected) problems.push(`entry index key ${JSON.stringify(k)} is missing`);
    const counted = await this.#count('c!entries');
    if (counted !== entries) problems.push(`entry count says ${counted}, store holds ${entries}`);
    let agents = 0;
    for await (const _ of this.#db.keys({ gte: 'a!', lt: 'a"' })) agents++;
    const agentCount = await this.#count('c!agents');
    if (agentCount !== agents) problems.push(`agent count says ${agentCount}, store holds ${agents}`);
    return problems;
  }
}
