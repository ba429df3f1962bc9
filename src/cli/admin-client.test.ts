/**
 * The CLI's HTTP/2 admin client against a real Unix socket: a real `mayfly-server`-shaped
 * gRPC answer decodes; a hostile or broken peer (percent-encoded error, compressed or
 * truncated message, no status, silence past the deadline, nobody listening) rejects with
 * the gRPC code describeCallError expects. The real server is exercised by server.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_API_PACKAGE, serverApiPackageDefinition } from '../wire/server/definition.js';
import { AdminClient } from './admin-client.js';

let dir: string;
let server: Http2Server;
let socketPath: string;
let behave: (stream: ServerHttp2Stream, path: string) => void = () => {};

const countCodec = (serverApiPackageDefinition()[`${SERVER_API_PACKAGE}.Entry`] as unknown as Record<string, { responseSerialize: (v: unknown) => Buffer }>)['CountEntries'];

function framed(body: Buffer, compressed = 0): Buffer {
  const f = Buffer.alloc(5 + body.length);
  f[0] = compressed;
  f.writeUInt32BE(body.length, 1);
  body.copy(f, 5);
  return f;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-admin-client-'));
  socketPath = join(dir, 'api.sock');
  server = createServer();
  server.on('stream', (stream, headers) => behave(stream, String(headers[':path'])));
  await new Promise<void>((r) => server.listen(socketPath, r));
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

async function callFails(deadlineMs = 5000): Promise<{ code: number; details: string }> {
  const c = new AdminClient({ socketPath });
  try {
    await c.call('Entry', 'CountEntries', {}, { deadlineMs });
    throw new Error('the call succeeded');
  } catch (err) {
    return err as { code: number; details: string };
  } finally {
    c.close();
  }
}

describe('AdminClient', () => {
  it('sends one framed request to the method path and decodes the answer', async () => {
    let seen = '';
    behave = (stream, path) => {
      seen = path;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed(countCodec?.responseSerialize({ count: 42 }) ?? Buffer.alloc(0)));
    };
    const c = new AdminClient({ socketPath });
    try {
      expect(await c.call('Entry', 'CountEntries', {})).toEqual({ count: 42 });
      expect(await c.call('Entry', 'CountEntries', {})).toEqual({ count: 42 });
    } finally {
      c.close();
    }
    expect(seen).toBe('/mayfly.server.v1.Entry/CountEntries');
  });

  it("passes the server's status and percent-decoded message through (trailers-only answer)", async () => {
    behave = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'entry %22x%22 not found' }, { endStream: true });
    };
    expect(await callFails()).toMatchObject({ code: 5, details: 'entry "x" not found' });
  });

  it('refuses a compressed or truncated message and an answer without a status', async () => {
    const answer = (body: Buffer, trailers: Record<string, string>) => (stream: ServerHttp2Stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end(body);
    };
    behave = answer(framed(Buffer.from([8, 1]), 1), { 'grpc-status': '0' });
    expect(await callFails()).toMatchObject({ code: 13, details: 'compressed response (not requested)' });
    behave = answer(framed(Buffer.from([8, 1])).subarray(0, 6), { 'grpc-status': '0' });
    expect(await callFails()).toMatchObject({ code: 13, details: 'response is not exactly one message' });
    behave = answer(framed(Buffer.from([8, 1])), {});
    expect((await callFails()).code).toBe(14);
  });

  it('gives up at the deadline (DEADLINE_EXCEEDED) and says UNAVAILABLE when nobody listens', async () => {
    behave = () => {};
    expect((await callFails(200)).code).toBe(4);
    const c = new AdminClient({ socketPath: join(dir, 'nobody.sock') });
    const err = (await c.call('Entry', 'CountEntries', {}).catch((e: unknown) => e)) as { code: number; details: string };
    c.close();
    expect(err.code).toBe(14);
    expect(err.details).toMatch(/ENOENT/);
  });

  it('refuses a method the schema does not have, before connecting', async () => {
    const c = new AdminClient({ socketPath });
    expect(() => c.call('Entry', 'NoSuchMethod', {})).toThrow(TypeError);
    c.close();
  });
});
