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
}
