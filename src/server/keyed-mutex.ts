/**
 * @module server/keyed-mutex
 *
 * A per-key lock for read-check-write sequences on one datastore record (an agent's serial
 * number). The datastore has no compare-and-set, so two calls that read the same record,
 * each decide, and each write would otherwise lose one of the writes silently.
 *
 * In-process only: a LevelDB data directory belongs to one server process (its LOCK file),
 * so every writer of an agent record runs in this process.
 */
export class KeyedMutex {
  /** Tail of each key's queue; a key is present only while someone holds or waits for it. */
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier holder of `key` has finished; one holder per key at a time. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Keys held or waited for (for tests: the map must not grow without bound). */
  get size(): number {
    return this.#tails.size;
  }
}
