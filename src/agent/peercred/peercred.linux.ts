/**
 * @module agent/peercred/peercred.linux
 *
 * Peer credentials of a Unix socket connection on Linux: `getsockopt(SO_PEERCRED)` through
 * koffi (Node has no API for it), plus what `/proc` says of the peer process at accept
 * (start time, executable), and the check that the process is still that caller.
 *
 * Threats:
 * - A caller lying about who it is. Credentials come from the kernel (`SO_PEERCRED`
 *   records the connecting process's pid and *effective* uid/gid at `connect()`), never
 *   from anything the caller sends over the connection.
 * - PID reuse. Workload attestation reads `/proc/<pid>` *after* accept; if the caller
 *   exits and another process is given its pid, attestation would describe the newcomer.
 *   So at accept we record the process start time, and `verifyCaller` checks that the pid
 *   still belongs to a live process started at that same instant.
 * - Exec after connect. A socket outlives the `exec` of the process that opened it and is
 *   inherited across `fork`: an unprivileged process can connect, fork (the child keeps
 *   the socket), and `exec` a setuid-root binary that blocks, so that `/proc/<pid>` now
 *   says uid 0 while the child sends requests; or `exec` another binary of its own uid to
 *   borrow that binary's `unix:path`/`unix:sha256` identity. The start time does not change
 *   on exec. So `verifyCaller` also requires that the process's effective uid/gid in
 *   `/proc/<pid>/status` still equal what `SO_PEERCRED` recorded at connect, and that
 *   `/proc/<pid>/exe` still names the file (device and inode) it named at accept. The
 *   Workload API runs it before attestation, after attestation, and before every update
 *   a stream sends; the unix attestor also refuses to emit facts that disagree with the
 *   connect-time record. Any change is PERMISSION_DENIED.
 *
 * What stays open, and why:
 * - An `exec` between the client's `connect()` and our accept-time read of
 *   `/proc/<pid>/exe` into another binary of the *same* uid/gid is indistinguishable from
 *   that binary connecting: the kernel keeps no record of the executable at connect, only
 *   of the credentials. (A uid/gid change in that window *is* caught: `SO_PEERCRED` is
 *   the connect-time record.) SPIRE's peertracker has the same gap and checks only
 *   uid/gid (the owner of `/proc/<pid>`), not the executable.
 * - Between the last check and the reply reaching the client there is a window of
 *   microseconds. A pidfd would pin the process, but Node gets none for a socket peer
 *   (`SO_PEERPIDFD` needs Linux 6.5 and a raw getsockopt; pidfds do not reveal exec
 *   either), and it would not close the exec window above.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import koffi from 'koffi';
import { MayflyError } from '../../spiffe/errors.js';
import { parseProcStatus } from '../../attestors/workload/unix/unix.js';
import type { CallerCheck, PeerCredentials } from './types.js';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
/** `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`: three 32-bit fields. */
const UCRED_SIZE = 12;

type GetSockOpt = (fd: number, level: number, name: number, optval: Buffer, optlen: number[]) => number;

let getsockopt: GetSockOpt | undefined;

/** Binds libc's getsockopt on first use, so merely importing this module loads nothing. */
function libcGetsockopt(): GetSockOpt {
  if (getsockopt === undefined) {
    // `load(null)` opens the running process itself: Node is linked against libc, so the
    // symbol is found whether that libc is glibc or musl, without guessing a file name.
    const self = koffi.load(null);
    const fn = self.func('int getsockopt(int, int, int, _Inout_ void *optval, _Inout_ uint32_t *optlen)');
    getsockopt = (fd, level, name, optval, optlen) => fn(fd, level, name, optval, optlen) as number;
  }
  return getsockopt;
}

function fail(message: string, cause?: unknown): never {
  throw new MayflyError('ERR_PEER_CREDENTIALS', message, cause === undefined ? undefined : { cause });
}

/**
 * The file descriptor behind an accepted `net.Socket`.
 *
 * Node does not expose it publicly; `socket._handle` is libuv's pipe/TCP wrap and its `fd`
 * getter returns the descriptor (or -1 once closed). This is the one place in Mayfly that
 * touches that internal, checked with a type guard so that a Node change surfaces as a
 * clear refusal rather than a call into libc with garbage.
 */
export function socketFd(socket: Socket): number {
  const handle: unknown = (socket as unknown as { _handle?: unknown })._handle;
  if (typeof handle === 'object' && handle !== null && 'fd' in handle) {
    const fd: unknown = handle.fd;
    if (typeof fd === 'number' && Number.isInteger(fd) && fd >= 0) return fd;
  }
  return fail('cannot read peer credentials: the socket has no open file descriptor (closed, or not an OS socket)');
}

/**
 * Parses `/proc/<pid>/stat`. Field 2 (`comm`) is the executable name in parentheses and
 * may itself contain spaces and ')' (a process may name itself anything), so fields are
 * counted from after the LAST ')'. Returns the state letter (field 3) and start time
 * (field 22).
 */
export function parseProcStat(stat: string): { state: string; startTime: number } {
  const close = stat.lastIndexOf(')');
  if (close < 0) fail('malformed /proc stat: no closing parenthesis after the command name');
  const rest = stat.slice(close + 1).trim().split(' ');
  // rest[0] is field 3, so field N is rest[N - 3].
  const state = rest[0];
  const start = rest[22 - 3];
  if (state === undefined || start === undefined || !/^\d+$/.test(start)) {
    fail('malformed /proc stat: missing state or start time field');
  }
  const startTime = Number(start);
  if (!Number.isSafeInteger(startTime)) fail('malformed /proc stat: start time out of range');
  return { state, startTime };
}

/**
 * Reads a process's stat line; undefined when there is no such process. Synchronous on
 * purpose: procfs generates the line from kernel memory (no disk, no waiting), so a direct
 * read costs microseconds, where the thread pool's open/fstat/read/close would cost several
 * event-loop turns on every Workload API call.
 */
function readStat(pid: number, procRoot: string): { state: string; startTime: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return undefined;
    throw err;
  }
  return parseProcStat(text);
}

/** Options shared by the functions below; `procRoot` lets tests point at a fake /proc. */
export interface ProcOptions {
  /** Where procfs is mounted (default `/proc`). */
  procRoot?: string;
}

/** pid/uid/gid the kernel recorded for the peer of `socket`, without the start time. */
export function readUcred(socket: Socket): { pid: number; uid: number; gid: number } {
  const fd = socketFd(socket);
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = [UCRED_SIZE];
  const rc = libcGetsockopt()(fd, SOL_SOCKET, SO_PEERCRED, buf, len);
  if (rc !== 0) fail(`getsockopt(SO_PEERCRED) failed (errno ${koffi.errno()}); is this a Unix domain socket?`);
  if (len[0] !== UCRED_SIZE) fail(`getsockopt(SO_PEERCRED) returned ${len[0]} bytes, expected ${UCRED_SIZE}`);
  const pid = buf.readInt32LE(0);
  // The kernel reports pid 0 when it holds no credentials for the peer (e.g. not a Unix
  // socket, or a socketpair across namespaces): nothing to attest, so refuse.
  if (pid <= 0) fail('the kernel reported no peer process for this socket (pid 0); refusing the connection');
  return { pid, uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/**
 * The executable `pid` runs, as `<dev>:<ino>` of the file behind `/proc/<pid>/exe` (the
 * link is followed to the file itself, whatever mount namespace the process sees it in).
 * `null` when there is no such process; undefined when the agent may not read the link
 * (ptrace access rules: another uid's process when the agent is not root).
 */
export function readExecutable(pid: number, procRoot: string): string | null | undefined {
  try {
    const st = statSync(`${procRoot}/${pid}/exe`, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return null;
    if (code === 'EACCES' || code === 'EPERM') return undefined;
    throw err;
  }
}

/**
 * Reads the peer's credentials from the kernel, and the peer process's start time and
 * executable. Call it at accept. Throws `MayflyError('ERR_PEER_CREDENTIALS')` when they
 * cannot be read, including when the peer has already exited (no process left to attest).
 */
export async function readPeerCredentials(socket: Socket, options: ProcOptions = {}): Promise<PeerCredentials> {
  const { pid, uid, gid } = readUcred(socket);
  const procRoot = options.procRoot ?? '/proc';
  const stat = readStat(pid, procRoot);
  const executable = readExecutable(pid, procRoot);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X' || executable === null) {
    fail(`peer process ${pid} exited before its credentials could be recorded`);
  }
  return executable === undefined ? { pid, uid, gid, startTime: stat.startTime } : { pid, uid, gid, startTime: stat.startTime, executable };
}

/**
 * Whether `cred.pid` is still the process that connected, with the credentials the
 * kernel recorded at connect and the executable it ran at accept (see the module comment).
 * Synchronous: three procfs reads, microseconds.
 */
export function verifyCaller(cred: PeerCredentials, options: ProcOptions = {}): CallerCheck {
  const procRoot = options.procRoot ?? '/proc';
  const stat = readStat(cred.pid, procRoot);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X') {
    return { ok: false, reason: 'exited', detail: `process ${cred.pid} has exited` };
  }
  if (stat.startTime !== cred.startTime) {
    return { ok: false, reason: 'pid-reused', detail: `pid ${cred.pid} now belongs to another process (start time ${stat.startTime}, was ${cred.startTime})` };
  }
  let ids: { uid: number; gid: number };
  try {
    ids = parseProcStatus(readFileSync(`${procRoot}/${cred.pid}/status`, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return { ok: false, reason: 'exited', detail: `process ${cred.pid} has exited` };
    throw err;
  }
  if (ids.uid !== cred.uid || ids.gid !== cred.gid) {
    return {
      ok: false,
      reason: 'credentials-changed',
      detail: `process ${cred.pid} connected as uid ${cred.uid} gid ${cred.gid} and now runs as uid ${ids.uid} gid ${ids.gid}`,
    };
  }
  const executable = readExecutable(cred.pid, procRoot);
  if (executable === null) return { ok: false, reason: 'exited', detail: `process ${cred.pid} has exited` };
  if (executable !== cred.executable) {
    return { ok: false, reason: 'executable-changed', detail: `process ${cred.pid} has executed another file since it connected` };
  }
  return { ok: true };
}
