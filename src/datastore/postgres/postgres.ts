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
 *   audit_records (seq; the audit ledger, schema version 2: audit.ts)
 *   federation_relationships (schema version 3)
 *   x509_svids (serial_hex; issued X509-SVIDs and their revocations, schema version 4, agent_id 5: svids.ts)
 *
 * The parts, one file each: `schema.ts` (tables, migrations, advisory lock, version
 * check), `store.ts` (the pool, the call discipline, transactions with retry, close),
 * `entries.ts`, `agents.ts`, `join-tokens.ts`, `bundles.ts` (bundles and the CA journal),
 * `watch.ts` (LISTEN/NOTIFY change notices), `verify.ts` (the consistency check). This
 * file opens the store and presents them as one `Datastore`.
 */
import type { Pool as PgPool, PoolConfig } from 'pg';
import { MayflyError } from '../../spiffe/errors.js';
import { toPostgresUrl } from './connection-string.js';
import { DelegatingDatastore } from '../delegating.js';
import { DatastoreError } from '../records.js';
import * as audit from './audit.js';
import * as agents from './agents.js';
import * as bundles from './bundles.js';
import * as entries from './entries.js';
import * as joinTokens from './join-tokens.js';
import * as relationships from './relationships.js';
import * as svids from './svids.js';
import * as usage from './usage.js';
import { migrate, SCHEMA_RE } from './schema.js';
import { newPool, PostgresStore, unavailable } from './store.js';
import { verifyIndexes } from './verify.js';
import { PostgresWatcher, type DatastoreChange } from './watch.js';

export { POSTGRES_SCHEMA_VERSION } from './schema.js';
export type { DatastoreChange } from './watch.js';

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

export class PostgresDatastore extends DelegatingDatastore<PostgresStore> {
  readonly #w: PostgresWatcher;
  /** The `synchronous_commit` level this store's connections commit with (never `off`). */
  readonly synchronousCommit: string;

  /** @internal use openPostgresDatastore */
  constructor(pool: PgPool, quotedSchema: string, now: () => Date, synchronousCommit: string, clientConfig: PoolConfig) {
    const store = new PostgresStore(pool, quotedSchema, now);
    super(store, { entries, agents, joinTokens, relationships, bundles, audit, svids, usage });
    this.#w = new PostgresWatcher(store, clientConfig);
    this.synchronousCommit = synchronousCommit;
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
    return this.#w.watch(listener);
  }

  // ---------------------------------------------------------------- lifecycle

  /** Refuses new calls, waits for the accepted ones, stops watching, ends the pool. */
  close(): Promise<void> {
    return this.store.close(() => this.#w.stop());
  }

  /**
   * Checks that every entry's unique key, SPIFFE ID and parent ID columns and its
   * selector and federation rows agree with its stored body. Returns the problems found
   * ([] when consistent). For tests and an operator's consistency check; reads every entry.
   */
  verifyIndexes(): Promise<string[]> {
    return verifyIndexes(this.store);
  }
}
