/**
 * @module workloadapi/h2-authority
 *
 * Rewrites the HTTP/2 `:authority` (and `host`) a Workload API client sends when it is not
 * a valid RFC 3986 authority, before Node's HTTP/2 layer sees it.
 *
 * Why: grpc-java (1.7x–1.80, inside java-spiffe) sends the Unix socket *path* as
 * `:authority` (grpc/grpc-java#12664). nghttp2, under Node's `http2`, resets every such
 * stream with PROTOCOL_ERROR before grpc-js sees the call, and Node offers no switch to
 * relax that check. So the client→server byte stream is parsed into frames here; the
 * header block of every HEADERS (+ CONTINUATION) is decoded, fixed, re-encoded and
 * re-framed; all other frames and all server→client bytes pass through untouched.
 *
 * HPACK state: ONE decoder table per connection follows the client's encoder, so every
 * header block is decoded (also those that need no change). Blocks are re-encoded with
 * static-table references and literals "without indexing" / "never indexed" only: the
 * server's decoder table stays empty, never out of step with what it was sent.
 *
 * Re-emitted frames carry at most 16384 octets of payload: the smallest
 * SETTINGS_MAX_FRAME_SIZE any HTTP/2 peer may announce (RFC 9113 §6.5.2), so always
 * acceptable to the server whatever it announced. Padding is dropped (it is only cover for
 * length), PRIORITY fields are kept.
 *
 * Threat: a local, hostile client crashing the agent or making it hold unbounded memory
 * through this parser. Header blocks are bounded in encoded size (`maxHeaderBlockBytes`)
 * and decoded size (`maxHeaderListBytes`, which stops HPACK "bombs" that reference one big
 * table entry many times); other frames are streamed, never buffered whole. Any framing or
 * HPACK violation throws `MayflyError('ERR_WORKLOAD_API_HTTP2')`, and the stream wrappers
 * turn that into destroying the connection (fail closed): the rewriter never guesses.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import hpack from 'hpack.js';
import { MayflyError } from '../spiffe/errors.js';
import { socketPair } from './socketpair.linux.js';

/** The client connection preface (RFC 9113 §3.4). */
export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_HEADER_BYTES = 9;
const TYPE_HEADERS = 0x1;
const TYPE_PUSH_PROMISE = 0x5;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** Largest payload of a frame we emit: the minimum SETTINGS_MAX_FRAME_SIZE (see above). */
const EMIT_MAX_FRAME_PAYLOAD = 16384;

/**
 * Characters of an RFC 3986 authority (userinfo, host incl. IP-literal, port and
 * percent-encoding), the set nghttp2 accepts. A path (`/`) is not among them.
 */
const AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

export interface AuthorityRewriterOptions {
  /** Authority put in place of an invalid one (default `localhost`); must itself be valid. */
  replacement?: string;
  /** Largest encoded header block (all HEADERS + CONTINUATION payloads), bytes (default 64 KiB). */
  maxHeaderBlockBytes?: number;
  /** Largest decoded header list (RFC 7541 entry sizes: name + value + 32), bytes (default 64 KiB). */
  maxHeaderListBytes?: number;
  /**
   * The server's SETTINGS_HEADER_TABLE_SIZE, which bounds the client's dynamic table size
   * updates (default 4096, Node's and the protocol's default). A client that asks for
   * more is refused.
   */
  headerTableSize?: number;
}

/** One decoded header field (name and value as latin1 strings: byte for byte). */
export interface HeaderField {
  name: string;
  value: string;
  neverIndex: boolean;
}

/** True when `value` may stand as an HTTP/2 `:authority` (RFC 3986 characters only). */
export function isValidAuthority(value: string): boolean {
  return AUTHORITY.test(value);
}

function fail(message: string, cause?: unknown): never {
  throw new MayflyError('ERR_WORKLOAD_API_HTTP2', message, cause === undefined ? undefined : { cause });
}

// --- HPACK encoding (static table only) ---------------------------------------------

interface StaticName {
  index: number;
  values: Map<string, number>;
}

/** name → first static index and exact (name, value) indices; a Map (no prototype keys). */
const STATIC_TABLE: Map<string, StaticName> = (() => {
  const m = new Map<string, StaticName>();
  hpack['static-table'].table.forEach((e, i) => {
    let s = m.get(e.name);
    if (s === undefined) {
      s = { index: i + 1, values: new Map() };
      m.set(e.name, s);
    }
    if (!s.values.has(e.value)) s.values.set(e.value, i + 1);
  });
  return m;
})();

/** RFC 7541 §5.1 integer with an N-bit prefix; `first` holds the pattern bits above it. */
function pushInt(out: number[], first: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

/** RFC 7541 §5.2 string literal, raw octets (no Huffman). */
function pushString(out: number[], s: string): void {
  pushInt(out, 0x00, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * Encodes a header list without touching any dynamic table: an exact static match is
 * "indexed" (§6.1); anything else is a literal "without indexing" (§6.2.2) or, when the
 * client marked it so, "never indexed" (§6.2.3), naming a static entry when it can.
 */
export function encodeHeaderBlock(fields: readonly HeaderField[]): Buffer {
  const out: number[] = [];
  for (const f of fields) {
    const s = STATIC_TABLE.get(f.name);
    const exact = f.neverIndex ? undefined : s?.values.get(f.value);
    if (exact !== undefined) {
      pushInt(out, 0x80, 7, exact);
      continue;
    }
    pushInt(out, f.neverIndex ? 0x10 : 0x00, 4, s?.index ?? 0);
    if (s === undefined) pushString(out, f.name);
    pushString(out, f.value);
  }
  return Buffer.from(out);
}

// --- The frame rewriter ---------------------------------------------------------------

const enum State {
  Preface,
  FrameHeader,
  PassThrough,
  Collect,
}

/**
 * The client→server half of the rewrite, without any I/O: `push()` bytes as they arrive,
 * write what it returns. Throws `MayflyError('ERR_WORKLOAD_API_HTTP2')` on any violation;
 * after a throw the instance is unusable (the connection must be dropped).
 */
export class AuthorityRewriter {
  /** Header blocks whose `:authority` or `host` was replaced. */
  rewrites = 0;
  /** Header blocks decoded and re-encoded. */
  headerBlocks = 0;

  private readonly replacement: string;
  private readonly maxBlock: number;
  private readonly maxList: number;
  private readonly table;
  private state = State.Preface;
  private want = CONNECTION_PREFACE.length;
  private acc: Buffer[] = [];
  private accLen = 0;
  /** PassThrough: payload octets of the current frame still to forward. */
  private remaining = 0;
  /** Collect: the frame being collected. */
  private frameType = 0;
  private frameFlags = 0;
  private frameStream = 0;
  /** Header block in progress (HEADERS seen, END_HEADERS not yet). */
  private block: { stream: number; flags: number; priority: Buffer | undefined; fragments: Buffer[]; size: number } | undefined;
  private failed = false;

  constructor(options: AuthorityRewriterOptions = {}) {
    this.replacement = options.replacement ?? 'localhost';
    if (this.replacement === '' || !isValidAuthority(this.replacement)) {
      throw new TypeError('replacement must be a non-empty RFC 3986 authority');
    }
    this.maxBlock = options.maxHeaderBlockBytes ?? 64 * 1024;
    this.maxList = options.maxHeaderListBytes ?? 64 * 1024;
    const tableSize = options.headerTableSize ?? 4096;
    for (const [k, v] of [['maxHeaderBlockBytes', this.maxBlock], ['maxHeaderListBytes', this.maxList], ['headerTableSize', tableSize]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`${k} must be a non-negative integer`);
    }
    this.table = hpack.table.create({ maxSize: tableSize });
  }

  /** Feeds client bytes; returns the bytes to send to the server, in order. */
  push(chunk: Buffer): Buffer[] {
    if (this.failed) fail('the HTTP/2 rewriter already failed on this connection');
    try {
      return this.consume(chunk);
    } catch (err) {
      this.failed = true;
      if (err instanceof MayflyError) throw err;
      return fail('malformed HTTP/2 header block from the Workload API client', err);
    }
  }

  private consume(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.state === State.PassThrough) {
        const take = Math.min(this.remaining, chunk.length - off);
        out.push(chunk.subarray(off, off + take));
        off += take;
        this.remaining -= take;
        if (this.remaining === 0) this.expectFrameHeader();
        continue;
      }
      const take = Math.min(this.want - this.accLen, chunk.length - off);
      this.acc.push(chunk.subarray(off, off + take));
      this.accLen += take;
      off += take;
      if (this.accLen < this.want) continue;
      const data = this.acc.length === 1 ? (this.acc[0] as Buffer) : Buffer.concat(this.acc, this.accLen);
      this.acc = [];
      this.accLen = 0;
      if (this.state === State.Preface) {
        if (!data.equals(CONNECTION_PREFACE)) fail('the client did not open with the HTTP/2 connection preface');
        out.push(data);
        this.expectFrameHeader();
      } else if (this.state === State.FrameHeader) {
        this.onFrameHeader(Buffer.from(data), out);
      } else {
        this.onHeaderPayload(data, out);
      }
    }
    return out;
  }

  private expectFrameHeader(): void {
    this.state = State.FrameHeader;
    this.want = FRAME_HEADER_BYTES;
  }

  private onFrameHeader(h: Buffer, out: Buffer[]): void {
    const length = h.readUIntBE(0, 3);
    const type = h[3] as number;
    const flags = h[4] as number;
    const stream = h.readUInt32BE(5) & 0x7fffffff;
    if (this.block !== undefined && (type !== TYPE_CONTINUATION || stream !== this.block.stream)) {
      fail('header block interrupted: expected a CONTINUATION frame on the same stream');
    }
    if (type === TYPE_PUSH_PROMISE) fail('a client may not send PUSH_PROMISE');
    if (type === TYPE_CONTINUATION && this.block === undefined) fail('CONTINUATION frame without a header block in progress');
    if (type !== TYPE_HEADERS && type !== TYPE_CONTINUATION) {
      out.push(h);
      this.remaining = length;
      if (length === 0) this.expectFrameHeader();
      else this.state = State.PassThrough;
      return;
    }
    if ((this.block?.size ?? 0) + length > this.maxBlock) {
      fail(`header block larger than ${this.maxBlock} bytes`);
    }
    this.frameType = type;
    this.frameFlags = flags;
    this.frameStream = stream;
    if (length === 0) {
      this.onHeaderPayload(Buffer.alloc(0), out);
    } else {
      this.state = State.Collect;
      this.want = length;
    }
  }

  private onHeaderPayload(p: Buffer, out: Buffer[]): void {
    this.expectFrameHeader();
    const flags = this.frameFlags;
    if (this.frameType === TYPE_HEADERS) {
      let start = 0;
      let end = p.length;
      if (flags & FLAG_PADDED) {
        if (p.length < 1) fail('PADDED HEADERS frame without a pad length');
        end -= p[0] as number;
        start = 1;
      }
      let priority: Buffer | undefined;
      if (flags & FLAG_PRIORITY) {
        priority = Buffer.from(p.subarray(start, start + 5));
        start += 5;
      }
      if (end < start) fail('HEADERS frame padding or priority longer than its payload');
      this.block = { stream: this.frameStream, flags, priority, fragments: [], size: 0 };
      this.addFragment(p.subarray(start, end));
    } else {
      this.addFragment(p);
    }
    const block = this.block as NonNullable<typeof this.block>;
    block.size += p.length;
    if (flags & FLAG_END_HEADERS) {
      this.block = undefined;
      this.emitBlock(block, out);
    }
  }

  private addFragment(f: Buffer): void {
    if (f.length > 0) (this.block as NonNullable<typeof this.block>).fragments.push(f);
  }

  private emitBlock(block: NonNullable<typeof this.block>, out: Buffer[]): void {
    const fields = this.decode(Buffer.concat(block.fragments));
    let rewritten = false;
    for (const f of fields) {
      if ((f.name === ':authority' || f.name === 'host') && !isValidAuthority(f.value)) {
        f.value = this.replacement;
        rewritten = true;
      }
    }
    if (rewritten) this.rewrites++;
    this.headerBlocks++;
    const encoded = encodeHeaderBlock(fields);
    const prio = block.priority ?? Buffer.alloc(0);
    let pos = 0;
    let first = true;
    do {
      const room = EMIT_MAX_FRAME_PAYLOAD - (first ? prio.length : 0);
      const piece = encoded.subarray(pos, pos + room);
      pos += piece.length;
      const last = pos >= encoded.length;
      const type = first ? TYPE_HEADERS : TYPE_CONTINUATION;
      let flags = first ? block.flags & (FLAG_END_STREAM | FLAG_PRIORITY) : 0;
      if (last) flags |= FLAG_END_HEADERS;
      const header = Buffer.alloc(FRAME_HEADER_BYTES);
      const payloadLength = piece.length + (first ? prio.length : 0);
      header.writeUIntBE(payloadLength, 0, 3);
      header[3] = type;
      header[4] = flags;
      header.writeUInt32BE(block.stream, 5);
      out.push(header);
      if (first && prio.length > 0) out.push(prio);
      if (piece.length > 0) out.push(piece);
      first = false;
    } while (pos < encoded.length);
  }

  /** Decodes one header block against (and updating) the connection's dynamic table. */
  private decode(block: Buffer): HeaderField[] {
    const dec = hpack.decoder.create();
    if (block.length > 0) dec.push(block);
    const fields: HeaderField[] = [];
    let listSize = 0;
    const str = (s: Buffer | number[]): string => (Buffer.isBuffer(s) ? s : Buffer.from(s)).toString('latin1');
    while (!dec.isEmpty()) {
      let field: HeaderField;
      if (dec.decodeBit()) {
        // §6.1 indexed field
        const e = this.table.lookup(dec.decodeInt());
        field = { name: e.name, value: e.value, neverIndex: false };
      } else {
        const incremental = dec.decodeBit() === 1;
        let neverIndex = false;
        if (!incremental) {
          if (dec.decodeBit()) {
            // §6.3 dynamic table size update (bounded by the table's protocol maximum)
            this.table.updateSize(dec.decodeInt());
            continue;
          }
          neverIndex = dec.decodeBit() === 1;
        }
        const index = dec.decodeInt();
        const name = index === 0 ? str(dec.decodeStr()) : this.table.lookup(index).name;
        const value = str(dec.decodeStr());
        if (incremental) this.table.add(name, value, name.length, value.length);
        field = { name, value, neverIndex };
      }
      listSize += field.name.length + field.value.length + 32;
      if (listSize > this.maxList) fail(`decoded header list larger than ${this.maxList} bytes`);
      fields.push(field);
    }
    return fields;
  }
}

// --- Stream wrappers ------------------------------------------------------------------

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
