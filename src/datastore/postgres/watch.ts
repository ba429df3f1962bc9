/**
 * @module datastore/postgres/watch
 *
 * Change notices from PostgreSQL LISTEN/NOTIFY on one dedicated connection, so a server
 * hears of entries, bundles and agents written by the other servers sharing the database.
 *
 * Threat it stops: stale authorised-entry caches after a lost listening connection. Notices
 * sent while it was down are gone, so on reconnecting `entries` and `bundles` are announced
 * and listeners re-read.
 */
import pg from 'pg';
import type { PoolConfig } from 'pg';
import { DatastoreError } from '../records.js';
import { channel } from './schema.js';
import type { PostgresStore } from './store.js';

/**
 * A change notice from `watch`. Like the server's change hub, it carries no data: a
 * listener re-reads what it needs, so a coalesced or repeated notice is harmless.
 */
export type DatastoreChange = { kind: 'entries' } | { kind: 'bundles' } | { kind: 'agent'; agentId: string };

/** How long watch() waits before reconnecting its listening connection. */
const WATCH_RECONNECT_MS = 1000;

export class PostgresWatcher {
  readonly #s: PostgresStore;
  readonly #clientConfig: PoolConfig;
  readonly #watchers = new Set<(change: DatastoreChange) => void>();
  #listener: pg.Client | undefined;
  #reconnect: NodeJS.Timeout | undefined;

  constructor(s: PostgresStore, clientConfig: PoolConfig) {
    this.#s = s;
    this.#clientConfig = clientConfig;
  }

  /** See `PostgresDatastore.watch`. */
  watch(listener: (change: DatastoreChange) => void): () => void {
    if (this.#s.closing) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', 'datastore is closed');
    if (typeof listener !== 'function') throw new TypeError('watch needs a listener function');
    this.#watchers.add(listener);
    if (this.#listener === undefined && this.#reconnect === undefined) void this.#listen(false);
    return () => {
      this.#watchers.delete(listener);
    };
  }

  /** Stops reconnecting, drops the listeners and ends the listening connection (during close). */
  async stop(): Promise<void> {
    if (this.#reconnect !== undefined) clearTimeout(this.#reconnect);
    const listener = this.#listener;
    this.#listener = undefined;
    this.#watchers.clear();
    await listener?.end().catch(() => undefined);
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
    if (this.#s.closing) return;
    const client = new pg.Client(this.#clientConfig);
    this.#listener = client;
    const retry = (): void => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => undefined);
      if (!this.#s.closing) this.#reconnect = setTimeout(() => void this.#listen(true), WATCH_RECONNECT_MS);
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
      await client.query(`LISTEN "${channel(this.#s.S)}"`);
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
}
