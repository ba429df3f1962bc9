/**
 * @module securefs/write-file
 *
 * The one way Mayfly writes key material, certificates, bundles and state files.
 *
 * Threats:
 * - a symlink planted at the target name redirecting the write (root's key written into
 *   a file of the attacker's choosing, or a system file overwritten): a target that
 *   exists and is not a regular file (symlink included) is refused, and the data never
 *   goes through the target name at all;
 * - a file planted at the target name by another user receiving the key while keeping
 *   its owner and mode (writeFile + chmod writes into it, and the chmod comes too late):
 *   the data goes into a new temporary file, created exclusively (O_CREAT|O_EXCL, so it
 *   is ours and new) without following symlinks (O_NOFOLLOW), mode set at creation and
 *   fixed with fchmod (the umask cannot change it), under a random name in the same
 *   directory; it is renamed over the target, replacing whatever was there;
 * - a predictable temporary name (`<file>.<pid>.tmp`) pre-planted as a symlink: the name
 *   has 64 random bits and the exclusive no-follow open fails on anything already there;
 * - a directory another user controls: refused (securefs/output-dir);
 * - a crash half way through leaving a truncated key: write, fsync the file, rename,
 *   fsync the directory; readers see the old content or the new, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fsyncDir } from './fsync-dir.js';
import { checkOutputDir } from './output-dir.js';
import { kindOf, lstatOrUndefined, SecureFsError } from './ownership.js';

export interface WriteFileOptions {
  /** Mode of the new file: 0o600 (default; keys, tokens, state) or 0o644 (public certificates and bundles). */
  mode?: 0o600 | 0o644;
  /**
   * false: skip both fsyncs. The replacement stays atomic for readers and survives the writing
   * process being killed (the page cache outlives it), but not a power loss or kernel crash,
   * and the event loop does not wait for the disk. Only for state a reader copes with losing
   * (never keys or certificates). Default true.
   */
  durable?: boolean;
}

/**
 * Atomically replaces `path` with `data` (see the module doc). Throws `SecureFsError`
 * (`ERR_FILE_NOT_REGULAR`, `ERR_PATH_UNTRUSTED`, `ERR_FILE_NOT_DIRECTORY`) before writing
 * anything when the target or its directory is unsafe.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string, opts: WriteFileOptions = {}): void {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty path');
  const mode = opts.mode ?? 0o600;
  if (mode !== 0o600 && mode !== 0o644) throw new TypeError('mode must be 0o600 or 0o644');
  const target = resolve(path);
  const dir = dirname(target);
  checkOutputDir(dir);
  const existing = lstatOrUndefined(target);
  if (existing !== undefined && !existing.isFile()) {
    throw new SecureFsError('ERR_FILE_NOT_REGULAR', `${target} exists and is ${kindOf(existing)}, not a regular file; refusing to write through it: remove it, or write somewhere else`);
  }
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const tmp = join(dir, `.${basename(target)}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    fchmodSync(fd, mode);
    // writeSync may write less than asked (signals, odd filesystems): loop until done.
    for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    if (opts.durable !== false) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (opts.durable !== false) fsyncDir(dir);
}

/** Removes `path` (if present; a symlink itself, never its target) and makes the removal durable. */
export function removeFile(path: string): void {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty path');
  rmSync(path, { force: true });
  fsyncDir(dirname(path));
}
