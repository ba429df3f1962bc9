/**
 * @module ca/secure-file
 *
 * The CA's private files (keys, journal) through `src/securefs`, which holds the checks
 * and names the threats (a truncated key after a crash, a key readable by other users, a
 * symlink planted where a key should be). This module only keeps the CA's error class
 * and codes: a securefs refusal surfaces as `CaFileError` `ERR_CA_KEY_PERMISSIONS`, or
 * `ERR_CA_CONFIG` when a directory is not a directory, with securefs's message.
 */
import { MayflyError } from '../spiffe/errors.js';
import * as securefs from '../securefs/index.js';
import type { CaErrorCode } from './ca-error.js';

/** Error for key or state files whose ownership or mode would expose secrets. */
export class CaFileError extends MayflyError<CaErrorCode> {}

function asCaError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof securefs.SecureFsError)) throw err;
    throw new CaFileError(err.code === 'ERR_FILE_NOT_DIRECTORY' ? 'ERR_CA_CONFIG' : 'ERR_CA_KEY_PERMISSIONS', err.message, { cause: err });
  }
}

/**
 * Creates `dir` 0700 if missing. With `strict` (the keys directory) an existing one that
 * is a symlink or has group/other bits is refused (the operator decides); otherwise (a
 * data directory, which may be a symlink onto a volume) a loose one of ours is tightened.
 * Either way a directory owned by another user is refused.
 */
export function ensurePrivateDir(dir: string, opts: { strict?: boolean } = {}): void {
  asCaError(() => securefs.ensurePrivateDir(dir, opts.strict ? { loose: 'refuse', allowSymlink: false } : {}));
}

/** A private file's bytes (regular, ours, 0600 or stricter), or undefined when absent. */
export function readPrivateFile(path: string): Buffer | undefined {
  return asCaError(() => securefs.readPrivateFile(path));
}

/** Atomically replaces `path` with `data`, mode 0600. */
export function writePrivateFileAtomic(path: string, data: Uint8Array): void {
  asCaError(() => securefs.writeFileAtomic(path, data, { mode: 0o600 }));
}

/** Removes `path` (if present) and makes the removal durable. */
export function removePrivateFile(path: string): void {
  securefs.removeFile(path);
}
