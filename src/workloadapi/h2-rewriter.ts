/**
 * @module workloadapi/h2-rewriter
 *
 * The client→server half of the `:authority` rewrite, without any I/O: parses the bytes a
 * Workload API client sends into HTTP/2 frames and replaces an `:authority` (and `host`)
 * that is not a valid RFC 3986 authority. The stream plumbing that puts it in front of
 * grpc-js, and why it exists (grpc-java sends the socket path), are in h2-authority.ts;
 * the HPACK decoding and encoding in h2-hpack.ts.
 *
 * The header block of every HEADERS (+ CONTINUATION) is decoded, fixed, re-encoded and
 * re-framed; all other frames pass through untouched.
 *
 * Re-emitted frames carry at most 16384 octets of payload: the smallest
 * SETTINGS_MAX_FRAME_SIZE any HTTP/2 peer may announce (RFC 9113 §6.5.2), so always
 * acceptable to the server whatever it announced. Padding is dropped (it is only cover for
 * length), PRIORITY fields are kept.
 *
 * Threat: a local, hostile client crashing the agent or making it hold unbounded memory
 * through this parser. Header blocks are bounded in encoded size (`maxHeaderBlockBytes`)
 * and decoded size (`maxHeaderListBytes`, enforced by the HPACK decoder); other frames are
 * streamed, never buffered whole. Any framing or HPACK violation throws
 * `MayflyError('ERR_WORKLOAD_API_HTTP2')`, after which the instance refuses all input, and
 * the stream wrappers turn that into destroying the connection (fail closed): the rewriter
 * never guesses.
 */
import { MayflyError } from '../spiffe/errors.js';
import { encodeHeaderBlock, HeaderBlockDecoder } from './h2-hpack.js';

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

/** True when `value` may stand as an HTTP/2 `:authority` (RFC 3986 characters only). */
export function isValidAuthority(value: string): boolean {
  return AUTHORITY.test(value);
}

function fail(message: string, cause?: unknown): never {
  throw new MayflyError('ERR_WORKLOAD_API_HTTP2', message, cause === undefined ? undefined : { cause });
}

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
  /** The connection's HPACK decoder (h2-hpack.ts). */
  private readonly decoder: HeaderBlockDecoder;
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
    const maxList = options.maxHeaderListBytes ?? 64 * 1024;
    const tableSize = options.headerTableSize ?? 4096;
    for (const [k, v] of [['maxHeaderBlockBytes', this.maxBlock], ['maxHeaderListBytes', maxList], ['headerTableSize', tableSize]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`${k} must be a non-negative integer`);
    }
    this.decoder = new HeaderBlockDecoder({ headerTableSize: tableSize, maxHeaderListBytes: maxList });
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
    const fields = this.decoder.decode(Buffer.concat(block.fragments));
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
}
