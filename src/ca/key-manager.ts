/**
 * @module ca/key-manager
 *
 * The seam between the CA and wherever its private keys live. The CA only ever asks for
 * keys by id; the memory manager is for tests and throw-away servers, the disk manager
 * (disk-key-manager.ts) keeps keys across restarts. A KMS-backed manager would implement
 * the same four calls.
 */
import { generateKeyPair, type KeyPair, type KeyType } from '../spiffe/keys.js';

export interface KeyManager {
  /** Generates a new key under `id`, replacing any key already stored under that id. */
  generateKey(id: string, type: KeyType): Promise<KeyPair>;
  /** The key stored under `id`, or undefined when there is none. */
  getKey(id: string): Promise<KeyPair | undefined>;
  /** Forgets the key under `id`; a missing key is not an error. */
  deleteKey(id: string): Promise<void>;
  /** Ids of every stored key. */
  list(): Promise<string[]>;
}

/** Key ids double as file names: keep them to a boring, path-safe alphabet. */
const KEY_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export function assertKeyId(id: string): void {
  if (typeof id !== 'string' || !KEY_ID.test(id)) {
    throw new TypeError(`key id ${JSON.stringify(id)} is invalid: use 1-128 characters of [A-Za-z0-9._-], not starting with a dot`);
  }
}

/** Keys in process memory only: gone on restart. */
export class MemoryKeyManager implements KeyManager {
  readonly #keys = new Map<string, KeyPair>();

  async generateKey(id: string, type: KeyType): Promise<KeyPair> {
    assertKeyId(id);
    const pair = generateKeyPair(type);
    this.#keys.set(id, pair);
    return pair;
  }

  async getKey(id: string): Promise<KeyPair | undefined> {
    assertKeyId(id);
    return this.#keys.get(id);
  }

  async deleteKey(id: string): Promise<void> {
    assertKeyId(id);
    this.#keys.delete(id);
  }

  async list(): Promise<string[]> {
    return [...this.#keys.keys()].sort();
  }
}
