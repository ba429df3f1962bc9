/**
 * @module agent/peercred
 *
 * Peer credentials of Unix socket connections, per platform. Only Linux is supported
 * (`SO_PEERCRED` and `/proc`); elsewhere every function throws a clear error rather than
 * letting a workload be served without knowing who it is.
 *
 * See `peercred.linux.ts` for the threats (caller lying, PID reuse, exec after connect) this
 * stops and the gap that stays open.
 */
import type { Socket } from 'node:net';
import { MayflyError } from '../../spiffe/errors.js';
import * as linux from './peercred.linux.js';
import type { CallerCheck, PeerCredentials } from './types.js';

export type { CallerCheck, PeerCredentials } from './types.js';
export type { ProcOptions } from './peercred.linux.js';

function unsupported(): never {
  throw new MayflyError(
    'ERR_PEER_CREDENTIALS',
    `peer credentials are only implemented on Linux (this is ${process.platform}); the Workload API cannot attest callers here`,
  );
}

/** Kernel-reported pid/uid/gid of `socket`'s peer plus its process start time; read at accept. */
export async function readPeerCredentials(socket: Socket, options?: linux.ProcOptions): Promise<PeerCredentials> {
  if (process.platform !== 'linux') unsupported();
  return linux.readPeerCredentials(socket, options);
}

/** The process that connected still holds its pid, its connect-time uid/gid and its executable. */
export function verifyCaller(cred: PeerCredentials, options?: linux.ProcOptions): CallerCheck {
  if (process.platform !== 'linux') unsupported();
  return linux.verifyCaller(cred, options);
}
