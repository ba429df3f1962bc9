/**
 * @module securefs/private-dir
 *
 * A directory for private state (the server's data directory, its LevelDB datastore, CA
 * keys, the agent's data directory).
 *
 * Threats: other local users reading entries, agents, selectors, serials or keys because
 * the directory was created with the umask's 0755, or an existing directory left loose;
 * a directory owned by another user, who could read or swap whatever we put there. A
 * missing directory is created 0700 (chmod-ed explicitly so the umask cannot loosen it);
 * an existing one must be ours; if it has group/other bits it is tightened to 0700 (and
 * the caller told, to log it) or, with `loose: 'refuse'`, refused.
 *
 * Files inside (LevelDB's in particular, which it creates 0644 under the default umask)
 * are protected by this 0700 directory: nobody else can traverse it to open them.
 */
import { chmodSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir } from './fsync-dir.js';
import { checkOwnedByUs, checkPrivate, isTrustedOwner, lstatOrUndefined, modeText, SecureFsError, trustedOwnersText } from './ownership.js';

export interface PrivateDirOptions {
  /**
   * An existing directory with group/other permission bits: `'tighten'` (default) chmods
   * it 0700 and reports it through `onTightened`; `'refuse'` throws, leaving the decision
   * to the operator (the CA's keys directory).
   */
  loose?: 'tighten' | 'refuse';
  /** May `dir` itself be a symlink (owned by us or root) to our directory, e.g. onto a volume? Default true. */
  allowSymlink?: boolean;
  /** Told when a loose directory was tightened (default: a process warning). */
  onTightened?: (message: string) => void;
}

function defaultTightened(message: string): void {
  process.emitWarning(message, { code: 'MAYFLY_DIR_TIGHTENED' });
}

/**
 * Creates `dir` (and missing parents) 0700, or checks an existing one (see the module doc).
 * Throws `SecureFsError`: `ERR_FILE_NOT_DIRECTORY` when it is not a directory,
 * `ERR_FILE_PERMISSIONS` when another user owns it (or it is loose and `loose: 'refuse'`).
 */
export function ensurePrivateDir(dir: string, opts: PrivateDirOptions = {}): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a non-empty path');
  const lst = lstatOrUndefined(dir);
  if (lst === undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    fsyncDir(dirname(dir));
    return;
  }
  let st: Stats = lst;
  if (lst.isSymbolicLink()) {
    if (opts.allowSymlink === false) {
      throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${dir} must be a directory (found a symlink); point the data directory at a real directory`);
    }
    if (!isTrustedOwner(lst.uid)) {
      throw new SecureFsError('ERR_FILE_PERMISSIONS', `symlink ${dir} is owned by uid ${lst.uid} (expected ${trustedOwnersText()}); replace it with a directory of your own`);
    }
    try {
      st = statSync(dir);
    } catch (err) {
      throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${dir} is a symlink to nothing; point the data directory at a real directory`, { cause: err });
    }
  }
  if (!st.isDirectory()) {
    throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${dir} must be a directory (found a file); point the data directory at a real directory`);
  }
  checkOwnedByUs(dir, st, 'directory');
  if ((st.mode & 0o077) === 0) return;
  if (opts.loose === 'refuse') checkPrivate(dir, st, 'directory', '700');
  chmodSync(dir, 0o700);
  (opts.onTightened ?? defaultTightened)(`directory ${dir} had mode ${modeText(st.mode)}, which let other users read what it holds; changed it to 0700`);
}
