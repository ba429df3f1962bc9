/**
 * @module server/admin-socket
 *
 * The admin API's Unix socket. Its file mode (0770 by default, owner and group) is the
 * authorisation, so it must never be reachable with looser permissions, nor placed where
 * another user could swap it.
 *
 * Threats stopped:
 * - a window with loose permissions: the socket is bound inside a fresh 0700 directory,
 *   given its mode, and only then renamed into place;
 * - taking over a live server's socket: a socket file already at the path is replaced only
 *   when nothing answers on it; a non-socket there is never replaced;
 * - a hijackable directory: it (and every one above it) must be ours or root's and not
 *   writable by others without the sticky bit (server/admin-socket-dir);
 * - removing another server's socket at stop: only the inode this one placed is unlinked.
 */
import { chmod, lstat, mkdtemp, rename, rmdir, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { MayflyError } from '../spiffe/errors.js';
import { ensureAdminSocketDir } from './admin-socket-dir.js';

/** grpc-js `bindAsync` as a promise of the port bound. */
export function bindServer(server: Server, address: string, creds: ServerCredentials): Promise<number> {
  return new Promise((ok, fail) => {
    server.bindAsync(address, creds, (err, port) => (err ? fail(err) : ok(port)));
  });
}

/** Whether something accepts connections on the Unix socket at `path` (false on ECONNREFUSED/ENOENT). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((ok, fail) => {
    const s = createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') ok(false);
      else fail(new Error(`cannot tell whether ${path} is in use (${err.code ?? err.message}); remove it if no server holds it`, { cause: err }));
    });
  });
}

export class AdminSocket {
  readonly path: string;
  readonly #mode: number;
  /** Inode of the socket this one placed; `remove()` unlinks the file only while it is still that one. */
  #ino: number | undefined;

  constructor(path: string, mode = 0o770) {
    this.path = resolve(path);
    this.#mode = mode;
  }

  /** Binds `server` on the socket (see the module doc for the order of steps). */
  async bind(server: Server): Promise<void> {
    const final = this.path;
    const dir = ensureAdminSocketDir(final);
    try {
      const st = await lstat(final);
      if (!st.isSocket()) throw new TypeError(`${final} exists and is not a socket; refusing to replace it`);
      // Only a stale socket (nobody answering) is removed: unlinking a live one would take
      // the admin API away from the server that holds it.
      if (await socketAnswers(final)) {
        throw new MayflyError('ERR_SERVER_ADDRESS_IN_USE', `another server is already listening on ${final}; stop it or choose another admin socket path`);
      }
      await unlink(final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const tmpDir = await mkdtemp(join(dir, '.mayfly-admin-'));
    const tmpPath = join(tmpDir, 'admin.sock');
    try {
      await bindServer(server, `unix:${tmpPath}`, ServerCredentials.createInsecure());
      await chmod(tmpPath, this.#mode);
      await rename(tmpPath, final);
      this.#ino = (await lstat(final)).ino;
    } finally {
      await rmdir(tmpDir).catch(() => undefined);
    }
  }

  /** Removes the socket this one placed; never another server's (e.g. after a start that found the path in use). */
  async remove(): Promise<void> {
    const ino = this.#ino;
    if (ino === undefined) return;
    this.#ino = undefined;
    const st = await lstat(this.path).catch(() => undefined);
    if (st?.ino === ino) await unlink(this.path).catch(() => undefined);
  }
}
