/**
 * @module workloadapi/socketpair.linux
 *
 * A connected pair of Unix stream sockets (`socketpair(2)` through koffi; Node has no API
 * for it), wrapped as two `net.Socket`s. The Workload API endpoint hands one end to
 * grpc-js and feeds the other from JavaScript: grpc-js then sees a real OS socket (so
 * http2 consumes it natively and a `remoteAddress` set on it reaches `call.getPeer()`),
 * while every byte still passes through Mayfly's code first. The pair is private to this
 * process: unlike a second listening socket, nothing else can connect to it.
 */
import net from 'node:net';
import koffi from 'koffi';
import { MayflyError } from '../spiffe/errors.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
/** Linux (x86_64, aarch64 and the other generic-ABI ports): not inherited by children. */
const SOCK_CLOEXEC = 0o2000000;

type SocketPairFn = (domain: number, type: number, protocol: number, sv: Int32Array) => number;
let socketpairFn: SocketPairFn | undefined;

function libcSocketpair(): SocketPairFn {
  if (socketpairFn === undefined) {
    // `load(null)`: the running process, whose libc (glibc or musl) has the symbol.
    const fn = koffi.load(null).func('int socketpair(int, int, int, _Out_ int *sv)');
    socketpairFn = (d, t, p, sv) => fn(d, t, p, sv) as number;
  }
  return socketpairFn;
}

/**
 * Two connected sockets. Throws `MayflyError('ERR_WORKLOAD_API_HTTP2')` when the kernel
 * refuses (e.g. EMFILE: out of file descriptors).
 */
export function socketPair(): [net.Socket, net.Socket] {
  const fds = new Int32Array(2);
  const rc = libcSocketpair()(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
  if (rc !== 0) {
    throw new MayflyError('ERR_WORKLOAD_API_HTTP2', `socketpair() failed (errno ${koffi.errno()}); is the process out of file descriptors?`);
  }
  // libuv puts each descriptor in non-blocking mode when it opens it as a pipe handle.
  return [new net.Socket({ fd: fds[0] as number, readable: true, writable: true }), new net.Socket({ fd: fds[1] as number, readable: true, writable: true })];
}
