/**
 * @module securefs/read-file
 *
 * Reading state files without being redirected.
 *
 * Threats: a symlink planted where a key or certificate should be, pointing Mayfly at a
 * file of the attacker's choosing; a FIFO or device that blocks or feeds endless data; a
 * private key file another user can read (or owns, and so can rewrite). The file is
 * opened with O_NOFOLLOW (a symlink fails the open itself, no lstat-then-open window) and
 * O_NONBLOCK (a FIFO cannot hang the open), then judged by fstat on the open descriptor:
 * it must be a regular file and, for private files, ours with no group/other bits.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { checkPrivate, SecureFsError } from './ownership.js';

function readNoFollow(path: string, isPrivate: boolean): Buffer | undefined {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty path');
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      throw new SecureFsError('ERR_FILE_NOT_REGULAR', `${path} is not a regular file (symlinks are refused); replace it with the real file${isPrivate ? ', mode 600' : ''}`, { cause: err });
    }
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new SecureFsError('ERR_FILE_NOT_REGULAR', `${path} is not a regular file (symlinks are refused); replace it with the real file${isPrivate ? ', mode 600' : ''}`);
    }
    if (isPrivate) checkPrivate(path, st, 'file', '600');
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a private file (a key, the CA journal): regular, not a symlink, ours, mode 0600
 * or stricter. Undefined when it does not exist; `SecureFsError` otherwise.
 */
export function readPrivateFile(path: string): Buffer | undefined {
  return readNoFollow(path, true);
}

/** Reads a regular file (certificates, bundles) without following a symlink. Undefined when absent. */
export function readRegularFile(path: string): Buffer | undefined {
  return readNoFollow(path, false);
}
