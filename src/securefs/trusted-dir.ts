/**
 * @module securefs/trusted-dir
 *
 * A directory to put a listening socket in (the agent's Workload API, the server's admin
 * API), checked from `/` down.
 *
 * Threat: another local user creating the socket's directory (or any directory above it)
 * before Mayfly starts, e.g. `/tmp/mayfly-agent/public` with mode 0777. Whoever can write
 * to a directory can rename the real socket aside and bind their own in its place: they
 * then receive the operator's admin CLI connection, or serve every workload a forged
 * bundle. So every existing component of the path is checked with lstat: a directory must
 * be owned by this process's uid or root and not be group/other-writable unless sticky
 * (`/tmp`, 1777, is fine: others cannot rename or remove what we put there); a symlink
 * must be owned by us or root, and the directory it leads to is checked the same way,
 * from `/` down its real path. Missing components are created one at a time with an
 * explicit mode (not left to the umask), each only after its parent passed the check.
 */
import { chmodSync, mkdirSync, realpathSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { checkTrustedComponent, lstatOrUndefined, SecureFsError } from './ownership.js';

export interface TrustedDirOptions {
  /** Mode of the last component if it is created (e.g. 0o755 for a public socket dir, 0o700 for a private one). */
  mode: number;
  /** Mode of missing intermediate components (default 0o755: callers must be able to reach the socket). */
  parentMode?: number;
  /** Create missing components (default true). With false a missing one is an error. */
  create?: boolean;
  /** How the operator gets out of a refusal; ends every message (default: a generic hint). */
  fix?: string;
}

const DEFAULT_FIX = 'remove it (or fix its owner and mode), or choose another path';

function checkMode(mode: number, name: string): void {
  if (!Number.isInteger(mode) || mode < 0 || (mode & ~0o777) !== 0 || (mode & 0o022) !== 0 || (mode & 0o700) !== 0o700) {
    throw new TypeError(`${name} must be a permission mode such as 0o700 or 0o755: rwx for the owner, no group/other write`);
  }
}

/**
 * Makes sure `dir` and every directory above it can be changed only by us or root,
 * creating what is missing (see the module doc). Throws `SecureFsError`
 * (`ERR_PATH_UNTRUSTED`, `ERR_FILE_NOT_DIRECTORY`) naming the offending component.
 */
export function ensureTrustedDir(dir: string, opts: TrustedDirOptions): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a non-empty path');
  if (typeof opts !== 'object' || opts === null) throw new TypeError('ensureTrustedDir needs { mode }');
  checkMode(opts.mode, 'mode');
  const parentMode = opts.parentMode ?? 0o755;
  checkMode(parentMode, 'parentMode');
  const fix = opts.fix ?? DEFAULT_FIX;
  const abs = resolve(dir);
  const sawSymlink = walk(abs, { mode: opts.mode, parentMode, create: opts.create ?? true, fix });
  if (!sawSymlink) return;
  let real: string;
  try {
    real = realpathSync(abs);
  } catch (err) {
    throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${abs} leads through a symlink to a directory that does not exist; ${fix}`, { cause: err });
  }
  // The symlinks were ours or root's; now judge where they lead, from / down.
  if (real !== abs) walk(real, { mode: opts.mode, parentMode, create: false, fix });
}

/** Checks (and creates) each component of absolute `abs`; true when one of them was a symlink. */
function walk(abs: string, o: { mode: number; parentMode: number; create: boolean; fix: string }): boolean {
  const parts = abs.split(sep).filter((p) => p !== '');
  let cur: string = sep;
  let sawSymlink = false;
  checkExisting(cur, o.fix);
  for (let i = 0; i < parts.length; i++) {
    cur = join(cur, parts[i] as string);
    const mode = i === parts.length - 1 ? o.mode : o.parentMode;
    let st = lstatOrUndefined(cur);
    if (st === undefined) {
      if (!o.create) throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `directory ${cur} does not exist; ${o.fix}`);
      try {
        mkdirSync(cur, { mode });
        chmodSync(cur, mode); // mkdir's mode is filtered by the umask; this is exact
      } catch (err) {
        // Somebody made it between our lstat and mkdir: judge what they made.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      st = lstatOrUndefined(cur);
      if (st === undefined) throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `directory ${cur} vanished while it was being created; try again`);
    }
    if (st.isSymbolicLink()) sawSymlink = true;
    else if (!st.isDirectory()) throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `${cur} is not a directory; ${o.fix}`);
    checkTrustedComponent(cur, st, o.fix);
  }
  return sawSymlink;
}

function checkExisting(path: string, fix: string): void {
  const st = lstatOrUndefined(path);
  if (st === undefined) throw new SecureFsError('ERR_FILE_NOT_DIRECTORY', `directory ${path} does not exist; ${fix}`);
  checkTrustedComponent(path, st, fix);
}
