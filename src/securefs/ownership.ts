/**
 * @module securefs/ownership
 *
 * The judgements every securefs operation shares: who may own a file or directory we
 * rely on, and which modes let somebody else read or replace it. Each check throws a
 * `SecureFsError` whose message names the path, what is wrong and what to do.
 */
import { lstatSync, type Stats } from 'node:fs';
import { MayflyError } from '../spiffe/errors.js';
import type { SecureFsErrorCode } from './securefs-error.js';

/** A file, directory or path whose type, owner or mode would expose or redirect Mayfly's data. */
export class SecureFsError extends MayflyError<SecureFsErrorCode> {}

const STICKY = 0o1000;
const GROUP_OTHER = 0o077;
const GROUP_OTHER_WRITE = 0o022;

/** This process's uid, or undefined where the platform has none (then ownership is not judged). */
export function processUid(): number | undefined {
  return process.getuid?.();
}

/** True when `uid` is this process's or root's: the only owners a trusted path component may have. */
export function isTrustedOwner(uid: number): boolean {
  const me = processUid();
  return me === undefined || uid === me || uid === 0;
}

/** "0 (root)" or "1000 (this process) or 0 (root)". */
export function trustedOwnersText(): string {
  const me = processUid();
  return me === undefined || me === 0 ? '0 (root)' : `${me} (this process) or 0 (root)`;
}

/** Octal permission bits, with the sticky/setuid/setgid digit when set: `0755`, `1777`. */
export function modeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** `lstat`, or undefined when nothing is at `path`. */
export function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `a component of ${path} is not a directory; check the path`, { cause: err });
    }
    throw err;
  }
}

/** What `st` is, for messages: "a symlink", "a regular file", "a socket", ... */
export function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isFIFO()) return 'a FIFO';
  return 'a device or special file';
}

/**
 * A private file or directory: owned by this process's uid and without any group/other
 * permission bit. `wanted` is the mode the fix suggests (`600`, `700`).
 */
export function checkPrivate(path: string, st: Stats, what: string, wanted: string): void {
  checkOwnedByUs(path, st, what);
  if ((st.mode & GROUP_OTHER) !== 0) {
    throw new SecureFsError(
      'ERR_FILE_PERMISSIONS',
      `${what} ${path} has mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}, which lets other users read it; ` +
        `run "chmod ${wanted} ${path}" (and consider the key compromised if others could read it)`,
    );
  }
}

/** `st` belongs to this process's uid. */
export function checkOwnedByUs(path: string, st: Stats, what: string): void {
  const uid = processUid();
  if (uid !== undefined && st.uid !== uid) {
    throw new SecureFsError('ERR_FILE_PERMISSIONS', `${what} ${path} is owned by uid ${st.uid}, not by this process's uid ${uid}; chown it to the user running Mayfly`);
  }
}

/**
 * A directory (or a symlink on the way to one) that nobody but us or root can change:
 * owned by us or root, and not writable by group/others unless the sticky bit is set
 * (`/tmp` is 1777: others may add entries there but not rename or remove ours). `fix` ends
 * the message: what the operator should do, e.g. "remove it or choose another socket path".
 */
export function checkTrustedComponent(path: string, st: Stats, fix: string): void {
  const what = st.isSymbolicLink() ? 'symlink' : 'directory';
  if (!isTrustedOwner(st.uid)) {
    throw new SecureFsError('ERR_PATH_UNTRUSTED', `${what} ${path} is owned by uid ${st.uid} (expected ${trustedOwnersText()}); ${fix}`);
  }
  if (st.isSymbolicLink()) return; // a symlink's own mode means nothing; its target is checked separately
  if ((st.mode & GROUP_OTHER_WRITE) !== 0 && (st.mode & STICKY) === 0) {
    throw new SecureFsError(
      'ERR_PATH_UNTRUSTED',
      `directory ${path} has mode ${modeText(st.mode)}: group/other-writable without the sticky bit, so another user could replace what Mayfly puts there; ${fix}`,
    );
  }
}
