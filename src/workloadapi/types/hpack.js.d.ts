/**
 * The part of `hpack.js` (2.1.6, no types of its own) that Mayfly uses: the bit-level
 * decoder, the header table, the static table, and (in tests) the compressor.
 */
declare module 'hpack.js' {
  interface HpackTableEntry {
    name: string;
    value: string;
    nameSize: number;
    totalSize: number;
  }

  /** Static + dynamic header table (RFC 7541 section 2.3). */
  interface HpackTable {
    /** Current dynamic table size in octets (entries' name + value + 32). */
    size: number;
    /** Current maximum size, set by dynamic table size updates. */
    maxSize: number;
    /** Ceiling for size updates (the SETTINGS_HEADER_TABLE_SIZE in force). */
    protocolMaxSize: number;
    /** Throws on index 0 or an index past the end. */
    lookup(index: number): HpackTableEntry;
    add(name: string, value: string, nameSize: number, valueSize: number): void;
    /** Throws when `size` exceeds `protocolMaxSize`. */
    updateSize(size: number): void;
  }

  /** Reads HPACK primitives from pushed bytes; every read past the end throws. */
  interface HpackDecoder {
    push(chunk: Buffer): void;
    isEmpty(): boolean;
    decodeBit(): number;
    decodeInt(): number;
    /** Raw strings come back as a Buffer, Huffman-coded ones as an array of octets. */
    decodeStr(): Buffer | number[];
  }

  interface HpackHeader {
    name: string;
    value: string;
    neverIndex?: boolean;
    huffman?: boolean;
    incremental?: boolean;
  }

  /** Encoder stream: `write(headers[])`, then `read()` the encoded block. */
  interface HpackCompressor {
    write(headers: HpackHeader[]): boolean;
    read(): Buffer | null;
    updateTableSize(size: number): void;
  }

  interface Hpack {
    table: { create(options: { maxSize: number; lookupDepth?: number }): HpackTable };
    decoder: { create(): HpackDecoder };
    compressor: { create(options: { table: { maxSize: number } }): HpackCompressor };
    'static-table': { table: HpackTableEntry[] };
  }

  const hpack: Hpack;
  export default hpack;
}
