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
 *   in-process queue (`LevelStore.exclusive`). Reads outside the queue see consistent snapshots.
 *   That queue only works if ONE process owns the directory: LevelDB's LOCK file makes a
 *   second open (from this or another process) fail with `ERR_DATASTORE_UNAVAILABLE`.
 * - Join tokens leaked from a copy of the data directory: tokens are stored under their
 *   SHA-256, never in clear.
 * - Other local users reading entries, agents, selectors and serials: the directory is
 *   made (or tightened to) 0700 before LevelDB opens it (LevelDB's own files keep the
 *   umask's 0644; the directory is what protects them).
 *
 * The parts, one file each: `keys.ts` (the key layout and entry batches), `store.ts` (the
 * handle, its write queue and lifecycle), `entries.ts` + `index-walk.ts` (entries and their
 * index listings), `agents.ts`, `join-tokens.ts`, `bundles.ts` (bundles and the CA
 * journal), `verify.ts` (the index consistency check). This file opens the store and
 * presents them as one `Datastore`.
 *
 * Nothing is loaded into memory at open: lookups and listings walk the index prefixes.
 */
import { Level } from 'level';
import { ensurePrivateDir } from '../../securefs/index.js';
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
import { SCHEMA_VERSION } from './keys.js';
import { LevelStore } from './store.js';
import { verifyIndexes } from './verify.js';

export interface LevelDatastoreConfig {
  /**
   * The data directory (created 0700 if missing, before LevelDB opens it; an existing one
   * of ours with group/other bits is tightened to 0700, one owned by another user refused:
   * see securefs/private-dir). One server process owns it.
   */
  path: string;
  /** Told when an existing directory was tightened to 0700 (default: a process warning). */
  warn?: (message: string) => void;
  /** Clock for createdAt / updatedAt. */
  now?: () => Date;
  /**
   * LevelDB memtable/log size in bytes (default 16 MiB, LevelDB's own is 4 MiB). Larger
   * means fewer level-0 compactions during bulk loads (100k entries: ~34 s at 4 MiB vs
   * ~21 s at 16 MiB on a loaded 2-core machine) at the price of a longer log replay at open.
   */
  writeBufferSize?: number;
}

/** Opens (creating if needed) a LevelDB datastore. `ERR_DATASTORE_UNAVAILABLE` when the directory is locked by another process or instance, or unreadable. */
export async function openLevelDatastore(config: LevelDatastoreConfig): Promise<LevelDatastore> {
  if (typeof config !== 'object' || config === null || typeof config.path !== 'string' || config.path === '') {
    throw new TypeError('openLevelDatastore needs { path: string }');
  }
  // LevelDB creates its directory (and its files) with the umask's modes, 0755/0644 by
  // default; what keeps entries, agents, selectors and serials from other local users is
  // this 0700 directory, made or tightened before LevelDB touches it.
  ensurePrivateDir(config.path, config.warn === undefined ? {} : { onTightened: config.warn });
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

export class LevelDatastore extends DelegatingDatastore<LevelStore> {
  /** @internal use openLevelDatastore */
  constructor(db: Level<string, string>, now: () => Date) {
    super(new LevelStore(db, now), { entries, agents, joinTokens, relationships, bundles, audit, svids, usage });
  }

  // ---------------------------------------------------------------- lifecycle

  close(): Promise<void> {
    return this.store.close();
  }

  /**
   * Checks that every entry has exactly its index keys and every index key points at an
   * entry that has it, and that the counts match. Returns the problems found ([] when
   * consistent). For tests and an operator's consistency check; reads the whole store.
   */
  verifyIndexes(): Promise<string[]> {
    return verifyIndexes(this.store);
  }
}
