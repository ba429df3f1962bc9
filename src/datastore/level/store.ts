/**
 * @module datastore/level/store
 *
 * The open LevelDB handle with its single in-process write queue and its lifecycle.
 *
 * Threats it stops:
 * - races between writers (two creates of the same entry, two consumes of one join token):
 *   LevelDB has no transactions, so every read-check-write runs inside `exclusive`, one at
 *   a time. This only works because ONE process owns the directory (LevelDB's LOCK file).
 * - lost or half-applied writes: `write` is one batch with `sync: true`.
 * - use after close: every operation checks first; `close` waits for queued writes.
 */
import type { Level } from 'level';
import type { AttestedAgent } from '../datastore.js';
import { withEntryDefaults, type RegistrationEntry } from '../../registration/entry.js';
import { DatastoreError, unixSeconds } from '../records.js';
import { SEP, type Op } from './keys.js';

export class LevelStore {
  readonly db: Level<string, string>;
  readonly #now: () => Date;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(db: Level<string, string>, now: () => Date) {
    this.db = db;
    this.#now = now;
  }

  check(): void {
    if (this.#closed || this.#closing !== undefined) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed');
  }

  seconds(): number {
    return unixSeconds(this.#now());
  }

  /** Runs `fn` after every earlier exclusive section has finished: the only place writes happen. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    const run = this.#queue.then(() => {
      if (this.#closed) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed');
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async write(ops: Op[]): Promise<void> {
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `datastore write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async count(key: string): Promise<number> {
    const v = await this.db.get(key);
    return v === undefined ? 0 : Number(v);
  }

  /** No closed-check: also used inside exclusive sections that must finish during close(). */
  async readEntry(entryId: string): Promise<RegistrationEntry | undefined> {
    if (entryId === '' || entryId.includes(SEP)) return undefined;
    const v = await this.db.get(`e!${entryId}`);
    return v === undefined ? undefined : withEntryDefaults(JSON.parse(v) as RegistrationEntry);
  }

  async readAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    const v = await this.db.get(`a!${spiffeId}`);
    return v === undefined ? undefined : (JSON.parse(v) as AttestedAgent);
  }

  async close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      await this.#queue;
      this.#closed = true;
      await this.db.close();
    })();
    return this.#closing;
  }
}
