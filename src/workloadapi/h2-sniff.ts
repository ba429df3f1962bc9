/**
 * @module workloadapi/h2-sniff
 *
 * Decides, per Workload API connection, whether the `:authority` rewriter (h2-authority.ts)
 * has to stand between the client and grpc-js, so that only clients that need it pay for it.
 *
 * Why: the rewriter exists for grpc-java (java-spiffe), which sends the socket path as
 * `:authority`. Running every connection through it costs a JavaScript relay over a socket
 * pair in both directions (every response byte is read and written once more) and an HPACK
 * decode per call. go-spiffe, py-spiffe (gRPC C-core), grpc-js and others send a valid
 * authority and can be handed to grpc-js as they are.
 *
 * How: the client's first header block names the authority, but every gRPC client waits for
 * the server's SETTINGS before its first request, and grpc-js's HTTP/2 session, which would
 * send them, can only be created once the decision is made. So this module sends the
 * server connection preface itself, an empty SETTINGS frame (RFC 9113 §3.4 allows it empty:
 * every setting keeps its protocol default until the real server's SETTINGS follow), then
 * reads the client's bytes until it has seen both its first complete header block and its
 * ACK of that SETTINGS frame. The ACK is removed from the byte stream (the real server never
 * sent those SETTINGS and would treat it as a protocol error); every other byte is kept as
 * sent. The decision: if no header block seen needs a rewrite, the bytes are put back into
 * the socket (`unshift`) and the socket goes to grpc-js itself (Node's HTTP/2 session reads
 * what is already buffered in the socket before the rest, see node/lib/internal/http2/core.js,
 * "Socket already has some buffered data"); otherwise the same bytes go through the rewriter.
 *
 * Threat: a local, hostile client making the agent hold memory or guess. Any process that
 * can reach the socket gets here (attestation comes later, per call), so before the decision
 * a connection costs at most: `maxBufferedBytes` client bytes, copied into one buffer of
 * its own (never views that would pin the socket's read buffers, nor one object per read);
 * `maxFrames` frames (frames other than the first request — PINGs, say — are not answered
 * here, so a flood of them is refused rather than queued); and `firstRequestTimeoutMs` of
 * time. Past any bound the connection is dropped, except that a client which acknowledged
 * our SETTINGS and then simply sent no request yet (a channel connected ahead of its first
 * call) is handed to grpc-js as it is when the time is up (where the endpoint's idle timeout
 * ends it if it still makes no call, see connection-limits.ts). Framing and HPACK are checked by
 * an `AuthorityRewriter` run over the same bytes (its bounds apply: header block size,
 * decoded list size, table size), and a second SETTINGS ACK, an ACK with a payload, or any
 * violation drops the connection (`MayflyError('ERR_WORKLOAD_API_HTTP2')`): never a guess.
 * The bytes handed on are exactly the client's, so grpc-js judges every request as before.
 */
import type net from 'node:net';
import { MayflyError } from '../spiffe/errors.js';
import { AuthorityRewriter, CONNECTION_PREFACE, type AuthorityRewriterOptions } from './h2-rewriter.js';

/** An empty SETTINGS frame: the server connection preface sent before the decision. */
export const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);

const FRAME_HEADER_BYTES = 9;
const TYPE_SETTINGS = 0x4;
const FLAG_ACK = 0x1;

export interface SniffOptions extends AuthorityRewriterOptions {
  /** Client bytes held before the decision at most (default 80 KiB: a largest header block and some); more drops the connection. */
  maxBufferedBytes?: number;
  /** Frames accepted before the decision at most (default 64; a real first request takes under 10); more drops the connection. */
  maxFrames?: number;
  /** Time from accept to the decision at most, ms (default 5 s; real clients take milliseconds). */
  firstRequestTimeoutMs?: number;
}

/** How a connection is served: straight to grpc-js, or through the `:authority` rewriter. */
export type ConnectionRoute = 'direct' | 'rewrite';

function fail(message: string): never {
  throw new MayflyError('ERR_WORKLOAD_API_HTTP2', message);
}

/**
 * The byte-level part, without I/O: `push()` the client's bytes as they arrive (after
 * sending it `EMPTY_SETTINGS_FRAME`); once `route` is set, `bytes()` is what the client sent
 * minus the ACK of that frame. Throws `MayflyError('ERR_WORKLOAD_API_HTTP2')` on any violation.
 */
export class FirstRequestSniffer {
  /** Set once the first header block and the SETTINGS ACK have both been seen. */
  route: ConnectionRoute | undefined;
  private readonly checker: AuthorityRewriter;
  private readonly maxBuffered: number;
  private readonly maxFrames: number;
  /** The client's bytes kept so far (copied), in `kept[0, keptLen)`; grows up to maxBuffered. */
  private kept = Buffer.alloc(1024);
  private keptLen = 0;
  private frames = 0;
  /** Preface bytes still expected, then frame headers. */
  private prefaceLeft = CONNECTION_PREFACE.length;
  private header: Buffer[] = [];
  private headerLen = 0;
  /** Payload octets of the current frame still to pass. */
  private payloadLeft = 0;
  /** Whether the client acknowledged our SETTINGS (it speaks HTTP/2 and heard us). */
  ackSeen = false;

  constructor(options: SniffOptions = {}) {
    const { maxBufferedBytes, maxFrames, firstRequestTimeoutMs: _timeout, ...rewriterOptions } = options;
    this.maxBuffered = maxBufferedBytes ?? 80 * 1024;
    this.maxFrames = maxFrames ?? 64;
    if (!Number.isSafeInteger(this.maxBuffered) || this.maxBuffered < CONNECTION_PREFACE.length) {
      throw new TypeError('maxBufferedBytes must be an integer of at least the preface length');
    }
    if (!Number.isSafeInteger(this.maxFrames) || this.maxFrames < 2) throw new TypeError('maxFrames must be an integer of at least 2');
    this.checker = new AuthorityRewriter(rewriterOptions);
  }

  /**
   * Client bytes kept so far (all but the SETTINGS ACK), in order, including the start of a
   * frame header not yet complete (after the decision it can no longer be the ACK).
   */
  bytes(): Buffer {
    return Buffer.concat([this.kept.subarray(0, this.keptLen), ...this.header], this.keptLen + this.headerLen);
  }

  push(chunk: Buffer): void {
    if (this.route !== undefined) throw new TypeError('the route is decided; hand the connection on');
    this.scan(chunk);
    if (this.ackSeen && this.checker.headerBlocks > 0) this.route = this.checker.rewrites > 0 ? 'rewrite' : 'direct';
  }

  /** Copies `b` into the kept bytes and has the rewriter check it (framing, HPACK, authority). */
  private keep(b: Buffer): void {
    if (b.length === 0) return;
    const need = this.keptLen + b.length;
    if (need > this.maxBuffered) fail(`no complete first request within ${this.maxBuffered} bytes`);
    if (need > this.kept.length) {
      const grown = Buffer.alloc(Math.min(this.maxBuffered, Math.max(need, 2 * this.kept.length)));
      this.kept.copy(grown, 0, 0, this.keptLen);
      this.kept = grown;
    }
    b.copy(this.kept, this.keptLen);
    this.keptLen = need;
    this.checker.push(b);
  }

  /** Splits `chunk` at frame boundaries, keeping everything but the first SETTINGS ACK. */
  private scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.prefaceLeft > 0) {
        const take = Math.min(this.prefaceLeft, chunk.length - off);
        this.keep(chunk.subarray(off, off + take));
        off += take;
        this.prefaceLeft -= take;
        continue;
      }
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, chunk.length - off);
        this.keep(chunk.subarray(off, off + take));
        off += take;
        this.payloadLeft -= take;
        continue;
      }
      const take = Math.min(FRAME_HEADER_BYTES - this.headerLen, chunk.length - off);
      this.header.push(chunk.subarray(off, off + take));
      this.headerLen += take;
      off += take;
      if (this.headerLen < FRAME_HEADER_BYTES) continue;
      const h = Buffer.concat(this.header, FRAME_HEADER_BYTES);
      this.header = [];
      this.headerLen = 0;
      if (++this.frames > this.maxFrames) fail(`more than ${this.maxFrames} frames before the first request`);
      const length = h.readUIntBE(0, 3);
      const type = h[3] as number;
      const flags = h[4] as number;
      if (type === TYPE_SETTINGS && (flags & FLAG_ACK) !== 0) {
        if (length !== 0) fail('SETTINGS ACK with a payload');
        if (this.ackSeen) fail('SETTINGS ACK for SETTINGS the server never sent');
        this.ackSeen = true;
        continue; // dropped: the real server's session never sent those SETTINGS
      }
      this.keep(h);
      this.payloadLeft = length;
    }
  }
}

/**
 * Sends `EMPTY_SETTINGS_FRAME` on `socket` (an accepted, paused Workload API connection whose
 * caller is already known), resumes it and reads until the route is decided. Then the socket
 * is paused again with the client's bytes (minus the ACK) put back for the next reader, and
 * `done(undefined, route)` is called; on a violation, or if the client goes away first,
 * `done(err)` (the caller destroys the socket). Listeners added here are removed either way.
 */
export function sniffFirstRequest(socket: net.Socket, options: SniffOptions, done: (err: Error | undefined, route?: ConnectionRoute) => void): void {
  let sniffer: FirstRequestSniffer;
  try {
    sniffer = new FirstRequestSniffer(options);
  } catch (err) {
    done(err as Error);
    return;
  }
  let finished = false;
  const finish = (err: Error | undefined): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onGone);
    socket.off('close', onGone);
    socket.pause();
    if (err !== undefined) {
      done(err);
      return;
    }
    socket.unshift(sniffer.bytes());
    done(undefined, sniffer.route);
  };
  const onData = (chunk: Buffer): void => {
    try {
      sniffer.push(chunk);
    } catch (err) {
      finish(err as Error);
      return;
    }
    if (sniffer.route !== undefined) finish(undefined);
  };
  const onGone = (): void => finish(new MayflyError('ERR_WORKLOAD_API_HTTP2', 'the client went away before its first request'));
  const timeoutMs = options.firstRequestTimeoutMs ?? 5_000;
  const timer = setTimeout(() => {
    // A client that heard us but has no call to make yet goes to grpc-js as it is (no
    // header block has asked for a rewrite); anything else this slow is not a gRPC client.
    if (sniffer.ackSeen && sniffer.route === undefined) {
      sniffer.route = 'direct';
      finish(undefined);
    } else {
      finish(new MayflyError('ERR_WORKLOAD_API_HTTP2', `no HTTP/2 handshake within ${timeoutMs} ms`));
    }
  }, timeoutMs);
  socket.on('data', onData);
  socket.once('end', onGone);
  socket.once('close', onGone);
  socket.write(EMPTY_SETTINGS_FRAME);
  socket.resume();
}
