/**
 * @module agent/peercred/types
 *
 * The shape of peer credentials, shared by every platform implementation.
 */

/**
 * What the kernel reported about the process on the other end of a Unix socket, read at
 * accept time. Never taken from anything the caller sends.
 */
export interface PeerCredentials {
  /** Process ID of the peer when it connected. */
  readonly pid: number;
  /** Effective user ID of the peer when it connected. */
  readonly uid: number;
  /** Effective group ID of the peer when it connected. */
  readonly gid: number;
  /**
   * Start time of the process holding `pid` at accept, in clock ticks since boot
   * (`/proc/<pid>/stat` field 22). Together with `pid` it names one process for the
   * life of the machine; `pid` alone can be reused.
   */
  readonly startTime: number;
  /**
   * The executable the process ran at accept: `<dev>:<ino>` of the file behind
   * `/proc/<pid>/exe`. Undefined when the agent may not read that link (a non-root agent
   * and a caller of another uid). An `exec` changes it; nothing else does.
   */
  readonly executable?: string;
}

/**
 * Whether the process that connected is still the one the kernel described at connect,
 * checked before and after attestation and before every stream update.
 * - `exited`: no live process holds the pid any more;
 * - `pid-reused`: the pid now names another process (different start time);
 * - `credentials-changed`: its effective uid/gid differ from what `SO_PEERCRED` recorded
 *   at connect (a setuid/setgid `exec`, or `setuid()` after connecting);
 * - `executable-changed`: it `exec`ed another file since accept.
 */
export type CallerCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'exited' | 'pid-reused' | 'credentials-changed' | 'executable-changed'; readonly detail: string };
