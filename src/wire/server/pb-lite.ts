/**
 * @module wire/server/pb-lite
 *
 * A small table-driven protobuf codec over protobufjs's JSON descriptor format (what
 * `proto/server.json` holds), for the CLI: loading protobufjs and generating its codecs
 * cost a CLI call ~25 ms of its start-up (issue 18). It speaks what `proto/server.proto`
 * uses — `string`, `bytes`, `bool`, `int32`, `int64`, enums, messages, `repeated`,
 * `map<scalar, …>` and `oneof` — with the conversions proto-loader's codecs use
 * (`keepCase`, `longs: Number`, `bytes: Buffer`, `enums: String`, `defaults: true`,
 * `oneofs: true`), byte for byte: fields written in field-number order, repeated numbers
 * packed, a field given (even as a zero value) written. `codecs.test.ts` checks every
 * method against proto-loader's codecs on generated messages.
 *
 * Threat: a hostile or broken peer's bytes. Truncated input, a length past the end, a
 * field of the wrong wire type or an end-group tag throws (and nesting deeper than 64
 * levels, should the schema ever allow it); nothing reads outside the buffer.
 */
import type { EnumType, FieldInfo, MessageType, Scalar } from './pb-lite-schema.js';

export { PbLiteRoot, type JsonNamespace, type MessageType } from './pb-lite-schema.js';

const MAX_DEPTH = 64;

// ---------------------------------------------------------------- encoding

class Writer {
  #buf = Buffer.allocUnsafe(256);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  varint(v: bigint | number): void {
    if (typeof v === 'number' && v >= 0 && v < 0x10000000 && Number.isInteger(v)) {
      this.#room(4);
      let n = v;
      while (n > 0x7f) {
        this.#buf[this.#len++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
      this.#buf[this.#len++] = n;
      return;
    }
    let x = BigInt.asUintN(64, BigInt(v));
    this.#room(10);
    while (x > 0x7fn) {
      this.#buf[this.#len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.#buf[this.#len++] = Number(x);
  }

  tag(id: number, wire: number): void {
    this.varint(id * 8 + wire);
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  finish(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** protobufjs's Long.fromValue for a signed 64-bit field, as a bigint. */
function int64Of(v: unknown): bigint {
  if (typeof v === 'bigint') return BigInt.asIntN(64, v);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 0n;
    if (v >= 2 ** 63) return (1n << 63n) - 1n;
    if (v <= -(2 ** 63)) return -(1n << 63n);
    return BigInt(Math.trunc(v));
  }
  if (typeof v === 'string') {
    try {
      return BigInt.asIntN(64, BigInt(v.trim()));
    } catch {
      throw new TypeError(`not an integer: ${JSON.stringify(v)}`);
    }
  }
  if (isObject(v) && typeof v['low'] === 'number' && typeof v['high'] === 'number') return BigInt.asIntN(64, (BigInt(v['high'] >>> 0) << 32n) | BigInt(v['low'] >>> 0));
  throw new TypeError('not an integer');
}

/** One scalar's bytes (varint value or length-delimited payload), as protobufjs's fromObject converts it. */
function scalarValue(type: Scalar, v: unknown): bigint | Uint8Array {
  switch (type) {
    case 'string':
      return Buffer.from(String(v), 'utf8');
    case 'bytes':
      if (typeof v === 'string') return Buffer.from(v, 'base64');
      if (v instanceof Uint8Array) return v;
      if (Array.isArray(v)) return Uint8Array.from(v as number[]);
      throw new TypeError('bytes expected');
    case 'bool':
      return v ? 1n : 0n;
    case 'int32':
      return BigInt((v as number) | 0);
    case 'int64':
      return int64Of(v);
  }
}

/** An enum value as fromObject takes it: a name or a number; undefined for an unknown name. */
function enumValue(t: EnumType, v: unknown, repeated: boolean): number | undefined {
  if (typeof v === 'string') {
    const n = t.byName.get(v);
    if (n !== undefined) return n;
  } else if (typeof v === 'number') {
    return t.byNumber.has(v) ? v : v | 0;
  }
  return repeated ? (t.byName.get(t.defaultName) ?? 0) : undefined;
}

function writeValue(w: Writer, f: FieldInfo, id: number, v: unknown, depth: number, scalar: Scalar | undefined = f.scalar): void {
  if (f.message !== undefined && scalar === undefined) {
    if (!isObject(v)) throw new TypeError(`${f.message.fullName}: object expected`);
    w.tag(id, 2);
    w.bytes(encodeMessage(f.message, v, depth + 1));
    return;
  }
  if (f.enumType !== undefined && scalar === undefined) {
    const n = enumValue(f.enumType, v, f.repeated);
    if (n === undefined) return;
    w.tag(id, 0);
    w.varint(n);
    return;
  }
  const s = scalar as Scalar;
  const value = scalarValue(s, v);
  if (typeof value === 'bigint') {
    w.tag(id, 0);
    w.varint(value);
  } else {
    w.tag(id, 2);
    w.bytes(value);
  }
}

/** `object` (the shape proto-loader's serializers take) as `type`'s bytes. */
export function encodeMessage(type: MessageType, object: unknown, depth = 0): Buffer {
  if (!isObject(object)) throw new TypeError(`${type.fullName}: object expected`);
  if (depth > MAX_DEPTH) throw new Error('maximum nesting depth exceeded');
  const w = new Writer();
  for (const f of type.fields) {
    const v = object[f.name];
    if (v === undefined || v === null) continue;
    if (f.keyType !== undefined) {
      if (!isObject(v)) throw new TypeError(`${type.fullName}.${f.name}: object expected`);
      for (const [k, item] of Object.entries(v)) {
        const entry = new Writer();
        writeValue(entry, f, 1, k, depth, f.keyType);
        writeValue(entry, f, 2, item, depth);
        w.tag(f.id, 2);
        w.bytes(entry.finish());
      }
    } else if (f.repeated) {
      if (!Array.isArray(v)) throw new TypeError(`${type.fullName}.${f.name}: array expected`);
      if (v.length === 0) continue;
      const packable = f.enumType !== undefined || (f.scalar !== undefined && f.scalar !== 'string' && f.scalar !== 'bytes');
      if (packable) {
        const packed = new Writer();
        for (const item of v) {
          const n = f.enumType !== undefined ? enumValue(f.enumType, item, true) : scalarValue(f.scalar as Scalar, item);
          packed.varint(n as bigint | number);
        }
        w.tag(f.id, 2);
        w.bytes(packed.finish());
      } else {
        for (const item of v) writeValue(w, f, f.id, item, depth);
      }
    } else {
      writeValue(w, f, f.id, v, depth);
    }
  }
  return w.finish();
}

// ---------------------------------------------------------------- decoding

class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** A varint that fits 28 bits (tags, lengths) as a number; larger ones through `varint`. */
  small(): number {
    const start = this.pos;
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (this.pos >= this.end) throw new RangeError('index out of range: truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= (b & 0x7f) << shift;
      if (b < 0x80) return result;
    }
    this.pos = start;
    return Number(this.varint());
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) throw new RangeError('index out of range: truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, result);
    }
    throw new Error('invalid varint encoding');
  }

  sub(): Reader {
    const len = this.small();
    if (len > this.end - this.pos) throw new RangeError('index out of range: length past the end');
    const r = new Reader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        this.#advance(8);
        return;
      case 2:
        this.sub();
        return;
      case 5:
        this.#advance(4);
        return;
      case 3:
        for (;;) {
          const w = this.small() % 8;
          if (w === 4) return;
          this.skip(w);
        }
      default:
        throw new Error(`invalid wire type ${wire}`);
    }
  }

  #advance(n: number): void {
    if (this.pos + n > this.end) throw new RangeError('index out of range');
    this.pos += n;
  }
}

function readScalar(r: Reader, type: Scalar, wire: number): unknown {
  if (type === 'string' || type === 'bytes') {
    if (wire !== 2) throw new Error(`wire type ${wire} for a ${type} field`);
    const s = r.sub();
    return type === 'string' ? s.buf.toString('utf8', s.pos, s.end) : s.buf.subarray(s.pos, s.end);
  }
  if (wire !== 0) throw new Error(`wire type ${wire} for a ${type} field`);
  const v = r.varint();
  if (type === 'bool') return v !== 0n;
  if (type === 'int32') return Number(BigInt.asIntN(32, v));
  return Number(BigInt.asIntN(64, v));
}

function defaultOf(f: FieldInfo): unknown {
  if (f.message !== undefined) return null;
  if (f.enumType !== undefined) return f.enumType.defaultName;
  switch (f.scalar) {
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    case 'bool':
      return false;
    default:
      return 0;
  }
}

function enumName(t: EnumType, n: number): string | number {
  return t.byNumber.get(n) ?? n;
}

function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function readField(r: Reader, f: FieldInfo, wire: number, depth: number, scalar: Scalar | undefined = f.scalar): unknown {
  if (scalar !== undefined) return readScalar(r, scalar, wire);
  if (f.enumType !== undefined) return enumName(f.enumType, readScalar(r, 'int32', wire) as number);
  if (wire !== 2) throw new Error(`wire type ${wire} for a message field`);
  return decodeReader(f.message as MessageType, r.sub(), depth + 1);
}

function decodeReader(type: MessageType, r: Reader, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new Error('max depth exceeded');
  const out: Record<string, unknown> = {};
  for (const f of type.fields) {
    if (f.keyType !== undefined) out[f.name] = {};
    else if (f.repeated) out[f.name] = [];
    else if (f.oneof === undefined) out[f.name] = defaultOf(f);
  }
  while (r.pos < r.end) {
    const t = r.small();
    const id = Math.floor(t / 8);
    const wire = t % 8;
    if (wire === 4) throw new Error('unexpected end group');
    const f = type.byId.get(id);
    if (f === undefined) {
      r.skip(wire);
      continue;
    }
    if (f.keyType !== undefined) {
      if (wire !== 2) throw new Error(`wire type ${wire} for a map field`);
      const e = r.sub();
      let key: unknown = defaultOf({ ...f, scalar: f.keyType, enumType: undefined, message: undefined });
      let value: unknown = defaultOf(f);
      while (e.pos < e.end) {
        const et = e.small();
        const ew = et % 8;
        if (ew === 4) throw new Error('unexpected end group');
        if (Math.floor(et / 8) === 1) key = readField(e, f, ew, depth, f.keyType);
        else if (Math.floor(et / 8) === 2) value = readField(e, f, ew, depth);
        else e.skip(ew);
      }
      setOwn(out[f.name] as Record<string, unknown>, String(key), value);
    } else if (f.repeated) {
      const list = out[f.name] as unknown[];
      const packable = f.enumType !== undefined || (f.scalar !== undefined && f.scalar !== 'string' && f.scalar !== 'bytes');
      if (packable && wire === 2) {
        const p = r.sub();
        while (p.pos < p.end) list.push(readField(p, f, 0, depth));
      } else {
        list.push(readField(r, f, wire, depth));
      }
    } else {
      out[f.name] = readField(r, f, wire, depth);
      if (f.oneof !== undefined) out[f.oneof] = f.name;
    }
  }
  return out;
}

/** `bytes` as `type`, in the shape proto-loader's deserializers give. */
export function decodeMessage(type: MessageType, bytes: Buffer): Record<string, unknown> {
  return decodeReader(type, new Reader(bytes), 0);
}
