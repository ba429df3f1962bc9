/**
 * @module datastore/postgres
 *
 * The Datastore on PostgreSQL, for several servers of one trust domain sharing one
 * database. Behaviour is the LevelDB store's (same conformance suite, same checks from
 * `records.ts`, same page tokens); what LevelDB gets from its single-process write queue
 * comes from PostgreSQL itself here, because the other writers are other processes.
 *
 * Threats and how this module meets them:
 * - Two servers registering the same workload at once: a UNIQUE index on the same
 *   SHA-256 key the LevelDB store uses (`entryUniqueKey`: parent ID, SPIFFE ID, sorted
 *   selectors) and the entry ID primary key; inserts use `ON CONFLICT DO NOTHING`, so the
 *   loser waits for the winner's commit and then reports the winner's entry ID.
 * - Lost updates: `UPDATE ... WHERE revision = $expected` under the row lock; the second
 *   of two writers re-checks against the committed row and gets `ERR_DATASTORE_CONFLICT`.
 * - Join token replay across servers: consumption is one `DELETE ... RETURNING`, so of
 *   any number of concurrent consumers on any number of connections exactly one gets the
 *   row. Tokens are stored as SHA-256 only, so a database dump does not leak them.
 * - Half-applied writes: an entry, its selector rows and its federation rows are written
 *   in one transaction; a client killed mid-transaction leaves nothing behind.
 * - Acknowledged-but-lost writes: a call resolves only after COMMIT returns. When the
 *   connections' `synchronous_commit` is `off` (a role or database default), the pool is
 *   reopened with it `on`, since `off` may drop commits the server already acknowledged.
 * - Unbounded reads: every listing is keyset-paged with `LIMIT`, sizes checked by
 *   `records.ts`; page tokens are the tagged, opaque tokens of `records.ts`.
 * - A database written by a newer Mayfly: the schema version row is checked at open, and a
 *   newer version is refused rather than misread.
 *
 * Tables (in `config.schema`, default `public`; text keys use the "C" collation so order
 * is code-point order, the LevelDB store's key order):
 *   mayfly_schema_version (one row)         entries (+ unique_key UNIQUE)
 *   entry_selectors (selector, entry_id)    entry_federates_with (trust_domain, entry_id)
 *   agents, join_tokens (token_sha256), bundles, ca_journal (one row)
 */
import pg from 'pg';
import type { Pool as PgPool, PoolClient, PoolConfig, QueryResultRow } from 'pg';
import { createHash } from 'node:crypto';
import { entryUniqueKey, validateEntry, type EntryInput, type RegistrationEntry, type ValidEntry } from '../../registration/entry.js';
import { formatSelector, type Selector } from '../../registration/selector.js';
import { MayflyError } from '../../spiffe/errors.js';
import { toPostgresUrl } from './connection-string.js';
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
  SetMatch,
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
  unixSeconds,
  type CheckedEntryQuery,
} from '../records.js';

/** The schema version this build writes and reads. */
export const POSTGRES_SCHEMA_VERSION = 1;
/** Entries per transaction in createEntries (the LevelDB store's batch size). */
const CREATE_CHUNK = 500;
/** Attempts of a transaction that PostgreSQL aborted as a deadlock or serialization failure. */
const TX_ATTEMPTS = 5;
const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresDatastoreConfig {
  /**
   * A libpq connection string: a URL (`postgresql://mayfly@db.internal/mayfly`, `?host=/dir`
   * for a Unix socket) or keyword/value pairs as SPIRE's configs hold them
   * (`dbname=mayfly user=mayfly host=db.internal sslmode=verify-full`).
   */
  connectionString?: string;
  /** Further `pg.Pool` options (host, user, password, ssl, max, ...); `connectionString` wins where both set a field. */
  pool?: Omit<PoolConfig, 'connectionString'>;
  /** The PostgreSQL schema holding Mayfly's tables (created if missing): lowercase letters, digits and '_'. Default `public`. */
  schema?: string;
  /** Clock for createdAt / updatedAt. */
  now?: () => Date;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Error codes of PostgreSQL worth naming. */
const PG_UNIQUE_VIOLATION = '23505';
const PG_RETRYABLE = new Set(['40P01', '40001']);

function pgCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function unavailable(what: string, err: unknown): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

function alreadyExists(existingId: string, why: string): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `registration entry already exists (${why}): entry ${existingId}`, {
    existingEntryId: existingId,
  });
}

/** The migrations, in order: MIGRATIONS[i] takes the schema from version i to i + 1. `S` is the quoted schema name. */
const MIGRATIONS: readonly ((S: string) => string[])[] = [
  (S) => [
    `CREATE TABLE ${S}.entries (
       entry_id   text COLLATE "C" PRIMARY KEY,
       unique_key text COLLATE "C" NOT NULL UNIQUE,
       spiffe_id  text COLLATE "C" NOT NULL,
       parent_id  text COLLATE "C" NOT NULL,
       revision   bigint NOT NULL,
       created_at bigint NOT NULL,
       body       text NOT NULL)`,
    `CREATE INDEX entries_by_spiffe_id ON ${S}.entries (spiffe_id, entry_id)`,
    `CREATE INDEX entries_by_parent_id ON ${S}.entries (parent_id, entry_id)`,
    `CREATE TABLE ${S}.entry_selectors (
       selector text COLLATE "C" NOT NULL,
       entry_id text COLLATE "C" NOT NULL REFERENCES ${S}.entries (entry_id) ON DELETE CASCADE,
       PRIMARY KEY (selector, entry_id))`,
    `CREATE INDEX entry_selectors_by_entry ON ${S}.entry_selectors (entry_id)`,
    `CREATE TABLE ${S}.entry_federates_with (
       trust_domain text COLLATE "C" NOT NULL,
       entry_id     text COLLATE "C" NOT NULL REFERENCES ${S}.entries (entry_id) ON DELETE CASCADE,
       PRIMARY KEY (trust_domain, entry_id))`,
    `CREATE INDEX entry_federates_with_by_entry ON ${S}.entry_federates_with (entry_id)`,
    `CREATE TABLE ${S}.agents (
       spiffe_id        text COLLATE "C" PRIMARY KEY,
       attestation_type text NOT NULL,
       serial_number    text NOT NULL,
       cert_not_after   bigint NOT NULL,
       selectors        text NOT NULL,
       banned           boolean NOT NULL,
       can_reattest     boolean NOT NULL,
       created_at       bigint NOT NULL,
       updated_at       bigint NOT NULL)`,
    `CREATE TABLE ${S}.join_tokens (
       token_sha256 text COLLATE "C" PRIMARY KEY,
       expires_at   bigint NOT NULL,
       created_at   bigint NOT NULL)`,
    `CREATE TABLE ${S}.bundles (
       trust_domain text COLLATE "C" PRIMARY KEY,
       bundle       bytea NOT NULL,
       sequence     bigint NOT NULL,
       updated_at   bigint NOT NULL)`,
    `CREATE TABLE ${S}.ca_journal (
       id    smallint PRIMARY KEY CHECK (id = 1),
       bytes bytea NOT NULL)`,
    // Change notices for watch(): sent by PostgreSQL at COMMIT, whoever wrote.
    `CREATE FUNCTION ${S}.mayfly_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF TG_LEVEL = 'ROW' THEN
         PERFORM pg_notify(TG_ARGV[0], json_build_object('kind', 'agent', 'agentId',
           CASE WHEN TG_OP = 'DELETE' THEN OLD.spiffe_id ELSE NEW.spiffe_id END)::text);
       ELSE
         PERFORM pg_notify(TG_ARGV[0], json_build_object('kind', TG_ARGV[1])::text);
       END IF;
       RETURN NULL;
     END $$`,
    // Selector and federation rows only change together with their entry's row.
    `CREATE TRIGGER entries_changed AFTER INSERT OR UPDATE OR DELETE ON ${S}.entries FOR EACH STATEMENT EXECUTE FUNCTION ${S}.mayfly_notify('${channel(S)}', 'entries')`,
    `CREATE TRIGGER bundles_changed AFTER INSERT OR UPDATE OR DELETE ON ${S}.bundles FOR EACH STATEMENT EXECUTE FUNCTION ${S}.mayfly_notify('${channel(S)}', 'bundles')`,
    `CREATE TRIGGER agents_changed AFTER INSERT OR UPDATE OR DELETE ON ${S}.agents FOR EACH ROW EXECUTE FUNCTION ${S}.mayfly_notify('${channel(S)}')`,
  ],
];

/** The LISTEN/NOTIFY channel of a schema (`S` quoted, as in MIGRATIONS). */
function channel(S: string): string {
  return `mayfly_${S.slice(1, -1)}`.slice(0, 63);
}

/**
 * A change notice from `watch`. Like the server's change hub, it carries no data: a
 * listener re-reads what it needs, so a coalesced or repeated notice is harmless.
 */
export type DatastoreChange = { kind: 'entries' } | { kind: 'bundles' } | { kind: 'agent'; agentId: string };

/** How long watch() waits before reconnecting its listening connection. */
const WATCH_RECONNECT_MS = 1000;

interface EntryRow {
  entry_id: string;
  body: string;
  revision: string;
  created_at: string;
}

interface AgentRow {
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  cert_not_after: string;
  selectors: string;
  banned: boolean;
  can_reattest: boolean;
  created_at: string;
  updated_at: string;
}

/** The entry's fields as stored in `body` (revision and createdAt live in their own columns). */
function entryBody(e: ValidEntry): string {
  const { entryId: _id, ...rest } = e;
  return JSON.stringify({ ...rest, selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })) });
}

function entryFromRow(r: EntryRow): RegistrationEntry {
  const body = JSON.parse(r.body) as Omit<ValidEntry, 'entryId'>;
  return { entryId: r.entry_id, ...body, revision: Number(r.revision), createdAt: Number(r.created_at) };
}

function stored(e: ValidEntry, revision: number, createdAt: number): RegistrationEntry {
  return { ...e, selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })), revision, createdAt };
}

function agentFromRow(r: AgentRow): AttestedAgent {
  return {
    spiffeId: r.spiffe_id,
    attestationType: r.attestation_type,
    serialNumber: r.serial_number,
    certNotAfter: Number(r.cert_not_after),
    selectors: JSON.parse(r.selectors) as Selector[],
    banned: r.banned,
    canReattest: r.can_reattest,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

const ENTRY_COLUMNS = 'e.entry_id, e.body, e.revision, e.created_at';
const AGENT_COLUMNS = 'spiffe_id, attestation_type, serial_number, cert_not_after, selectors, banned, can_reattest, created_at, updated_at';

/**
 * Opens a PostgreSQL datastore: connects, creates or migrates the schema (serialised
 * across servers by an advisory lock), and refuses a schema newer than this build.
 * `ERR_DATASTORE_UNAVAILABLE` when the database cannot be reached or its schema is newer.
 */
export async function openPostgresDatastore(config: PostgresDatastoreConfig): Promise<PostgresDatastore> {
  if (typeof config !== 'object' || config === null) throw new TypeError('openPostgresDatastore needs a config object');
  if (config.connectionString === undefined && config.pool === undefined) {
    throw new TypeError('openPostgresDatastore needs { connectionString } or { pool } (pg.Pool options)');
  }
  if (config.connectionString !== undefined && (typeof config.connectionString !== 'string' || config.connectionString === '')) {
    throw new TypeError('connectionString must be a non-empty string');
  }
  const schema = config.schema ?? 'public';
  if (typeof schema !== 'string' || !SCHEMA_RE.test(schema)) {
    throw new TypeError(`schema must be 1..63 of lowercase letters, digits and '_', not starting with a digit (got ${JSON.stringify(String(schema).slice(0, 70))})`);
  }
  const base: PoolConfig = {
    max: 10,
    connectionTimeoutMillis: 10_000,
    ...config.pool,
    ...(config.connectionString !== undefined ? { connectionString: toPostgresUrl(config.connectionString) } : {}),
  };
  const where = schema === 'public' ? 'the database' : `schema ${schema}`;
  let pool = newPool(base);
  try {
    let syncCommit = await migrate(pool, schema);
    if (syncCommit === 'off') {
      // `off` (a role or database default) acknowledges commits before they are durable.
      // `local`, `on` and the remote levels are all at least locally durable and are kept.
      await pool.end();
      pool = newPool({ ...base, options: [base.options, '-c synchronous_commit=on'].filter((o) => o !== undefined && o !== '').join(' ') });
      syncCommit = (await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
      if (syncCommit === 'off') {
        throw new DatastoreError(
          'ERR_DATASTORE_UNAVAILABLE',
          'PostgreSQL synchronous_commit is off for this connection and could not be switched on (is it forced in the connection string options?): acknowledged writes could be lost; remove that setting',
        );
      }
    }
    return new PostgresDatastore(pool, `"${schema}"`, config.now ?? (() => new Date()), syncCommit, base);
  } catch (err) {
    await pool.end().catch(() => undefined);
    if (err instanceof MayflyError) throw err;
    throw unavailable(`cannot open the PostgreSQL datastore (${where})`, err);
  }
}

function newPool(config: PoolConfig): PgPool {
  const pool = new pg.Pool(config);
  // Idle connections can fail (server restart); the next query reports it. Without a
  // listener the pool's 'error' event would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** Creates or migrates the schema; returns the connection's synchronous_commit setting. */
async function migrate(pool: PgPool, schema: string): Promise<string> {
  const S = `"${schema}"`;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    // Servers starting together must not both create the tables.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mayfly-schema:${schema}`]);
    const ns = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (ns.rowCount === 0) await client.query(`CREATE SCHEMA ${S}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${S}.mayfly_schema_version (
       id smallint PRIMARY KEY CHECK (id = 1),
       version integer NOT NULL)`);
    const row = await client.query<{ version: number }>(`SELECT version FROM ${S}.mayfly_schema_version WHERE id = 1`);
    const version = row.rows[0]?.version ?? 0;
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new DatastoreError(
        'ERR_DATASTORE_UNAVAILABLE',
        `the PostgreSQL datastore (schema ${schema}) has schema version ${version}, newer than this build's ${POSTGRES_SCHEMA_VERSION}: it was written by a newer Mayfly; run that version or a newer one`,
      );
    }
    for (let v = version; v < POSTGRES_SCHEMA_VERSION; v++) {
      for (const sql of MIGRATIONS[v]!(S)) await client.query(sql);
    }
    if (version !== POSTGRES_SCHEMA_VERSION) {
      await client.query(
        `INSERT INTO ${S}.mayfly_schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version`,
        [POSTGRES_SCHEMA_VERSION],
      );
    }
    const sync = await client.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s");
    await client.query('COMMIT');
    return sync.rows[0]!.s;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.release(broken);
  }
}

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

export class PostgresDatastore implements Datastore {
  readonly #pool: PgPool;
  /** The quoted schema name, prefixed to every table. */
  readonly #S: string;
  readonly #now: () => Date;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  /** The `synchronous_commit` level this store's connections commit with (never `off`). */
  readonly synchronousCommit: string;

  readonly #clientConfig: PoolConfig;
  readonly #watchers = new Set<(change: DatastoreChange) => void>();
  #listener: pg.Client | undefined;
  #reconnect: NodeJS.Timeout | undefined;

  /** @internal use openPostgresDatastore */
  constructor(pool: PgPool, quotedSchema: string, now: () => Date, synchronousCommit: string, clientConfig: PoolConfig) {
    this.#pool = pool;
    this.#S = quotedSchema;
    this.#now = now;
    this.synchronousCommit = synchronousCommit;
    this.#clientConfig = clientConfig;
  }

  /**
   * Calls `listener` on every committed change to entries, bundles or an agent, made by
   * this or any other server on the same database (PostgreSQL LISTEN/NOTIFY on one
   * dedicated connection). Feed it to the server's change hub so authorised-entry
   * caches and streams hear of other servers' writes. When the listening connection is
   * lost, notices may have been missed: on reconnecting, `entries` and `bundles` are
   * announced. Returns the unsubscribe function.
   */
  watch(listener: (change: DatastoreChange) => void): () => void {
    if (this.#closing !== undefined) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed');
    if (typeof listener !== 'function') throw new TypeError('watch needs a listener function');
    this.#watchers.add(listener);
    if (this.#listener === undefined && this.#reconnect === undefined) void this.#listen(false);
    return () => {
      this.#watchers.delete(listener);
    };
  }

  #emit(change: DatastoreChange): void {
    for (const w of [...this.#watchers]) {
      try {
        w(change);
      } catch {
        // One listener's failure must not keep the others from hearing of the change.
      }
    }
  }

  async #listen(resumed: boolean): Promise<void> {
    this.#reconnect = undefined;
    if (this.#closing !== undefined) return;
    const client = new pg.Client(this.#clientConfig);
    this.#listener = client;
    const retry = (): void => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => undefined);
      if (this.#closing === undefined) this.#reconnect = setTimeout(() => void this.#listen(true), WATCH_RECONNECT_MS);
    };
    client.on('error', retry);
    client.on('end', retry);
    client.on('notification', (msg) => {
      if (msg.payload === undefined) return;
      try {
        const c = JSON.parse(msg.payload) as { kind?: unknown; agentId?: unknown };
        if (c.kind === 'entries' || c.kind === 'bundles') this.#emit({ kind: c.kind });
        else if (c.kind === 'agent' && typeof c.agentId === 'string') this.#emit({ kind: 'agent', agentId: c.agentId });
      } catch {
        // not ours: ignore
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${channel(this.#S)}"`);
    } catch {
      retry();
      return;
    }
    if (this.#listener !== client) return; // closed meanwhile
    if (resumed) {
      this.#emit({ kind: 'entries' });
      this.#emit({ kind: 'bundles' });
    }
  }

  #seconds(): number {
    return unixSeconds(this.#now());
  }

  /**
   * Runs one datastore call: refuses it once closing has begun (checked synchronously, at
   * the call), tracks it so close() waits for it, and turns driver failures into
   * ERR_DATASTORE_UNAVAILABLE.
   */
  #run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed'));
    const p = (async () => {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof MayflyError || err instanceof TypeError) throw err;
        throw unavailable('PostgreSQL datastore call failed', err);
      }
    })();
    this.#inFlight.add(p);
    const done = (): void => {
      this.#inFlight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  async #query<R extends QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.#pool.query<R>(sql, params);
  }

  /** Runs `fn` in one READ COMMITTED transaction, retrying deadlocks and serialization failures. */
  async #tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const out = await fn(client);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        if (attempt < TX_ATTEMPTS && PG_RETRYABLE.has(pgCode(err) ?? '')) continue;
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  // ---------------------------------------------------------------- entries

  async createEntry(input: EntryInput): Promise<RegistrationEntry> {
    const [r] = await this.createEntries([input]);
    if (r!.error !== undefined) throw r!.error;
    return r!.entry;
  }

  createEntries(inputs: readonly EntryInput[]): Promise<CreateEntryResult[]> {
    return this.#run(async () => {
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
          await this.#createChunk(chunk, results);
        } catch (err) {
          const e = err instanceof MayflyError ? err : unavailable('PostgreSQL datastore write failed', err);
          for (const c of chunk) if (results[c.i] === undefined) results[c.i] = { error: e };
        }
      }
      return results;
    });
  }

  /** Inserts one chunk of mutually distinct entries in one transaction; fills `results` for it. */
  async #createChunk(chunk: { i: number; e: ValidEntry; u: string }[], results: CreateEntryResult[]): Promise<void> {
    const S = this.#S;
    // Rows in unique-key order so two servers inserting overlapping batches take their
    // index locks in the same order (no deadlock).
    const rows = [...chunk].sort((a, b) => (a.u < b.u ? -1 : a.u > b.u ? 1 : 0));
    const created = await this.#tx(async (c) => {
      const createdAt = this.#seconds();
      const ins = await c.query<{ entry_id: string }>(
        `INSERT INTO ${S}.entries (entry_id, unique_key, spiffe_id, parent_id, revision, created_at, body)
         SELECT id, u, s, p, 0, $5, b FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[]) AS t(id, u, s, p, b)
         ON CONFLICT DO NOTHING RETURNING entry_id`,
        [rows.map((r) => r.e.entryId), rows.map((r) => r.u), rows.map((r) => r.e.spiffeId), rows.map((r) => r.e.parentId), createdAt, rows.map((r) => entryBody(r.e))],
      );
      const won = new Set(ins.rows.map((r) => r.entry_id));
      const winners = rows.filter((r) => won.has(r.e.entryId));
      await this.#insertSets(c, winners.map((r) => r.e));
      return { won, createdAt };
    });
    const losers: typeof chunk = [];
    for (const c of chunk) {
      if (created.won.has(c.e.entryId)) results[c.i] = { entry: stored(c.e, 0, created.createdAt) };
      else losers.push(c);
    }
    if (losers.length === 0) return;
    // Name what each loser collided with: a committed row with its ID or its unique key.
    const byId = await this.#query<{ entry_id: string }>(`SELECT entry_id FROM ${S}.entries WHERE entry_id = ANY($1::text[])`, [losers.map((l) => l.e.entryId)]);
    const byUnique = await this.#query<{ entry_id: string; unique_key: string }>(
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
    if (retry.length > 0) await this.#createChunk(retry, results);
  }

  /** Writes the selector and federation rows of `entries` (inside the caller's transaction). */
  async #insertSets(c: PoolClient, entries: readonly ValidEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const S = this.#S;
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

  getEntry(entryId: string): Promise<RegistrationEntry | undefined> {
    return this.#run(async () => {
      if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
      if (entryId === '' || entryId.includes('\0')) return undefined;
      const r = await this.#query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM ${this.#S}.entries e WHERE e.entry_id = $1`, [entryId]);
      return r.rows[0] === undefined ? undefined : entryFromRow(r.rows[0]);
    });
  }

  updateEntry(input: EntryInput & { entryId: string }, opts: { expectedRevision: number }): Promise<RegistrationEntry> {
    return this.#run(async () => {
      if (typeof opts !== 'object' || opts === null || !Number.isInteger(opts.expectedRevision)) {
        throw new TypeError('updateEntry needs { expectedRevision: integer }');
      }
      if (typeof input !== 'object' || input === null || typeof input.entryId !== 'string') {
        throw invalid('updateEntry needs the entry with its entryId');
      }
      const e = validateEntry(input);
      const u = entryUniqueKey(e);
      const S = this.#S;
      try {
        return await this.#tx(async (c) => {
          // The row lock taken here makes concurrent updates queue; each re-checks the
          // revision against the row the previous one committed.
          const r = await c.query<{ revision: string; created_at: string }>(
            `UPDATE ${S}.entries SET unique_key = $3, spiffe_id = $4, parent_id = $5, body = $6, revision = revision + 1
             WHERE entry_id = $1 AND revision = $2 RETURNING revision, created_at`,
            [e.entryId, opts.expectedRevision, u, e.spiffeId, e.parentId, entryBody(e)],
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
          await this.#insertSets(c, [e]);
          return stored(e, Number(row.revision), Number(row.created_at));
        });
      } catch (err) {
        if (pgCode(err) !== PG_UNIQUE_VIOLATION) throw err;
        const other = await this.#query<{ entry_id: string }>(`SELECT entry_id FROM ${S}.entries WHERE unique_key = $1`, [u]);
        const id = other.rows[0]?.entry_id;
        if (id !== undefined && id !== e.entryId) throw alreadyExists(id, 'same parent ID, SPIFFE ID and selectors');
        throw new DatastoreError('ERR_DATASTORE_CONFLICT', `registration entry ${e.entryId} collided with a concurrent write; read it again and retry`, { cause: err });
      }
    });
  }

  deleteEntry(entryId: string): Promise<RegistrationEntry> {
    return this.#run(async () => {
      if (typeof entryId !== 'string') throw new TypeError('entryId must be a string');
      // Selector and federation rows go with it (ON DELETE CASCADE), in the same statement.
      const r = await this.#query<EntryRow>(`DELETE FROM ${this.#S}.entries e WHERE e.entry_id = $1 RETURNING ${ENTRY_COLUMNS}`, [entryId]);
      if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `registration entry ${entryId} does not exist`);
      return entryFromRow(r.rows[0]);
    });
  }

  countEntries(): Promise<number> {
    return this.#run(async () => Number((await this.#query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#S}.entries`)).rows[0]!.n));
  }

  listEntries(query?: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
    return this.#run(async () => {
      const q: CheckedEntryQuery = checkEntryQuery(query);
      const S = this.#S;
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
      const sql =
        `SELECT ${ENTRY_COLUMNS} FROM ${S}.entries e` +
        (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
        ` ORDER BY e.entry_id LIMIT ${param(q.pageSize)}`;
      const items = (await this.#query<EntryRow>(sql, params)).rows.map(entryFromRow);
      const last = items[items.length - 1];
      return { items, nextPageToken: items.length === q.pageSize && last !== undefined ? encodePageToken(ENTRY_PAGE_KIND, last.entryId) : '' };
    });
  }

  listEntriesForParents(parentIds: readonly string[]): Promise<RegistrationEntry[]> {
    return this.#run(async () => {
      const parents = checkParentIds(parentIds);
      const r = await this.#query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM ${this.#S}.entries e WHERE e.parent_id = ANY($1::text[])`, [parents]);
      return r.rows.map(entryFromRow);
    });
  }

  // ---------------------------------------------------------------- agents

  createAgent(agent: NewAgent): Promise<AttestedAgent> {
    return this.#run(async () => {
      checkNewAgent(agent);
      const now = this.#seconds();
      const selectors = (agent.selectors ?? []).map((s) => ({ type: s.type, value: s.value }));
      const r = await this.#query<AgentRow>(
        `INSERT INTO ${this.#S}.agents (${AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT DO NOTHING RETURNING ${AGENT_COLUMNS}`,
        [agent.spiffeId, agent.attestationType, agent.serialNumber, agent.certNotAfter, JSON.stringify(selectors), agent.banned ?? false, agent.canReattest ?? false, now],
      );
      if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `agent ${agent.spiffeId} is already recorded`);
      return agentFromRow(r.rows[0]);
    });
  }

  getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return this.#run(async () => {
      if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
      const r = await this.#query<AgentRow>(`SELECT ${AGENT_COLUMNS} FROM ${this.#S}.agents WHERE spiffe_id = $1`, [spiffeId]);
      return r.rows[0] === undefined ? undefined : agentFromRow(r.rows[0]);
    });
  }

  updateAgent(spiffeId: string, update: AgentUpdate): Promise<AttestedAgent> {
    return this.#run(async () => {
      checkAgentSpiffeId(spiffeId);
      if (typeof update !== 'object' || update === null) throw new TypeError('agent update must be an object');
      checkAgentFields(update, false);
      const selectors = update.selectors === undefined ? null : JSON.stringify(update.selectors.map((s) => ({ type: s.type, value: s.value })));
      // One statement: fields not in the update keep their committed values.
      const r = await this.#query<AgentRow>(
        `UPDATE ${this.#S}.agents SET
           attestation_type = COALESCE($2, attestation_type), serial_number = COALESCE($3, serial_number),
           cert_not_after = COALESCE($4, cert_not_after), selectors = COALESCE($5, selectors),
           banned = COALESCE($6, banned), can_reattest = COALESCE($7, can_reattest), updated_at = $8
         WHERE spiffe_id = $1 RETURNING ${AGENT_COLUMNS}`,
        [
          spiffeId,
          update.attestationType ?? null,
          update.serialNumber ?? null,
          update.certNotAfter ?? null,
          selectors,
          update.banned ?? null,
          update.canReattest ?? null,
          this.#seconds(),
        ],
      );
      if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
      return agentFromRow(r.rows[0]);
    });
  }

  listAgents(query: ListAgentsQuery = {}): Promise<Page<AttestedAgent>> {
    return this.#run(async () => {
      const pageSize = checkPageSize(query.pageSize);
      checkAgentQuery(query);
      const after = decodePageToken(AGENT_PAGE_KIND, query.pageToken);
      const params: unknown[] = [pageSize];
      const where: string[] = [];
      if (after !== undefined) where.push(`spiffe_id > $${params.push(after)}`);
      if (query.byBanned !== undefined) where.push(`banned = $${params.push(query.byBanned)}`);
      if (query.byExpiredBefore !== undefined) where.push(`cert_not_after < $${params.push(query.byExpiredBefore)}`);
      const r = await this.#query<AgentRow>(
        `SELECT ${AGENT_COLUMNS} FROM ${this.#S}.agents${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY spiffe_id LIMIT $1`,
        params,
      );
      const items = r.rows.map(agentFromRow);
      const last = items[items.length - 1];
      return { items, nextPageToken: items.length === pageSize && last !== undefined ? encodePageToken(AGENT_PAGE_KIND, last.spiffeId) : '' };
    });
  }

  deleteAgent(spiffeId: string): Promise<AttestedAgent> {
    return this.#run(async () => {
      if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
      const r = await this.#query<AgentRow>(`DELETE FROM ${this.#S}.agents WHERE spiffe_id = $1 RETURNING ${AGENT_COLUMNS}`, [spiffeId]);
      if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
      return agentFromRow(r.rows[0]);
    });
  }

  countAgents(): Promise<number> {
    return this.#run(async () => Number((await this.#query<{ n: string }>(`SELECT count(*) AS n FROM ${this.#S}.agents`)).rows[0]!.n));
  }

  purgeExpiredAgents(before: number, opts: { includeBanned?: boolean } = {}): Promise<number> {
    return this.#run(async () => {
      checkTime(before, 'before');
      const r = await this.#query(`DELETE FROM ${this.#S}.agents WHERE cert_not_after < $1 AND ($2 OR NOT banned)`, [before, opts.includeBanned === true]);
      return r.rowCount ?? 0;
    });
  }

  // ---------------------------------------------------------------- join tokens

  createJoinToken(input: { token: string; expiresAt: number }): Promise<JoinToken> {
    return this.#run(async () => {
      if (typeof input !== 'object' || input === null) throw new TypeError('join token must be an object');
      const token = checkJoinToken(input.token);
      const expiresAt = checkTime(input.expiresAt, 'join token expiresAt');
      const createdAt = this.#seconds();
      const r = await this.#query(`INSERT INTO ${this.#S}.join_tokens (token_sha256, expires_at, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [
        sha256(token),
        expiresAt,
        createdAt,
      ]);
      if (r.rowCount !== 1) throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', 'that join token already exists');
      return { token, expiresAt, createdAt };
    });
  }

  consumeJoinToken(token: string, now: number): Promise<JoinToken> {
    return this.#run(async () => {
      checkTime(now, 'now');
      const rejected = (): MayflyError => new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is unknown, already used or expired');
      if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw rejected();
      // One statement: of concurrent consumers on any connection, only one deletes the row.
      // Deleted whether valid or expired: an expired token is dead either way.
      const r = await this.#query<{ expires_at: string; created_at: string }>(
        `DELETE FROM ${this.#S}.join_tokens WHERE token_sha256 = $1 RETURNING expires_at, created_at`,
        [sha256(token)],
      );
      const row = r.rows[0];
      if (row === undefined || now >= Number(row.expires_at)) throw rejected();
      return { token, expiresAt: Number(row.expires_at), createdAt: Number(row.created_at) };
    });
  }

  purgeExpiredJoinTokens(before: number): Promise<number> {
    return this.#run(async () => {
      checkTime(before, 'before');
      return (await this.#query(`DELETE FROM ${this.#S}.join_tokens WHERE expires_at <= $1`, [before])).rowCount ?? 0;
    });
  }

  // ---------------------------------------------------------------- bundles

  getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return this.#run(async () => {
      checkTrustDomainArg(trustDomain, 'trustDomain');
      const r = await this.#query<{ trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }>(
        `SELECT trust_domain, bundle, sequence, updated_at FROM ${this.#S}.bundles WHERE trust_domain = $1`,
        [trustDomain],
      );
      return r.rows[0] === undefined ? undefined : bundleFromRow(r.rows[0]);
    });
  }

  setBundle(input: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle> {
    return this.#run(async () => {
      checkBundleInput(input);
      const rec: StoredBundle = { trustDomain: input.trustDomain, bundle: input.bundle, sequence: input.sequence, updatedAt: this.#seconds() };
      // Stored as UTF-8 bytes: text columns cannot hold NUL, and the datastore keeps the bundle exactly as given.
      await this.#query(
        `INSERT INTO ${this.#S}.bundles (trust_domain, bundle, sequence, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (trust_domain) DO UPDATE SET bundle = EXCLUDED.bundle, sequence = EXCLUDED.sequence, updated_at = EXCLUDED.updated_at`,
        [rec.trustDomain, Buffer.from(rec.bundle, 'utf8'), rec.sequence, rec.updatedAt],
      );
      return rec;
    });
  }

  listBundles(): Promise<StoredBundle[]> {
    return this.#run(async () => {
      const r = await this.#query<{ trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }>(
        `SELECT trust_domain, bundle, sequence, updated_at FROM ${this.#S}.bundles ORDER BY trust_domain`,
      );
      return r.rows.map(bundleFromRow);
    });
  }

  deleteBundle(trustDomain: string): Promise<void> {
    return this.#run(async () => {
      checkTrustDomainArg(trustDomain, 'trustDomain');
      const S = this.#S;
      // One statement, so an entry that federates with it and was committed before this
      // statement began always blocks the delete.
      const r = await this.#query(
        `DELETE FROM ${S}.bundles WHERE trust_domain = $1 AND NOT EXISTS (SELECT 1 FROM ${S}.entry_federates_with WHERE trust_domain = $1)`,
        [trustDomain],
      );
      if (r.rowCount === 1) return;
      const users = await this.#query<{ entry_id: string }>(`SELECT entry_id FROM ${S}.entry_federates_with WHERE trust_domain = $1 ORDER BY entry_id LIMIT 1`, [
        trustDomain,
      ]);
      const exists = await this.#query(`SELECT 1 FROM ${S}.bundles WHERE trust_domain = $1`, [trustDomain]);
      if (exists.rowCount === 0) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no bundle is stored for trust domain ${trustDomain}`);
      const id = users.rows[0]?.entry_id ?? '(one written meanwhile)';
      throw new DatastoreError(
        'ERR_DATASTORE_CONFLICT',
        `cannot delete the bundle of ${trustDomain}: registration entries federate with it (e.g. entry ${id}); update or delete them first`,
      );
    });
  }

  // ---------------------------------------------------------------- CA journal

  getCaJournal(): Promise<Uint8Array | undefined> {
    return this.#run(async () => {
      const r = await this.#query<{ bytes: Buffer }>(`SELECT bytes FROM ${this.#S}.ca_journal WHERE id = 1`);
      const b = r.rows[0]?.bytes;
      return b === undefined ? undefined : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    });
  }

  setCaJournal(bytes: Uint8Array): Promise<void> {
    return this.#run(async () => {
      const b = checkCaJournal(bytes);
      await this.#query(`INSERT INTO ${this.#S}.ca_journal (id, bytes) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET bytes = EXCLUDED.bytes`, [
        Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      ]);
    });
  }

  // ---------------------------------------------------------------- lifecycle

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      // Calls already accepted finish (their outcome is whatever they report).
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      if (this.#reconnect !== undefined) clearTimeout(this.#reconnect);
      const listener = this.#listener;
      this.#listener = undefined;
      this.#watchers.clear();
      await listener?.end().catch(() => undefined);
      await this.#pool.end();
    })();
    return this.#closing;
  }

  /**
   * Checks that every entry's unique key, SPIFFE ID and parent ID columns and its
   * selector and federation rows agree with its stored body. Returns the problems found
   * ([] when consistent). For tests and an operator's consistency check; reads every entry.
   */
  verifyIndexes(): Promise<string[]> {
    return this.#run(async () => {
      const S = this.#S;
      const problems: string[] = [];
      const rows = await this.#query<EntryRow & { unique_key: string; spiffe_id: string; parent_id: string }>(
        `SELECT ${ENTRY_COLUMNS}, e.unique_key, e.spiffe_id, e.parent_id FROM ${S}.entries e`,
      );
      const sets = async (table: string, col: string): Promise<Map<string, string[]>> => {
        const m = new Map<string, string[]>();
        for (const r of (await this.#query<{ entry_id: string; v: string }>(`SELECT entry_id, ${col} AS v FROM ${S}.${table}`)).rows) {
          const list = m.get(r.entry_id) ?? [];
          list.push(r.v);
          m.set(r.entry_id, list);
        }
        return m;
      };
      const sels = await sets('entry_selectors', 'selector');
      const feds = await sets('entry_federates_with', 'trust_domain');
      const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
      for (const r of rows.rows) {
        const e = entryFromRow(r);
        if (r.unique_key !== entryUniqueKey(e)) problems.push(`entry ${e.entryId}: unique key does not match its fields`);
        if (r.spiffe_id !== e.spiffeId || r.parent_id !== e.parentId) problems.push(`entry ${e.entryId}: SPIFFE ID or parent ID column disagrees with the entry`);
        if (!same(sels.get(e.entryId) ?? [], e.selectors.map(formatSelector))) problems.push(`entry ${e.entryId}: selector rows disagree with the entry`);
        if (!same(feds.get(e.entryId) ?? [], e.federatesWith)) problems.push(`entry ${e.entryId}: federation rows disagree with the entry`);
      }
      return problems;
    });
  }
}

function bundleFromRow(r: { trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }): StoredBundle {
  return { trustDomain: r.trust_domain, bundle: r.bundle.toString('utf8'), sequence: Number(r.sequence), updatedAt: Number(r.updated_at) };
}
