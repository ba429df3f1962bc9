/**
 * @module server/admin-socket-dir
 *
 * Threat: another local user creating the admin socket's directory (or one above it)
 * first, then moving the server's socket aside and binding their own: they would receive
 * the operator's admin CLI connections (entry changes, join tokens, minted SVIDs). The
 * directory is checked from / down and created 0700 if missing (securefs/trusted-dir);
 * the runner calls this before it opens any state, the server again when it binds.
 */
import { dirname, resolve } from 'node:path';
import { ensureTrustedDir, SOCKET_DIR_FIX } from '../securefs/index.js';

/** Checks (creating it 0700 if missing) the directory of `socketPath`, and returns it. */
export function ensureAdminSocketDir(socketPath: string): string {
  if (typeof socketPath !== 'string' || socketPath === '') throw new TypeError('socketPath must be a non-empty path');
  const dir = dirname(resolve(socketPath));
  ensureTrustedDir(dir, { mode: 0o700, fix: SOCKET_DIR_FIX });
  return dir;
}
