/**
 * @module datastore/level/index-walk
 *
 * Lazy walks over the entry index prefixes (`s!`, `p!`, `l!`, `f!`): ascending entry IDs
 * from one prefix, and the duplicate-free union of several, so a filtered listing reads
 * only a page's worth of candidates instead of loading the store.
 */
import type { Level } from 'level';
import { FETCH_CHUNK, SEP_END } from './keys.js';

/** Ascending ids from one index prefix, strictly after `after`. */
export class IdStream {
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
export class UnionStream {
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
