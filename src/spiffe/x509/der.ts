/**
 * @module spiffe/x509/der
 *
 * A tiny DER encoder and a strict TLV reader: just enough to assemble TBSCertificates from
 * precomputed byte chunks (the fast mint path) and to slice a certificate into its parts
 * without trusting a general ASN.1 library's leniency.
 *
 * Threat: a parser that accepts BER (indefinite lengths, long-form lengths for short
 * values, trailing bytes) lets two verifiers see different certificates in the same bytes.
 * `readTlv` accepts minimal definite-length DER only.
 */

/** Encodes a DER length field. */
export function encodeLength(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  if (len < 0x100) return Buffer.from([0x81, len]);
  if (len < 0x10000) return Buffer.from([0x82, len >> 8, len & 0xff]);
  if (len < 0x1000000) return Buffer.from([0x83, len >> 16, (len >> 8) & 0xff, len & 0xff]);
  throw new RangeError(`DER value of ${len} bytes is too large`);
}

/** Size of the length field for a value of `len` bytes. */
export function lengthSize(len: number): number {
  return len < 0x80 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 4;
}

/** Writes a length field into `buf` at `off`; returns the new offset. */
export function writeLength(buf: Buffer, off: number, len: number): number {
  if (len < 0x80) {
    buf[off] = len;
    return off + 1;
  }
  const n = lengthSize(len) - 1;
  buf[off++] = 0x80 | n;
  for (let i = n - 1; i >= 0; i--) buf[off++] = (len >>> (8 * i)) & 0xff;
  return off;
}

/** One TLV: `tag` with the given content chunks (concatenated). */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  let len = 0;
  for (const c of content) len += c.length;
  const out = Buffer.allocUnsafe(1 + lengthSize(len) + len);
  out[0] = tag;
  let off = writeLength(out, 1, len);
  for (const c of content) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export const seq = (...c: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...c);
export const set = (...c: Uint8Array[]): Buffer => tlv(TAG.SET, ...c);
export const octetString = (c: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, c);
/** BIT STRING with zero unused bits. */
export const bitString = (c: Uint8Array): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), c);
export const NULL_DER = Buffer.from([0x05, 0x00]);
export const TRUE_DER = Buffer.from([0x01, 0x01, 0xff]);

/** Minimal DER INTEGER from a non-negative unsigned big-endian magnitude. */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.subarray(start);
  if (body.length === 0) return Buffer.from([TAG.INTEGER, 1, 0]);
  return (body[0] as number) & 0x80 ? tlv(TAG.INTEGER, Buffer.from([0]), body) : tlv(TAG.INTEGER, body);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new RangeError(`integer ${n} out of range`);
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  return unsignedInteger(Buffer.from(bytes));
}

/** DER OBJECT IDENTIFIER from dotted form. */
export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map((p) => Number(p));
  if (parts.length < 2 || parts.some((p) => !Number.isSafeInteger(p) || p < 0)) throw new RangeError(`bad OID ${dotted}`);
  const arcs = [(parts[0] as number) * 40 + (parts[1] as number), ...parts.slice(2)];
  const bytes: number[] = [];
  for (const arc of arcs) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(v % 128);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] as number) | 0x80;
    bytes.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(bytes));
}

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/** RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, 'Z'. */
export function encodeTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const rest = pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) + pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds()) + 'Z';
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(pad2(y % 100) + rest, 'latin1'));
  if (y < 0 || y > 9999) throw new RangeError(`year ${y} cannot be encoded`);
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, '0') + rest, 'latin1'));
}

export interface Tlv {
  tag: number;
  /** offset of the tag byte */
  start: number;
  /** offset of the first content byte */
  contentStart: number;
  /** offset just past the content */
  end: number;
}

export class DerError extends Error {}

/** Reads one strict-DER TLV at `off` inside `buf[0..limit)`. Throws DerError on anything else. */
export function readTlv(buf: Uint8Array, off: number, limit: number = buf.length): Tlv {
  if (off + 2 > limit) throw new DerError('truncated TLV header');
  const tag = buf[off] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let p = off + 1;
  const first = buf[p++] as number;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length field too long');
    if (p + n > limit) throw new DerError('truncated length');
    if (buf[p] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p++] as number);
    if (len < 0x80) throw new DerError('non-minimal length');
  }
  if (p + len > limit) throw new DerError('content runs past the end');
  return { tag, start: off, contentStart: p, end: p + len };
}

/** The children of a constructed TLV, in order. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let off = parent.contentStart;
  while (off < parent.end) {
    const t = readTlv(buf, off, parent.end);
    out.push(t);
    off = t.end;
  }
  return out;
}

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new DerError(what);
}

/** Certificates and CRLs repeat a few dozen OIDs; decoding each once keeps parsing cheap. */
const oidCache = new Map<string, string>();

/** The dotted form of an OBJECT IDENTIFIER TLV (minimal arcs only). Throws DerError otherwise. */
export function readOid(buf: Uint8Array, t: Tlv): string {
  need(t.tag === TAG.OID && t.end > t.contentStart, 'expected an OBJECT IDENTIFIER');
  const key = Buffer.from(buf.buffer, buf.byteOffset + t.contentStart, t.end - t.contentStart).toString('latin1');
  const hit = oidCache.get(key);
  if (hit !== undefined) return hit;
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.contentStart; i < t.end; i++) {
    const b = buf[i] as number;
    need(!(v === 0 && b === 0x80), 'non-minimal OID arc');
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0;
    } else need(i + 1 < t.end, 'truncated OID');
  }
  const first = arcs[0] as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  const dotted = [...head, ...arcs.slice(1)].join('.');
  if (oidCache.size < 512) oidCache.set(key, dotted);
  return dotted;
}

/** A UTCTime or GeneralizedTime TLV (the `Z` forms RFC 5280 requires). Throws DerError otherwise. */
export function readTime(buf: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('latin1', t.contentStart, t.end);
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME) {
    m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s);
    need(m !== null, `UTCTime ${JSON.stringify(s)} is not YYMMDDHHMMSSZ`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else {
    need(t.tag === TAG.GENERALIZED_TIME, 'a time must be UTCTime or GeneralizedTime');
    m = /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s);
    need(m !== null, `GeneralizedTime ${JSON.stringify(s)} is not YYYYMMDDHHMMSSZ`);
    year = Number(m[1]);
  }
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  need(date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && se < 60, `invalid date ${JSON.stringify(s)}`);
  if (year < 100) date.setUTCFullYear(year);
  return date;
}
