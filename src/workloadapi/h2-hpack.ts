/**
 * @module workloadapi/h2-hpack
 *
 * HPACK (RFC 7541) for the `:authority` rewriter (h2-rewriter.ts): decoding a client's
 * header blocks against the connection's dynamic table, and encoding them again without one.
 *
 * HPACK state: ONE decoder table per connection follows the client's encoder, so every
 * header block is decoded (also those that need no change). Blocks are re-encoded with
 * static-table references and literals "without indexing" / "never indexed" only: the
 * server's decoder table stays empty, never out of step with what it was sent.
 *
 * Threat: a local, hostile client making the agent hold unbounded memory through the
 * decoder. The decoded size of a header list is bounded (`maxHeaderListBytes`, which stops
 * HPACK "bombs" that reference one big table entry many times; past it
 * `MayflyError('ERR_WORKLOAD_API_HTTP2')`), and the dynamic table by the server's
 * SETTINGS_HEADER_TABLE_SIZE (a size update asking for more throws). Malformed input makes
 * hpack.js throw; the rewriter turns every such throw into dropping the connection.
 */
import hpack from 'hpack.js';
import { MayflyError } from '../spiffe/errors.js';

/** One decoded header field (name and value as latin1 strings: byte for byte). */
export interface HeaderField {
  name: string;
  value: string;
  neverIndex: boolean;
}

// --- HPACK decoding (the connection's dynamic table) ---------------------------------

export interface HeaderBlockDecoderConfig {
  /** The server's SETTINGS_HEADER_TABLE_SIZE: the most the client's table size updates may ask for. */
  headerTableSize: number;
  /** Largest decoded header list (RFC 7541 entry sizes: name + value + 32), bytes. */
  maxHeaderListBytes: number;
}

/** Decodes one connection's header blocks, in order, keeping its dynamic table in step with the client's encoder. */
export class HeaderBlockDecoder {
  private readonly maxList: number;
  private readonly table;

  constructor(config: HeaderBlockDecoderConfig) {
    this.maxList = config.maxHeaderListBytes;
    this.table = hpack.table.create({ maxSize: config.headerTableSize });
  }

  /** Decodes one header block against (and updating) the connection's dynamic table. */
  decode(block: Buffer): HeaderField[] {
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
      if (listSize > this.maxList) throw new MayflyError('ERR_WORKLOAD_API_HTTP2', `decoded header list larger than ${this.maxList} bytes`);
      fields.push(field);
    }
    return fields;
  }
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
