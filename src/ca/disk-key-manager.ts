/**
 * @module ca/disk-key-manager
 *
 * CA private keys on disk: one unencrypted PKCS#8 PEM file per key id in
 * `<dataDir>/keys/<id>.pem`, directory 0700, files 0600, written atomically.
 *
 * Threats stopped: a signing key readable by other local users (a key file or directory
 * with group/other bits, or owned by someone else, is refused at load with an error telling
 * the operator to chmod it); a torn write after a crash (temp + fsync + rename + fsync dir);
 * a symlink swapped in for a key file (refused). Keys are not encrypted at rest: the file
 * system's permissions are the protection, as with SPIRE's `disk` KeyManager.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { exportPkcs8Pem, generateKeyPair, importPkcs8, type KeyPair, type KeyType } from '../spiffe/keys.js';
import { assertKeyId, type KeyManager } from './key-manager.js';
import { ensurePrivateDir, readPrivateFile, removePrivateFile, writePrivateFileAtomic } from './secure-file.js';

export interface DiskKeyManagerConfig {
  /** The server's data directory; keys go to `<dataDir>/keys/`. */
  dataDir: string;
}

const SUFFIX = '.pem';

export class DiskKeyManager implements KeyManager {
  readonly dir: string;
  /** Parsed keys, so each file is read and imported once per process. */
  readonly #cache = new Map<string, KeyPair>();

  constructor(config: DiskKeyManagerConfig) {
    if (typeof config?.dataDir !== 'string' || config.dataDir === '') throw new TypeError('DiskKeyManager needs a dataDir');
    this.dir = join(config.dataDir, 'keys');
    ensurePrivateDir(config.dataDir);
    ensurePrivateDir(this.dir, { strict: true });
  }

  async generateKey(id: string, type: KeyType): Promise<KeyPair> {
    assertKeyId(id);
    const pair = generateKeyPair(type);
    writePrivateFileAtomic(this.#path(id), Buffer.from(exportPkcs8Pem(pair.privateKey), 'utf8'));
    this.#cache.set(id, pair);
    return pair;
  }

  async getKey(id: string): Promise<KeyPair | undefined> {
    assertKeyId(id);
    const cached = this.#cache.get(id);
    if (cached) return cached;
    const bytes = readPrivateFile(this.#path(id));
    if (bytes === undefined) return undefined;
    const pair = importPkcs8(bytes.toString('utf8'));
    this.#cache.set(id, pair);
    return pair;
  }

  async deleteKey(id: string): Promise<void> {
    assertKeyId(id);
    this.#cache.delete(id);
    removePrivateFile(this.#path(id));
  }

  async list(): Promise<string[]> {
    return readdirSync(this.dir)
      .filter((n) => n.endsWith(SUFFIX) && !n.startsWith('.'))
      .map((n) => n.slice(0, -SUFFIX.length))
      .sort();
  }

  #path(id: string): string {
    return join(this.dir, id + SUFFIX);
  }
}
