/**
 * The endpoint's resource bounds against hostile local users (connection-limits.ts) and its
 * logging policy (log-limiter.ts), with a real Unix socket, the kernel's peer credentials and
 * real processes running as an unprivileged uid (these tests run as root, as the agent does).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readPeerCredentials, verifyCaller } from '../agent/peercred/index.js';
import { WorkloadApiEndpoint, type WorkloadApiEndpointConfig } from './endpoint.js';
import { CONNECTION_PREFACE } from './h2-authority.js';
import { EMPTY_SETTINGS_FRAME } from './h2-sniff.js';
import type { PeerCredentialSource, X509Identity } from './identities.js';
import type { JWTBundlesResponse, JWTSVIDResponse, X509SVIDResponse } from '../wire/workload/messages.js';
import {
  carriesStack,
  Client,
  eventually,
  FakeIdentities,
  h2Frame,
  makeMaterial,
  Reader,
  RecordingLogger,
  TD,
  unary,
  update,
  type Material,
} from './testing.js';

const NOBODY = 65534;
const SETTINGS_ACK = h2Frame(0x4, 0x1, 0, Buffer.alloc(0));
const GOAWAY = 0x7;

const realPeerCredentials: PeerCredentialSource = { read: (s) => readPeerCredentials(s), verify: (c) => verifyCaller(c) };

let material: Material;
let alice: X509Identity;
let dir: string;
let fake: FakeIdentities;
let log: RecordingLogger;
let endpoint: WorkloadApiEndpoint | undefined;
const children: ChildProcess[] = [];
const clients: grpc.Client[] = [];
const raws: net.Socket[] = [];

beforeAll(async () => {
  material = await makeMaterial();
  alice = await material.makeIdentity(`${TD}/alice`);
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-wl-limits-'));
  await chmod(dir, 0o755); // the unprivileged children must reach the socket inside
  fake = new FakeIdentities(update(material, [alice]));
  log = new RecordingLogger();
});

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const c of clients.splice(0)) c.close();
  for (const s of raws.splice(0)) s.destroy();
  await endpoint?.close();
  endpoint = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function start(extra: Partial<WorkloadApiEndpointConfig>): Promise<WorkloadApiEndpoint> {
  const e = new WorkloadApiEndpoint({
    socketPath: join(dir, 'run', 'agent.sock'),
    identities: fake,
    validateJwtSvid: async () => {
      throw new Error('not used here');
    },
    peerCredentials: realPeerCredentials,
    logger: log,
    ...extra,
  });
  endpoint = e;
  await e.start();
  return e;
}

function newClient(e: WorkloadApiEndpoint): grpc.Client {
  // A channel of its own (grpc-js otherwise shares one connection between clients of a target).
  const c = new Client(`unix://${e.socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  clients.push(c);
  return c;
}

/**
 * Run as `nobody` by `holdConnections`: opens `n` connections one after the other, each
 * completing the HTTP/2 handshake (preface, SETTINGS, ACK of the server's SETTINGS) and then
 * making no request. Prints one JSON line once every connection is held or was closed by
 * the agent (with the bytes it got first), then holds the rest until killed.
 */
const HOLDER = `
const net = require('node:net');
const [path, n] = [process.argv[1], Number(process.argv[2])];
const hello = Buffer.concat([Buffer.from(${JSON.stringify(CONNECTION_PREFACE.toString('latin1'))}, 'latin1'), Buffer.from(${JSON.stringify([...EMPTY_SETTINGS_FRAME])})]);
const ack = Buffer.from(${JSON.stringify([...SETTINGS_ACK])});
const held = [];
const refusedBytes = [];
const one = () => new Promise((resolve) => {
  const s = net.connect(path);
  let buf = Buffer.alloc(0), got = 0, settled = false;
  s.on('error', () => {});
  s.on('connect', () => s.write(hello));
  s.on('data', (d) => {
    got += d.length;
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const type = buf[3], flags = buf[4];
      buf = buf.subarray(9 + buf.readUIntBE(0, 3));
      if (type === 4 && !(flags & 1)) {
        s.write(ack);
        if (!settled) { settled = true; held.push(s); resolve(); }
      }
    }
  });
  s.on('close', () => { if (!settled) { settled = true; refusedBytes.push(got); resolve(); } });
});
(async () => {
  for (let i = 0; i < n; i++) await one();
  console.log(JSON.stringify({ held: held.length, refusedBytes }));
  setInterval(() => {}, 1 << 30);
})();`;

interface HolderReport {
  held: number;
  refusedBytes: number[];
}

/** A process of uid `nobody` that opens `n` handshaken, request-less connections and holds those it keeps. */
async function holdConnections(socketPath: string, n: number): Promise<HolderReport> {
  const child = spawn(process.execPath, ['-e', HOLDER, socketPath, String(n)], {
    uid: NOBODY,
    gid: NOBODY,
    cwd: '/',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  if (first.done === true) throw new Error(`holder exited (${String(child.exitCode)}) before reporting`);
  return JSON.parse(first.value as string) as HolderReport;
}

/** An in-process raw HTTP/2 client: frame types received, whether the agent ended or closed it. */
interface RawClient {
  socket: net.Socket;
  frameTypes: number[];
  bytes: number;
  ended: boolean;
  closed: boolean;
}

/**
 * Connects and sends `send` (preface and SETTINGS for a handshake, or less). With `ack`, it
 * acknowledges every SETTINGS it gets, as an HTTP/2 client must. `allowHalfOpen`: it never
 * closes its own end, even after the agent ended the connection.
 */
function rawClient(path: string, send: Buffer, opts: { ack: boolean; allowHalfOpen?: boolean }): RawClient {
  const socket = net.connect({ path, allowHalfOpen: opts.allowHalfOpen ?? false });
  raws.push(socket);
  const r: RawClient = { socket, frameTypes: [], bytes: 0, ended: false, closed: false };
  let buf = Buffer.alloc(0);
  socket.on('error', () => {});
  socket.on('connect', () => send.length > 0 && socket.write(send));
  socket.on('data', (d: Buffer) => {
    r.bytes += d.length;
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const [type, flags] = [buf[3] as number, buf[4] as number];
      buf = buf.subarray(9 + buf.readUIntBE(0, 3));
      r.frameTypes.push(type);
      if (opts.ack && type === 0x4 && (flags & 1) === 0 && !socket.writableEnded) socket.write(SETTINGS_ACK);
    }
  });
  socket.on('end', () => (r.ended = true));
  socket.on('close', () => (r.closed = true));
  return r;
}

const HANDSHAKE = Buffer.concat([CONNECTION_PREFACE, EMPTY_SETTINGS_FRAME]);

describe('Workload API connection caps (real peer credentials, processes of another uid)', () => {
  it('one uid over its per-uid and per-pid caps is refused before any request, and a workload of another uid is still served', async () => {
    // Small caps, same proportions as the defaults: the hostile uid tries 32 connections,
    // more than the global cap (24), so without per-uid caps nobody else would get one.
    const e = await start({ maxConnections: 24, maxConnectionsPerUid: 16, maxConnectionsPerPid: 8, firstRequestTimeoutMs: 200 });
    const reports = [];
    for (const n of [12, 12, 8]) reports.push(await holdConnections(e.socketPath, n));

    // The legitimate workload (this process, uid 0) is served: real streams return data.
    const client = newClient(e);
    const svidStream = new Reader<X509SVIDResponse>(client, 'FetchX509SVID');
    const bundleStream = new Reader<JWTBundlesResponse>(client, 'FetchJWTBundles');
    expect((await svidStream.next()).svids.map((s) => s.spiffe_id)).toEqual([alice.spiffeId]);
    expect(Object.keys((await bundleStream.next()).bundles)).toContain(TD);

    // First process: 8 of 12 (per-pid cap). Second: 8 more, then the uid holds 16 (per-uid
    // cap). Third: none. Every refused connection was closed before the agent sent a byte.
    expect(reports.map((r) => r.held)).toEqual([8, 8, 0]);
    expect(reports.flatMap((r) => r.refusedBytes)).toEqual(new Array(16).fill(0));
    const stats = e.connectionStats();
    expect(stats.byUid.get(NOBODY)).toBe(16);
    expect(stats.byUid.get(process.getuid?.() ?? 0)).toBe(1);
    expect(fake.attested.every((c) => c.uid !== NOBODY)).toBe(true);

    // Refusals were logged, rate-limited, with who and which cap, and no stack.
    const pidCap = log.lines.filter((l) => /its pid already holds 8/.test(l.msg));
    const uidCap = log.lines.filter((l) => /its uid already holds 16/.test(l.msg));
    expect(pidCap.length).toBeGreaterThan(0);
    expect(uidCap.length).toBeGreaterThan(0);
    expect(uidCap.length).toBeLessThanOrEqual(10);
    expect(uidCap[0]?.fields).toMatchObject({ uid: NOBODY, limit: 16 });
    expect(log.lines.some(carriesStack)).toBe(false);

    // Everyone goes away: no count is left behind.
    for (const c of children.splice(0)) c.kill('SIGKILL');
    svidStream.call.cancel();
    bundleStream.call.cancel();
    for (const c of clients.splice(0)) c.close();
    const zero = await eventually(() => {
      const s = e.connectionStats();
      return s.open === 0 && s.byUid.size === 0 && s.processes === 0 && e.connectionCount === 0;
    });
    expect(zero).toBe(true);
    // And the freed slots are usable again by the same uid.
    expect((await holdConnections(e.socketPath, 3)).held).toBe(3);
  });

  it('a connection with no open call is ended by the idle timeout (GOAWAY, then destroyed although the peer keeps its end open); one with an open stream stays', async () => {
    const e = await start({ connectionIdleTimeoutMs: 300, firstRequestTimeoutMs: 100, connectionCloseGraceMs: 100 });
    const streaming = newClient(e);
    const stream = new Reader<X509SVIDResponse>(streaming, 'FetchX509SVID');
    await stream.next();
    expect(e.connectionCount).toBe(1);

    // Handshake done, no request, and it never closes its own end.
    const idle = rawClient(e.socketPath, HANDSHAKE, { ack: true, allowHalfOpen: true });
    expect(await eventually(() => e.connectionCount === 2)).toBe(true);
    expect(await eventually(() => idle.frameTypes.includes(GOAWAY) && idle.ended)).toBe(true);
    expect(await eventually(() => e.connectionCount === 1)).toBe(true); // destroyed by the agent
    expect(idle.socket.writableEnded).toBe(false); // the client never closed its end

    // The stream's connection, older than the one just ended, is still served.
    const rotated = await material.makeIdentity(`${TD}/alice`);
    fake.publish(update(material, [rotated]));
    expect((await stream.next()).svids[0]?.x509_svid.equals(rotated.certificates[0]!)).toBe(true);

    // A unary caller gone quiet is ended too, gracefully: its next call simply reconnects.
    const unaryClient = newClient(e);
    await unary<JWTSVIDResponse>(unaryClient, 'FetchJWTSVID', { audience: ['a'] });
    expect(e.connectionCount).toBe(2);
    expect(await eventually(() => e.connectionCount === 1)).toBe(true);
    expect((await unary<JWTSVIDResponse>(unaryClient, 'FetchJWTSVID', { audience: ['a'] })).svids).toHaveLength(1);
    stream.call.cancel();
  });

  it('the first-request deadline drops a connection that sends nothing, or only the preface, logged at debug without a stack', async () => {
    const e = await start({ firstRequestTimeoutMs: 200 });
    const silent = rawClient(e.socketPath, Buffer.alloc(0), { ack: false });
    const prefaceOnly = rawClient(e.socketPath, CONNECTION_PREFACE, { ack: false });
    silent.socket.resume();
    expect(await eventually(() => silent.closed && prefaceOnly.closed)).toBe(true);
    // Neither got more than the agent's empty SETTINGS: nothing was served.
    expect(silent.frameTypes).toEqual([0x4]);
    expect(prefaceOnly.frameTypes).toEqual([0x4]);
    const dropped = log.lines.filter((l) => /dropped before its first request/.test(l.msg));
    expect(dropped).toHaveLength(2);
    expect(dropped.every((l) => l.level === 'debug' && !carriesStack(l))).toBe(true);
    expect(dropped[0]?.fields).toMatchObject({ code: 'ERR_WORKLOAD_API_HTTP2', error: expect.stringMatching(/within 200 ms/) });
    expect(await eventually(() => e.connectionCount === 0 && e.connectionStats().byUid.size === 0)).toBe(true);
  });

  it('refuses limits that would let one uid take every connection', () => {
    const base = { socketPath: join(dir, 'x.sock'), identities: fake, validateJwtSvid: async () => ({ spiffeId: '', claims: {} }), peerCredentials: realPeerCredentials };
    expect(() => new WorkloadApiEndpoint({ ...base, maxConnections: 100 })).toThrow(/maxConnectionsPerUid \(256\) must be below maxConnections \(100\)/);
    expect(() => new WorkloadApiEndpoint({ ...base, maxConnectionsPerPid: 0 })).toThrow(TypeError);
    expect(new WorkloadApiEndpoint(base).limits).toMatchObject({ maxConnections: 4096, maxConnectionsPerUid: 256, maxConnectionsPerPid: 64 });
  });
});

describe('Workload API logging of what a caller repeats at will', () => {
  it('failed attestations and PID-reuse refusals are logged rate-limited, without a stack', async () => {
    let replaced = false;
    const e = await start({ peerCredentials: { read: (s) => readPeerCredentials(s), verify: (c) => (replaced ? { ok: false, reason: 'pid-reused', detail: 'simulated' } : verifyCaller(c)) } });
    const client = newClient(e);
    const calls = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await unary(client, 'FetchJWTSVID', { audience: ['a'] }).catch(() => undefined);
    };
    fake.attestError = Object.assign(new Error('attestor down'), { code: 'ECONNREFUSED' });
    await calls(50);
    fake.attestError = undefined;
    replaced = true;
    await calls(50);
    for (const c of clients.splice(0)) c.close();
    await e.close();

    const attest = log.lines.filter((l) => l.msg === 'workload attestation failed');
    const reuse = log.lines.filter((l) => /PID reuse/.test(l.msg));
    expect(attest.length).toBeLessThanOrEqual(10);
    expect(reuse.length).toBeLessThanOrEqual(10);
    expect(attest[0]?.fields).toMatchObject({ method: 'FetchJWTSVID', error: 'attestor down', code: 'ECONNREFUSED', uid: process.getuid?.() });
    expect(log.lines.some(carriesStack)).toBe(false);
    const suppressed = (cause: string): number => Number(log.lines.find((l) => l.fields.cause === cause)?.fields.suppressed ?? 0);
    expect(attest.length + suppressed('attestation-failed')).toBe(50);
    expect(reuse.length + suppressed('pid-reuse')).toBe(50);
  });
});

/**
 * Run as `nobody` by spawnSync: `total` processes, 8 at a time, each opening two connections
 * and exiting once they are connected. spawnSync blocks this process's event loop meanwhile,
 * so the agent accepts every one of those connections only after its process is gone: its
 * credentials cannot be read.
 */
const CONNECT_AND_EXIT = `
const { spawn } = require('node:child_process');
const [path, total] = [process.argv[1], Number(process.argv[2])];
const child = "const net = require('node:net'); let n = 0; for (let i = 0; i < 2; i++) net.connect(process.argv[1]).on('connect', () => ++n === 2 && process.exit(0)).on('error', () => process.exit(3))";
let started = 0, running = 0, failed = 0;
const next = () => {
  while (running < 8 && started < total) {
    started++; running++;
    spawn(process.execPath, ['-e', child, path], { stdio: 'ignore' }).on('exit', (code) => {
      running--; if (code !== 0) failed++;
      if (started === total && running === 0) process.exit(failed === 0 ? 0 : 1); else next();
    });
  }
};
next();`;

describe('Workload API logging under a connect-and-exit loop', () => {
  it('100 processes that connect twice and exit write a bounded number of lines, none at warn, none with a stack', { timeout: 180_000 }, async () => {
    const e = await start({});
    const r = spawnSync(process.execPath, ['-e', CONNECT_AND_EXIT, e.socketPath, '100'], { uid: NOBODY, gid: NOBODY, cwd: '/', encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(0);
    // Accepts are served in order: once a later caller is answered, all 200 connections were handled.
    const res = await unary<JWTSVIDResponse>(newClient(e), 'FetchJWTSVID', { audience: ['a'] });
    expect(res.svids).toHaveLength(1);
    for (const c of clients.splice(0)) c.close();
    await e.close(); // writes the summaries of what was suppressed

    const warn = log.at('warn');
    expect(warn.length).toBeLessThanOrEqual(11);
    expect(log.lines.some(carriesStack)).toBe(false);
    const refused = log.lines.filter((l) => l.msg === 'refusing Workload API connection: peer credentials unavailable');
    const summary = log.lines.find((l) => l.fields.cause === 'peer-credentials');
    // Every one of the 200 went through the limiter: at most 10 written, the rest counted.
    expect(refused.length).toBeLessThanOrEqual(10);
    expect(refused.length + Number(summary?.fields.suppressed ?? 0)).toBe(200);
    expect(refused.every((l) => l.level === 'debug' && l.fields.code === 'ERR_PEER_CREDENTIALS')).toBe(true);
    expect(log.lines.length).toBeLessThanOrEqual(30);
  });
});
