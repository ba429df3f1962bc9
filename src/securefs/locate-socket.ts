/**
 * @module securefs/locate-socket
 *
 * A client (`mayfly-agent api`, `mayfly-agent healthcheck`, `mayfly-server <command>`)
 * finding the default socket when the operator named none.
 *
 * Threat: connecting to a socket somebody else bound where our server would have been
 * (a directory they created first): the admin CLI would send them its requests, a
 * workload would take their bundle. A default candidate is used only if the directories
 * on its path pass the same check the servers apply (securefs/trusted-dir); a socket the
 * operator names explicitly (flag, environment) is their choice and is not judged here.
 */
import { dirname } from 'node:path';
import { lstatOrUndefined } from './ownership.js';
import { defaultSocketCandidates, SOCKET_DIR_FIX, type SocketPathContext, type SocketRole } from '../wire/workload/socket-paths.js';
import { ensureTrustedDir } from './trusted-dir.js';

export interface LocatedSocket {
  /** The first candidate that exists, else the first candidate. */
  path: string;
  found: boolean;
  /** Every place looked at, in order (for the "is it running?" message). */
  candidates: string[];
}

/** The default socket of `role` a client should use; throws `SecureFsError` when the one found lies in an untrusted directory. */
export function locateDefaultSocket(role: SocketRole, ctx: SocketPathContext = {}): LocatedSocket {
  const candidates = defaultSocketCandidates(role, ctx);
  for (const path of candidates) {
    if (lstatOrUndefined(path) === undefined) continue;
    ensureTrustedDir(dirname(path), { mode: 0o700, create: false, fix: SOCKET_DIR_FIX });
    return { path, found: true, candidates };
  }
  return { path: candidates[0] as string, found: false, candidates };
}
