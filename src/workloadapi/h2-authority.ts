/**
 * @module workloadapi/h2-authority
 *
 * Rewrites the HTTP/2 `:authority` (and `host`) a Workload API client sends when it is not
 * a valid RFC 3986 authority, before Node's HTTP/2 layer sees it.
 *
 * Why: grpc-java (1.7x–1.80, inside java-spiffe) sends the Unix socket *path* as
 * `:authority` (grpc/grpc-java#12664). nghttp2, under Node's `http2`, resets every such
 * stream with PROTOCOL_ERROR before grpc-js sees the call, and Node offers no switch to
 * relax that check. So the client→server byte stream is parsed into frames and its header
 * blocks fixed (`AuthorityRewriter`, h2-rewriter.ts; HPACK in h2-hpack.ts); all
 * server→client bytes pass through untouched. This module is the stream plumbing: it puts
 * the rewriter between an accepted client socket and grpc-js.
 *
 * Threat: a local, hostile client crashing the agent, or making it hold unbounded memory
 * or a half-open connection, through the rewriting path. The rewriter is bounded and
 * throws `MayflyError('ERR_WORKLOAD_API_HTTP2')` on any framing or HPACK violation; the
 * stream wrappers here turn that into destroying the connection, both halves (fail
 * closed), and respect backpressure: client bytes are read only as fast as the server
 * side takes them.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import { AuthorityRewriter, type AuthorityRewriterOptions } from './h2-rewriter.js';
import { socketPair } from './socketpair.linux.js';

/** The rewriter's and the HPACK encoder's names stay reachable from this module. */
export { AuthorityRewriter, CONNECTION_PREFACE, isValidAuthority, type AuthorityRewriterOptions } from './h2-rewriter.js';
export { encodeHeaderBlock, type HeaderField } from './h2-hpack.js';

export interface AuthorityRewritingStreamConfig extends AuthorityRewriterOptions {
  /** The client's connection (e.g. an accepted Unix socket). */
  socket: Duplex;
}

/**
 * A Duplex over a client connection: reading gives the client's bytes with header blocks
 * rewritten; writing sends bytes to the client unchanged. A protocol violation destroys
 * both this stream (with the error) and the client connection.
 */
export class AuthorityRewritingStream extends Duplex {
  readonly rewriter: AuthorityRewriter;
  private readonly socket: Duplex;
  private pausedForBackpressure = false;

  constructor(config: AuthorityRewritingStreamConfig) {
    super();
    const { socket, ...options } = config;
    this.socket = socket;
    this.rewriter = new AuthorityRewriter(options);
    socket.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      let out: Buffer[];
      try {
        out = this.rewriter.push(chunk);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      let more = true;
      for (const b of out) more = this.push(b) && more;
      if (!more) {
        this.pausedForBackpressure = true;
        socket.pause();
      }
    });
    socket.once('end', () => this.push(null));
    socket.once('error', (err: Error) => this.destroy(err));
    socket.once('close', () => this.destroy());
  }

  override _read(): void {
    // Resume only what backpressure paused: the client socket may be held paused by whoever
    // accepted it (until its credentials are read), and that is theirs to release.
    if (this.pausedForBackpressure) {
      this.pausedForBackpressure = false;
      this.socket.resume();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}

/**
 * Puts the rewriter between an accepted client socket and a fresh socket for the HTTP/2
 * server: returns the server's end of a private socket pair, carrying the client's bytes
 * rewritten. Hand that socket to grpc-js (`injectConnection`); it is a real OS socket, so
 * http2 consumes it natively and a `remoteAddress` defined on it shows in `getPeer()`
 * (a JavaScript Duplex would be wrapped by Node, hiding such a property).
 *
 * The client socket keeps its paused/flowing state: resume it once it may be read.
 * Closing either side closes the other. Throws `MayflyError('ERR_WORKLOAD_API_HTTP2')`
 * when no socket pair can be made (nothing is left open then).
 */
export function authoritySafeSocket(socket: net.Socket, options: AuthorityRewriterOptions = {}): net.Socket {
  const [outer, inner] = socketPair();
  const rewriting = new AuthorityRewritingStream({ ...options, socket });
  const destroyAll = (): void => {
    rewriting.destroy();
    outer.destroy();
    socket.destroy();
  };
  rewriting.on('error', destroyAll);
  outer.on('error', destroyAll);
  rewriting.once('close', destroyAll);
  outer.once('close', destroyAll);
  rewriting.pipe(outer);
  outer.pipe(rewriting);
  return inner;
}
