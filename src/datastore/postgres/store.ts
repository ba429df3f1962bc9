/**
 * @module datastore/postgres/store
 *
 * The open connection pool with the call discipline every operation goes through, and its
 * lifecycle.
 *
 * Threats it stops:
 * - use after close: `run` refuses a call once closing has begun (checked synchronously, at
 *   the call), and `close` waits for the calls already accepted before ending the pool.
 * - driver failures leaking as foreign errors: they become `ERR_DATASTORE_UNAVAILABLE`.
 * - transactions lost to deadlocks or serialization failures: `tx` retries them.
 */
import pg from 'pg';
import type { Pool as PgPool, PoolClient, PoolConfig, QueryResultRow } from 'pg';
import { createHash } from 'node:crypto';
import { MayflyError } from '../../spiffe/errors.js';
import { DatastoreError, unixSeconds } from '../records.js';

/** Attempts of a transaction that PostgreSQL aborted as a deadlock or serialization failure. */
const TX_ATTEMPTS = 5;

/** Error codes of PostgreSQL worth naming. */
export const PG_UNIQUE_VIOLATION = '23505';
const PG_RETRYABLE = new Set(['40P01', '40001']);

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function pgCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

export function unavailable(what: string, err: unknown): DatastoreError {
  return new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

export function newPool(config: PoolConfig): PgPool {
  const pool = new pg.Pool(config);
  // Idle connections can fail (server restart); the next query reports it. Without a
  // listener the pool's 'error' event would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

export class PostgresStore {
  readonly #pool: PgPool;
  /** The quoted schema name, prefixed to every table. */
  readonly S: string;
  readonly #now: () => Date;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(pool: PgPool, quotedSchema: string, now: () => Date) {
    this.#pool = pool;
    this.S = quotedSchema;
    this.#now = now;
  }

  /** True once close() has been called. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  seconds(): number {
    return unixSeconds(this.#now());
  }

  /**
   * Runs one datastore call: refuses it once closing has begun (checked synchronously, at
   * the call), tracks it so close() waits for it, and turns driver failures into
   * ERR_DATASTORE_UNAVAILABLE.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
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

  async query<R extends QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.#pool.query<R>(sql, params);
  }

  /** Runs `fn` in one READ COMMITTED transaction, retrying deadlocks and serialization failures. */
  async tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
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

  /**
   * Refuses new calls, lets the accepted ones finish (their outcome is whatever they
   * report), runs `beforeEnd` (stopping the watch connection), then ends the pool.
   */
  close(beforeEnd: () => Promise<void>): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      await beforeEnd();
      await this.#pool.end();
    })();
    return this.#closing;
  }
}
