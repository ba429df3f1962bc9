/**
 * @module ca/journal-store
 *
 * Where the CA keeps its journal (authorities, key ids, certificates, statuses, bundle
 * sequence) between restarts. The CA declares this tiny interface; the datastore
 * implements it in production. `FileJournalStore` is the file-based one (atomic write,
 * 0600), used by tests and single-node servers; `MemoryJournalStore` for tests.
 */
import { dirname } from 'node:path';
import { ensurePrivateDir, readPrivateFile, writePrivateFileAtomic } from './secure-file.js';

export interface CaJournalStore {
  /** The last saved bytes, or undefined when nothing was ever saved. */
  load(): Promise<Uint8Array | undefined>;
  /** Durably replaces the saved bytes. */
  save(bytes: Uint8Array): Promise<void>;
}

export interface FileJournalStoreConfig {
  /** Journal file path, e.g. `<dataDir>/ca-journal.json`. Its directory is made 0700. */
  path: string;
}

export class FileJournalStore implements CaJournalStore {
  readonly path: string;

  constructor(config: FileJournalStoreConfig) {
    if (typeof config?.path !== 'string' || config.path === '') throw new TypeError('FileJournalStore needs a path');
    this.path = config.path;
    ensurePrivateDir(dirname(this.path));
  }

  async load(): Promise<Uint8Array | undefined> {
    return readPrivateFile(this.path);
  }

  async save(bytes: Uint8Array): Promise<void> {
    writePrivateFileAtomic(this.path, bytes);
  }
}

export class MemoryJournalStore implements CaJournalStore {
  #bytes: Uint8Array | undefined;

  async load(): Promise<Uint8Array | undefined> {
    return this.#bytes && Uint8Array.from(this.#bytes);
  }

  async save(bytes: Uint8Array): Promise<void> {
    this.#bytes = Uint8Array.from(bytes);
  }
}
