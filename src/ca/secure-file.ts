/**
 * @module ca/secure-file
 *
 * Private files for CA secrets and state: atomic replacement and owner-only permissions.
 *
 * Threats stopped:
 * - a crash or power loss half way through a write leaving a truncated key or journal
 *   (write a temporary file, fsync it, rename over the target, fsync the directory);
 * - another local user reading a private key because of a loose mode or umask (files are
 *   created 0600 inside a 0700 directory, and files found with group/other bits are
 *   refused rather than silently used);
 * - a symlink planted where a key file should be, pointing the CA at a file of the
 *   attacker's choosing (symlinks are refused).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, lstatSync, statSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, chmodSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MayflyError } from '../spiffe/errors.js';

/** Error for key or state files whose ownership or mode would expose secrets. */
export class CaFileError extends MayflyError {}

/** Bits that must be clear on private files and directories: any group or other access. */
const GROUP_OTHER = 0o077;

/**
 * Creates `dir` (and parents) if missing and makes sure it is a real directory. A directory
 * we create is chmod-ed 0700 explicitly so the umask cannot loosen it. With `strict` (the
 * keys directory) an existing one with group/other bits is refused: the operator decides,
 * we do not silently change somebody else's directory.
 */
export function ensurePrivateDir(dir: string, opts: { strict?: boolean } = {}): void {
  let st: Stats | undefined;
  try {
    // The keys directory itself may not be a symlink; a data directory may (e.g. onto a volume).
    st = opts.strict ? lstatSync(dir) : statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (st === undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    fsyncDir(dirname(dir));
    return;
  }
  if (!st.isDirectory()) {
    throw new CaFileError('ERR_CA_CONFIG', `${dir} must be a directory (found ${st.isSymbolicLink() ? 'a symlink' : 'a file'}); point the data directory at a real directory`);
  }
  if (opts.strict) checkOwnerAndMode(dir, st, 'directory', '700');
}

/** Throws CaFileError unless `st` belongs to us and has no group/other permission bits. */
export function checkOwnerAndMode(path: string, st: Stats, what: string, wanted: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new CaFileError(
      'ERR_CA_KEY_PERMISSIONS',
      `${what} ${path} is owned by uid ${st.uid}, not by the server's uid ${uid}; chown it to the user running the server`,
    );
  }
  if ((st.mode & GROUP_OTHER) !== 0) {
    throw new CaFileError(
      'ERR_CA_KEY_PERMISSIONS',
      `${what} ${path} has mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}, which lets other users read it; ` +
        `run "chmod ${wanted} ${path}" (and consider the key compromised if others could read it)`,
    );
  }
}

/**
 * Reads a private file after checking it is a regular file (not a symlink), ours, and
 * mode 0600 or stricter. Returns undefined when it does not exist.
 */
export function readPrivateFile(path: string): Buffer | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!st.isFile()) {
    throw new CaFileError('ERR_CA_KEY_PERMISSIONS', `${path} is not a regular file (symlinks are refused); replace it with the real file, mode 600`);
  }
  checkOwnerAndMode(path, st, 'file', '600');
  // O_NOFOLLOW closes the window between the lstat above and the open.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Atomically replaces `path` with `data`, mode 0600: temp file in the same directory
 * (created exclusively), write, fsync, rename, fsync the directory. Readers see either the
 * old or the new content, never a mix, even after a crash.
 */
export function writePrivateFileAtomic(path: string, data: Uint8Array): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** Removes `path` (if present) and makes the removal durable. */
export function removePrivateFile(path: string): void {
  rmSync(path, { force: true });
  fsyncDir(dirname(path));
}

/** fsync on a directory makes a rename or unlink inside it durable. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
