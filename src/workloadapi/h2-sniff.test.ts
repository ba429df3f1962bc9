import http2 from 'node:http2';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hpack from 'hpack.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { CONNECTION_PREFACE } from './h2-authority.js';
import { EMPTY_SETTINGS_FRAME, FirstRequestSniffer, sniffFirstRequest, type ConnectionRoute, type SniffOptions } from './h2-sniff.js';
import { h2Frame } from './testing.js';

// --- helpers ---------------------------------------------------------------------------

const frame = h2Frame;

const HEADERS = 0x1;
const DATA = 0x0;
const PING = 0x6;
const WINDOW_UPDATE = 0x8;
const CLIENT_SETTINGS = frame(0x4, 0, 0, Buffer.from([0, 2, 0, 0, 0, 0])); // ENABLE_PUSH = 0
const ACK = frame(0x4, 0x1, 0, Buffer.alloc(0));
const WINDOW = frame(WINDOW_UPDATE, 0, 0, Buffer.from([0, 0x0f, 0, 0]));
const JAVA_AUTHORITY = '/tmp/x/api.sock';

function headerBlock(authority: string, compressor = hpack.compressor.create({ table: { maxSize: 4096 } })): Buffer {
  compressor.write([
    { name: ':method', value: 'POST' },
    { name: ':scheme', value: 'http' },
    { name: ':path', value: '/SpiffeWorkloadAPI/FetchX509SVID' },
    { name: ':authority', value: authority },
    { name: 'content-type', value: 'application/grpc' },
    { name: 'workload.spiffe.io', value: 'true' },
  ]);
  return compressor.read() ?? Buffer.alloc(0);
}

/** What a gRPC client sends once it has the server's SETTINGS: preface, SETTINGS, ACK, a request. */
function clientBytes(authority: string, order: 'ack-first' | 'headers-first' = 'ack-first'): { withAck: Buffer; expected: Buffer } {
  const request = [frame(HEADERS, 0x4, 1, headerBlock(authority)), frame(DATA, 0x1, 1, Buffer.alloc(5))];
  const before = [CONNECTION_PREFACE, CLIENT_SETTINGS, WINDOW];
  const withAck = order === 'ack-first' ? Buffer.concat([...before, ACK, ...request]) : Buffer.concat([...before, ...request, ACK]);
  return { withAck, expected: Buffer.concat([...before, ...request]) };
}

/** Pushes chunks until the route is decided; `handedOn` is what the next reader gets (kept bytes, then the unread chunks). */
function sniffAll(chunks: Buffer[], options = {}): { route: ConnectionRoute | undefined; handedOn: Buffer } {
  const s = new FirstRequestSniffer(options);
  let i = 0;
  while (i < chunks.length && s.route === undefined) s.push(chunks[i++] as Buffer);
  return { route: s.route, handedOn: Buffer.concat([s.bytes(), ...chunks.slice(i)]) };
}

function errorOf(f: () => void): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
}

// --- the byte-level decision -------------------------------------------------------------

describe('FirstRequestSniffer', () => {
  it('routes a valid authority directly and keeps every byte but the ACK, whatever the chunking', () => {
    const { withAck, expected } = clientBytes('localhost');
    for (const size of [1, 7, 9, 24, 100, withAck.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < withAck.length; i += size) chunks.push(withAck.subarray(i, i + size));
      const s = sniffAll(chunks);
      expect(s.route).toBe<ConnectionRoute>('direct');
      expect(s.handedOn.equals(expected)).toBe(true);
    }
  });

  it('routes a socket-path authority (grpc-java) through the rewriter, with the original bytes', () => {
    const { withAck, expected } = clientBytes(JAVA_AUTHORITY);
    const s = sniffAll([withAck]);
    expect(s.route).toBe<ConnectionRoute>('rewrite');
    expect(s.handedOn.equals(expected)).toBe(true);
  });

  it('waits for both the first header block and the ACK, in either order', () => {
    const { withAck, expected } = clientBytes('localhost', 'headers-first');
    const s = new FirstRequestSniffer();
    s.push(withAck.subarray(0, withAck.length - ACK.length));
    expect(s.route).toBeUndefined();
    s.push(withAck.subarray(withAck.length - ACK.length));
    expect(s.route).toBe<ConnectionRoute>('direct');
    expect(s.bytes().equals(expected)).toBe(true);

    const onlyAck = new FirstRequestSniffer();
    onlyAck.push(Buffer.concat([CONNECTION_PREFACE, CLIENT_SETTINGS, ACK]));
    expect(onlyAck.route).toBeUndefined();
  });

  it('refuses a bad preface, an ACK with a payload, a second ACK, and an oversized header block', () => {
    const code = (f: () => void): boolean => isMayflyError(errorOf(f), 'ERR_WORKLOAD_API_HTTP2');
    expect(code(() => new FirstRequestSniffer().push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1')))).toBe(true);
    expect(code(() => new FirstRequestSniffer().push(Buffer.concat([CONNECTION_PREFACE, frame(0x4, 0x1, 0, Buffer.alloc(6))])))).toBe(true);
    expect(code(() => new FirstRequestSniffer().push(Buffer.concat([CONNECTION_PREFACE, ACK, ACK])))).toBe(true);
    const big = frame(HEADERS, 0, 1, Buffer.alloc(16384, 0x82));
    expect(code(() => new FirstRequestSniffer({ maxHeaderBlockBytes: 8192 }).push(Buffer.concat([CONNECTION_PREFACE, ACK, big])))).toBe(true);
  });

  it('holds a bounded number of bytes before deciding', () => {
    const pings = Array.from({ length: 200 }, () => frame(PING, 0, 0, Buffer.alloc(8)));
    const s = new FirstRequestSniffer({ maxBufferedBytes: 1024 });
    const err = errorOf(() => {
      for (const p of [CONNECTION_PREFACE, ACK, ...pings]) s.push(p);
    });
    expect(isMayflyError(err, 'ERR_WORKLOAD_API_HTTP2')).toBe(true);
    expect(() => new FirstRequestSniffer({ maxBufferedBytes: 3 })).toThrow(TypeError);
  });

  it('refuses a flood of frames before the first request, however few bytes they take', () => {
    // PINGs are answered by nghttp2 once grpc-js has the connection; here they would only pile up.
    const pings = Array.from({ length: 100 }, () => frame(PING, 0, 0, Buffer.alloc(8)));
    const s = new FirstRequestSniffer({ maxFrames: 64 });
    let pushed = 0;
    const err = errorOf(() => {
      for (const p of [CONNECTION_PREFACE, CLIENT_SETTINGS, ACK, ...pings]) {
        s.push(p);
        pushed++;
      }
    });
    expect(isMayflyError(err, 'ERR_WORKLOAD_API_HTTP2')).toBe(true);
    expect((err as Error).message).toMatch(/more than 64 frames/);
    expect(pushed).toBeLessThan(3 + 64); // refused at the 65th frame, not at the end
    expect(() => new FirstRequestSniffer({ maxFrames: 1 })).toThrow(TypeError);
  });
});

// --- on real sockets ----------------------------------------------------------------------

let dir: string;
let listener: net.Server | undefined;
let h2: http2.Http2Server | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-h2sniff-'));
});

afterEach(async () => {
  const l = listener;
  if (l !== undefined) await new Promise<void>((r) => l.close(() => r()));
  h2?.close();
  listener = undefined;
  h2 = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A Unix socket whose accepted connections are sniffed, then handed to a Node HTTP/2 server as they are. */
async function serveSniffed(outcomes: Array<{ err?: Error; route?: ConnectionRoute }>, options: SniffOptions = {}): Promise<string> {
  const server = http2.createServer();
  h2 = server;
  server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(String(headers[':path']));
  });
  server.on('sessionError', () => {});
  const path = join(dir, 's.sock');
  listener = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {});
    sniffFirstRequest(socket, options, (err, route) => {
      outcomes.push({ ...(err !== undefined ? { err } : {}), ...(route !== undefined ? { route } : {}) });
      if (err !== undefined) socket.destroy();
      else server.emit('connection', socket);
    });
  });
  const l = listener;
  await new Promise<void>((r) => l.listen(path, r));
  return path;
}

function get(client: http2.ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': path });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve(body));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves once `n` connections have been decided (the test's own timeout bounds the wait). */
function untilOutcomes(outcomes: readonly unknown[], n: number): Promise<void> {
  return new Promise((resolve) => {
    const poll = (): void => {
      if (outcomes.length >= n) resolve();
      else setTimeout(poll, 5);
    };
    poll();
  });
}

describe('sniffFirstRequest', () => {
  it('sends the empty SETTINGS first, then Node HTTP/2 serves the put-back bytes and the rest', async () => {
    const outcomes: Array<{ err?: Error; route?: ConnectionRoute }> = [];
    const path = await serveSniffed(outcomes);
    // What the server sends first: exactly the empty SETTINGS frame.
    const raw = net.connect(path);
    const first = await new Promise<Buffer>((resolve) => raw.once('data', resolve));
    raw.destroy();
    expect(first.subarray(0, 9).equals(EMPTY_SETTINGS_FRAME)).toBe(true);

    // A real HTTP/2 client: the first request decides, later ones flow straight to Node.
    const client = http2.connect('http://localhost', { createConnection: () => net.connect(path) });
    try {
      expect(await get(client, '/one')).toBe('/one');
      expect(await Promise.all([get(client, '/two'), get(client, '/three')])).toEqual(['/two', '/three']);
    } finally {
      client.close();
    }
    expect(outcomes.filter((o) => o.route !== undefined)).toEqual([{ route: 'direct' }]);
  });

  it('reports a client that leaves before its first request, and one that sends garbage', async () => {
    const outcomes: Array<{ err?: Error; route?: ConnectionRoute }> = [];
    const path = await serveSniffed(outcomes);
    const leaver = net.connect(path);
    leaver.on('error', () => {});
    leaver.end(Buffer.concat([CONNECTION_PREFACE, CLIENT_SETTINGS]));
    const garbage = net.connect(path);
    garbage.on('error', () => {});
    garbage.write(Buffer.from('\u0000'.repeat(30), 'latin1'));
    await untilOutcomes(outcomes, 2);
    expect(outcomes.every((o) => isMayflyError(o.err, 'ERR_WORKLOAD_API_HTTP2'))).toBe(true);
    garbage.destroy();
  });

  it('gives a connection a bounded time: one that heard us but has no call yet goes direct, a silent one is dropped', async () => {
    const outcomes: Array<{ err?: Error; route?: ConnectionRoute }> = [];
    const path = await serveSniffed(outcomes, { firstRequestTimeoutMs: 150 });
    // A real HTTP/2 client acknowledges our SETTINGS at once but makes no request yet.
    const idle = http2.connect('http://localhost', { createConnection: () => net.connect(path) });
    idle.on('error', () => {});
    try {
      await untilOutcomes(outcomes, 1);
      expect(outcomes[0]).toEqual({ route: 'direct' });
      expect(await get(idle, '/later')).toBe('/later'); // handed on intact: its first call is served
    } finally {
      idle.close();
    }
    // Preface and SETTINGS, then nothing (no ACK, no request): not a gRPC client; dropped.
    const silent = net.connect(path);
    silent.on('error', () => {});
    silent.resume(); // read, so the agent's close is seen
    silent.write(Buffer.concat([CONNECTION_PREFACE, CLIENT_SETTINGS]));
    const closed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    await untilOutcomes(outcomes, 2);
    expect(isMayflyError(outcomes[1]?.err, 'ERR_WORKLOAD_API_HTTP2')).toBe(true);
    expect(outcomes[1]?.err?.message).toMatch(/within 150 ms/);
    await closed;
  });
});
