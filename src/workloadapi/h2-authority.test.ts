import http2 from 'node:http2';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hpack from 'hpack.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import {
  AuthorityRewriter,
  AuthorityRewritingStream,
  CONNECTION_PREFACE,
  authoritySafeSocket,
  encodeHeaderBlock,
  isValidAuthority,
  type HeaderField,
} from './h2-authority.js';
import { h2Frame } from './testing.js';

// --- helpers ---------------------------------------------------------------------------

const frame = h2Frame;

const SETTINGS = frame(0x4, 0, 0, Buffer.alloc(0));
const JAVA_AUTHORITY = '/tmp/x/api.sock';

/** A header block from hpack.js's encoder (incremental indexing, Huffman), as a client would make. */
function hpackEncode(headers: { name: string; value: string }[], compressor = hpack.compressor.create({ table: { maxSize: 4096 } })): Buffer {
  compressor.write(headers);
  return compressor.read() ?? Buffer.alloc(0);
}

function requestHeaders(authority: string, extra: { name: string; value: string }[] = []): { name: string; value: string }[] {
  return [
    { name: ':method', value: 'POST' },
    { name: ':scheme', value: 'http' },
    { name: ':path', value: '/echo' },
    { name: ':authority', value: authority },
    { name: 'content-type', value: 'application/grpc' },
    ...extra,
  ];
}

interface RawFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/**
 * Speaks raw HTTP/2 to `path`: preface, SETTINGS, then `frames`. Resolves with what came
 * back for stream 1 (HEADERS or RST_STREAM), or `closed` when the server hung up first.
 */
function rawRequest(path: string, frames: Buffer[]): Promise<RawFrame | 'closed'> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    let buf = Buffer.alloc(0);
    c.on('error', () => {});
    c.on('close', () => resolve('closed'));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f: RawFrame = { type: buf[3] as number, flags: buf[4] as number, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        if (f.type === 0x4 && !(f.flags & 1)) c.write(frame(0x4, 1, 0, Buffer.alloc(0)));
        if (f.stream === 1 && (f.type === 0x1 || f.type === 0x3)) {
          resolve(f);
          c.destroy();
        }
      }
    });
    c.write(Buffer.concat([CONNECTION_PREFACE, SETTINGS, ...frames]));
  });
}

const RST_STREAM = 0x3;
const HEADERS = 0x1;
const PROTOCOL_ERROR = 1;

let dir: string;
let h2: http2.Http2Server | undefined;
let listener: net.Server | undefined;
let seen: http2.IncomingHttpHeaders[];
let streams: AuthorityRewritingStream[];

/** Node HTTP/2 server on a Unix socket; `wrap` decides what sits in front of it. */
async function serve(wrap: 'none' | 'stream' | 'socketpair'): Promise<string> {
  const server = http2.createServer();
  h2 = server;
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.respond({ ':status': 200, 'x-peer': String(stream.session?.socket.remoteAddress) });
    stream.end(JSON.stringify(headers));
  });
  server.on('sessionError', () => {});
  const path = join(dir, `s-${wrap}.sock`);
  listener = net.createServer((socket) => {
    socket.on('error', () => {});
    if (wrap === 'none') {
      server.emit('connection', socket);
    } else if (wrap === 'stream') {
      const s = new AuthorityRewritingStream({ socket });
      s.on('error', () => {});
      streams.push(s);
      server.emit('connection', s);
    } else {
      const inner = authoritySafeSocket(socket);
      Object.defineProperty(inner, 'remoteAddress', { value: 'conn-token-7', configurable: true });
      server.emit('connection', inner);
    }
  });
  const l = listener;
  await new Promise<void>((r) => l.listen(path, r));
  return path;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-h2auth-'));
  seen = [];
  streams = [];
});

afterEach(async () => {
  const l = listener;
  if (l !== undefined) await new Promise<void>((r) => l.close(() => r()));
  h2?.close();
  listener = undefined;
  h2 = undefined;
  await rm(dir, { recursive: true, force: true });
});

function get(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string; peer: string }> {
  return new Promise((resolve, reject) => {
    const req = client.request(headers);
    let body = '';
    let status = 0;
    let peer = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
      peer = String(h['x-peer']);
    });
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, body, peer }));
    req.on('error', reject);
    req.end();
  });
}

// --- tests -----------------------------------------------------------------------------

describe('isValidAuthority', () => {
  it('accepts RFC 3986 authorities and refuses paths', () => {
    for (const ok of ['localhost', 'a.b:443', 'user@[::1]:80', '%41x', '']) expect(isValidAuthority(ok), ok).toBe(true);
    for (const bad of ['/tmp/x/api.sock', 'a b', 'a\r\nb', 'é', 'a/b', 'a?b', 'a#b']) expect(isValidAuthority(bad), bad).toBe(false);
  });
});

describe('encodeHeaderBlock', () => {
  it('round-trips through hpack.js without adding to the decoder table, keeping never-indexed fields', () => {
    const fields: HeaderField[] = [
      { name: ':method', value: 'POST', neverIndex: false },
      { name: ':path', value: '/x', neverIndex: false },
      { name: 'workload.spiffe.io', value: 'true', neverIndex: false },
      { name: 'authorization', value: 'secret', neverIndex: true },
      { name: 'x-bin', value: '\u0000\u00ff\u0080', neverIndex: false },
      { name: 'long', value: 'v'.repeat(300), neverIndex: false },
    ];
    const block = encodeHeaderBlock(fields);
    const r = new AuthorityRewriter();
    const out = Buffer.concat(r.push(Buffer.concat([CONNECTION_PREFACE, frame(HEADERS, 0x4, 1, block)])));
    const again = out.subarray(CONNECTION_PREFACE.length + 9);
    // Re-encoding our own output is a fixed point: nothing was indexed, nothing changed.
    expect(again.equals(block)).toBe(true);
    // Fed again on a later stream, the same bytes decode the same way (no table state was made).
    const second = Buffer.concat(r.push(frame(HEADERS, 0x4, 3, block))).subarray(9);
    expect(second.equals(block)).toBe(true);
    expect(block[0]).toBe(0x83); // ":method: POST" is static index 3
  });
});

describe('AuthorityRewriter framing', () => {
  const prefaceAndSettings = Buffer.concat([CONNECTION_PREFACE, SETTINGS]);

  it('passes non-header frames through byte for byte, whatever the chunking', () => {
    const data = frame(0x0, 0x1, 1, Buffer.from('x'.repeat(40000)));
    const ping = frame(0x6, 0, 0, Buffer.alloc(8, 7));
    const input = Buffer.concat([prefaceAndSettings, data, ping, frame(0x8, 0, 0, Buffer.from([0, 0, 1, 0]))]);
    for (const step of [1, 7, 9, 1000, input.length]) {
      const r = new AuthorityRewriter();
      const out: Buffer[] = [];
      for (let i = 0; i < input.length; i += step) out.push(...r.push(input.subarray(i, i + step)));
      expect(Buffer.concat(out).equals(input), `chunk size ${step}`).toBe(true);
    }
  });

  it('streams DATA payloads instead of holding them', () => {
    const r = new AuthorityRewriter();
    r.push(prefaceAndSettings);
    const out = r.push(Buffer.concat([frame(0x0, 0, 1, Buffer.alloc(30000)).subarray(0, 9 + 100)]));
    expect(Buffer.concat(out).length).toBe(9 + 100);
  });

  it('refuses a bad preface, CONTINUATION out of place, and client PUSH_PROMISE', () => {
    const cases = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.concat([prefaceAndSettings, frame(0x9, 0x4, 1, Buffer.from([0x82]))]),
      Buffer.concat([prefaceAndSettings, frame(HEADERS, 0, 1, Buffer.from([0x82])), frame(0x0, 0, 1, Buffer.alloc(1))]),
      Buffer.concat([prefaceAndSettings, frame(HEADERS, 0, 1, Buffer.from([0x82])), frame(0x9, 0x4, 3, Buffer.from([0x84]))]),
      Buffer.concat([prefaceAndSettings, frame(0x5, 0x4, 1, Buffer.alloc(4))]),
      Buffer.concat([prefaceAndSettings, frame(HEADERS, 0x8 | 0x4, 1, Buffer.from([5, 0x82]))]),
    ];
    for (const c of cases) {
      const r = new AuthorityRewriter();
      expect(() => r.push(c)).toThrow(expect.objectContaining({ code: 'ERR_WORKLOAD_API_HTTP2' }));
      // Once failed, it stays failed.
      expect(() => r.push(SETTINGS)).toThrow(expect.objectContaining({ code: 'ERR_WORKLOAD_API_HTTP2' }));
    }
  });

  it('refuses an oversized header block as soon as its frame header arrives', () => {
    const r = new AuthorityRewriter({ maxHeaderBlockBytes: 64 * 1024 });
    r.push(prefaceAndSettings);
    r.push(frame(HEADERS, 0, 1, Buffer.alloc(16384, 0x82)));
    r.push(frame(0x9, 0, 1, Buffer.alloc(16384, 0x82)));
    r.push(frame(0x9, 0, 1, Buffer.alloc(16384, 0x82)));
    const h = frame(0x9, 0x4, 1, Buffer.alloc(16385, 0x82)).subarray(0, 9);
    expect(() => r.push(h)).toThrow(/header block larger than 65536 bytes/);
  });

  it('refuses a header list that decodes past the bound (HPACK bomb)', () => {
    const r = new AuthorityRewriter();
    r.push(prefaceAndSettings);
    // One 4000-byte entry added to the table, then referenced 40 times by a 1-byte index.
    const add = hpackEncode([{ name: 'x-big', value: 'b'.repeat(4000) }]);
    const refs = Buffer.alloc(40, 0x80 | 62);
    expect(() => r.push(frame(HEADERS, 0x4, 1, Buffer.concat([add, refs])))).toThrow(/decoded header list larger than 65536/);
  });

  it('honours dynamic table size updates up to the negotiated size and refuses larger ones', () => {
    const r = new AuthorityRewriter();
    r.push(prefaceAndSettings);
    // 0x20 = size update to 0 (evicts everything), then back to 4096: 0x3f 0xe1 0x1f.
    const ok = Buffer.concat([Buffer.from([0x20, 0x3f, 0xe1, 0x1f]), hpackEncode(requestHeaders('a'))]);
    expect(() => r.push(frame(HEADERS, 0x5, 1, ok))).not.toThrow();
    // 8192 > 4096: 0x3f 0xe1 0x3f.
    expect(() => r.push(frame(HEADERS, 0x5, 3, Buffer.from([0x3f, 0xe1, 0x3f])))).toThrow(
      expect.objectContaining({ code: 'ERR_WORKLOAD_API_HTTP2' }),
    );
  });

  it('never throws anything but its own error on random input (fuzz)', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let failures = 0;
    let survivors = 0;
    for (let i = 0; i < 3000; i++) {
      const r = new AuthorityRewriter();
      const len = rnd(200);
      const body = Buffer.alloc(len);
      for (let j = 0; j < len; j++) body[j] = rnd(256);
      // Half the cases: random HPACK inside a well-formed HEADERS frame; half: random frames.
      const input = i % 2 === 0 ? Buffer.concat([prefaceAndSettings, frame(HEADERS, 0x4 | (rnd(2) ? 0x8 : 0), 1 + 2 * rnd(100), body)]) : Buffer.concat([CONNECTION_PREFACE, body]);
      try {
        for (let o = 0; o < input.length; o += 1 + rnd(64)) r.push(input.subarray(o, o + 1 + rnd(64)));
        survivors++;
      } catch (err) {
        if (!isMayflyError(err, 'ERR_WORKLOAD_API_HTTP2')) throw err;
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(1000);
    expect(survivors).toBeGreaterThan(0);
  });
});

describe('in front of a Node HTTP/2 server', () => {
  it('changes nothing for a normal client: many requests, dynamic table exercised, headers intact', async () => {
    const path = await serve('stream');
    const client = http2.connect('http://localhost', { createConnection: () => net.connect(path) });
    try {
      for (let i = 0; i < 6; i++) {
        const r = await get(client, { ':method': 'POST', ':path': `/req/${i % 2}`, 'x-same': 'repeated-value', 'x-count': String(i), 'x-neverindex': 'nv' });
        expect(r.status).toBe(200);
        const h = JSON.parse(r.body) as Record<string, string>;
        expect(h[':authority']).toBe('localhost:80');
        expect(h['x-same']).toBe('repeated-value');
        expect(h['x-count']).toBe(String(i));
        expect(h[':path']).toBe(`/req/${i % 2}`);
      }
      const concurrent = await Promise.all(
        Array.from({ length: 8 }, (_, i) => get(client, { ':method': 'POST', ':path': '/c', 'x-i': String(i), 'x-same': 'repeated-value' })),
      );
      expect(concurrent.map((r) => (JSON.parse(r.body) as Record<string, string>)['x-i']).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    } finally {
      client.close();
    }
    expect(streams[0]?.rewriter.headerBlocks).toBe(14);
    expect(streams[0]?.rewriter.rewrites).toBe(0);
  });

  it('a socket-path :authority is reset by a bare Node server', async () => {
    const path = await serve('none');
    const f = await rawRequest(path, [frame(HEADERS, 0x5, 1, hpackEncode(requestHeaders(JAVA_AUTHORITY)))]);
    expect(f).not.toBe('closed');
    const rst = f as RawFrame;
    expect(rst.type).toBe(RST_STREAM);
    expect(rst.payload.readUInt32BE(0)).toBe(PROTOCOL_ERROR);
    expect(seen).toHaveLength(0);
  });

  it('with the rewriter the same request is answered, with authority "localhost"', async () => {
    const path = await serve('stream');
    const f = await rawRequest(path, [frame(HEADERS, 0x5, 1, hpackEncode(requestHeaders(JAVA_AUTHORITY, [{ name: 'x-keep', value: 'kept' }])))]);
    expect((f as RawFrame).type).toBe(HEADERS);
    expect(seen[0]?.[':authority']).toBe('localhost');
    expect(seen[0]?.['x-keep']).toBe('kept');
    expect(streams[0]?.rewriter.rewrites).toBe(1);
  });

  it('reassembles CONTINUATION frames and splits a large re-encoded block at 16384 bytes', async () => {
    const path = await serve('stream');
    const big = 'q'.repeat(20000);
    const block = hpackEncode(requestHeaders(JAVA_AUTHORITY, [{ name: 'x-big', value: big }]));
    const a = Math.floor(block.length / 3);
    const frames = [frame(HEADERS, 0x1, 1, block.subarray(0, a)), frame(0x9, 0, 1, block.subarray(a, 2 * a)), frame(0x9, 0x4, 1, block.subarray(2 * a))];
    const f = await rawRequest(path, frames);
    expect((f as RawFrame).type).toBe(HEADERS);
    expect(seen[0]?.['x-big']).toBe(big);
    expect(seen[0]?.[':authority']).toBe('localhost');
  });

  it('strips padding and keeps PRIORITY', async () => {
    const path = await serve('stream');
    const block = hpackEncode(requestHeaders(JAVA_AUTHORITY));
    const payload = Buffer.concat([Buffer.from([10]), Buffer.from([0, 0, 0, 0, 15]), block, Buffer.alloc(10)]);
    const f = await rawRequest(path, [frame(HEADERS, 0x1 | 0x4 | 0x8 | 0x20, 1, payload)]);
    expect((f as RawFrame).type).toBe(HEADERS);
    expect(seen[0]?.[':authority']).toBe('localhost');
  });

  it('destroys the connection on an oversized header block and on garbage, and keeps serving', async () => {
    const path = await serve('stream');
    const huge = [frame(HEADERS, 0, 1, Buffer.alloc(16384, 0x82)), ...Array.from({ length: 4 }, () => frame(0x9, 0, 1, Buffer.alloc(16384, 0x82)))];
    expect(await rawRequest(path, huge)).toBe('closed');
    expect(await rawRequest(path, [Buffer.from('\u0000\u0000\u0004\u0001garbage garbage garbage', 'latin1')])).toBe('closed');
    const f = await rawRequest(path, [frame(HEADERS, 0x5, 1, hpackEncode(requestHeaders(JAVA_AUTHORITY)))]);
    expect((f as RawFrame).type).toBe(HEADERS);
  });

  it('through the socket pair: requests work and a remoteAddress set on the inner socket is what the server sees', async () => {
    const path = await serve('socketpair');
    const f = await rawRequest(path, [frame(HEADERS, 0x5, 1, hpackEncode(requestHeaders(JAVA_AUTHORITY)))]);
    expect((f as RawFrame).type).toBe(HEADERS);
    const client = http2.connect('http://localhost', { createConnection: () => net.connect(path) });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await get(client, { ':method': 'POST', ':path': '/p', 'x-n': String(i) });
        expect(r.status).toBe(200);
        expect(r.peer).toBe('conn-token-7');
      }
    } finally {
      client.close();
    }
  });
});
