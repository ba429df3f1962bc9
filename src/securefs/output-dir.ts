/**
 * @module securefs/output-dir
 *
 * The directory a file is written into (the CLI's `-write DIR`, a data directory).
 *
 * Threat: writing keys into a directory another user controls. Whoever can write to it
 * can plant names we are about to use, or swap our file for theirs after we wrote it;
 * whoever owns it can do that and more. So the directory must be owned by us or root and
 * not group/other-writable unless it has the sticky bit. It may be a symlink owned by us
 * or root; the directory it leads to is judged the same way. Only the directory itself
 * is judged, not those above it (see the module doc of securefs/index).
 */
import { chmodSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { checkTrustedComponent, lstatOrUndefined, SecureFsError } from './ownership.js';

const FIX = 'write somewhere only you (or root) can change, or fix its owner and mode';

/** Throws `SecureFsError` unless `dir` is a directory nobody but us or root can change (see the module doc). */
export function checkOutputDir(dir: string): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a non-empty path');
  const abs = resolve(dir);
  const lst = lstatOrUndefined(abs);
  if (lst === undefined) throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `directory ${abs} does not exist; create it first`);
  let st: Stats = lst;
  if (lst.isSymbolicLink()) {
    checkTrustedComponent(abs, lst, FIX);
    try {
      st = statSync(abs);
    } catch (err) {
      throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${abs} is a symlink to nothing; ${FIX}`, { cause: err });
    }
  }
  if (!st.isDirectory()) throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${abs} is not a directory; choose a directory to write into`);
  checkTrustedComponent(abs, st, FIX);
}

/**
 * Creates `dir` (and missing parents) with `mode` (default 0o755: certificates in it are
 * public; keys get 0600 files) when it does not exist, then checks it with `checkOutputDir`.
 */
export function ensureOutputDir(dir: string, mode = 0o755): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a non-empty path');
  if (!Number.isInteger(mode) || (mode & ~0o777) !== 0 || (mode & 0o022) !== 0) throw new TypeError('mode must be a permission mode without group/other write, e.g. 0o755');
  if (lstatOrUndefined(dir) === undefined) {
    mkdirSync(dir, { recursive: true, mode });
    chmodSync(dir, mode);
  }
  checkOutputDir(dir);
}
