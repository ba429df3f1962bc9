/**
 * A CRL request flood (issue 10, hostile inputs). The agent serves CRLs only on the Workload
 * API streams (`X509SVIDResponse.crl`, `X509BundlesResponse.crl`; there is no CRL endpoint),
 * so a flood is one local client opening as many FetchX509Bundles streams as it can and
 * never reading them, or opening and resetting them as fast as it can, while the CRL is big.
 * What bounds it: the per-process and per-uid connection caps (an extra connection is closed
 * before a byte is answered) and the per-connection stream cap (SETTINGS_MAX_CONCURRENT_STREAMS:
 * more streams wait in the client), and each stream holds at most one unsent message (a newer
 * one replaces it). So the agent's memory is bounded by caps × one message, whatever the
 * client asks for; other workloads keep being served; and once the flooder is gone, memory,
 * streams and file descriptors are back where they were.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readPeerCredentials, verifyCaller } from '../agent/peercred/index.js';
import { WorkloadApiEndpoint, type WorkloadApiEndpointConfig } from './endpoint.js';
import type { PeerCredentialSource, X509Identity } from './identities.js';
import type { X509BundlesResponse } from '../wire/workload/messages.js';
import { Client, eventually, FakeIdentities, makeMaterial, Reader, RecordingLogger, update, type Material } from './testing.js';

const NOBODY = 65534;
const CRL_BYTES = 1024 * 1024;
const CAPS = { maxConnections: 16, maxConnectionsPerUid: 8, maxConnectionsPerPid: 4, maxConcurrentStreamsPerConnection: 8, streamRate: { burst: 64, perSecond: 32 } };
const realPeerCredentials: PeerCredentialSource = { read: (s) => readPeerCredentials(s), verify: (c) => verifyCaller(c) };

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Run as `nobody`: opens `conns` HTTP/2 connections; on each, once a first FetchX509Bundles
 * call is answered (a connection that floods before that is dropped by the endpoint's
 * first-request guard, h2-sniff), mode `hold` opens `streams` - 1 more and stops reading its
 * sockets (the agent's writes pile up on its side); mode `reset` opens and cancels
 * (RST_STREAM) one call after another, `streams` in all. Prints one JSON line (connections the agent closed, calls that got a response
 * header) after `settleMs`, then holds everything until killed.
 */
const FLOODER = `
const http2 = require('node:http2');
const net = require('node:net');
const [path, conns, streams, mode, settleMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4], Number(process.argv[5])];
const headers = { ':method': 'POST', ':path': '/SpiffeWorkloadAPI/FetchX509Bundles', 'content-type': 'application/grpc', te: 'trailers', 'workload.spiffe.io': 'true' };
let closed = 0, answered = 0;
const statuses = {};
const keep = [];
for (let i = 0; i < conns; i++) {
  let sock;
  const s = http2.connect('http://localhost', { createConnection: () => (sock = net.connect(path)) });
  keep.push(s);
  s.on('error', () => {});
  s.on('close', () => closed++);
  const open = () => {
    const st = s.request(headers);
    st.on('error', () => {});
    st.on('response', (h) => { answered++; if (h['grpc-status'] !== undefined) statuses[h['grpc-status']] = (statuses[h['grpc-status']] || 0) + 1; });
    st.on('trailers', (h) => { if (h['grpc-status'] !== undefined) statuses[h['grpc-status']] = (statuses[h['grpc-status']] || 0) + 1; });
    st.end(Buffer.alloc(5));
    return st;
  };
  // One call first, answered (as a real client's is), then the flood on that connection.
  const first = open();
  first.once('response', () => {
    if (mode === 'hold') {
      for (let j = 1; j < streams; j++) open();
      setTimeout(() => sock.pause(), 200);
    } else {
      let n = 0;
      const next = () => { if (n++ >= streams || s.destroyed) return; const st = open(); setImmediate(() => { st.close(http2.constants.NGHTTP2_CANCEL); next(); }); };
      next();
    }
  });
}
setTimeout(() => { console.log(JSON.stringify({ closed, answered, statuses })); setInterval(() => {}, 1 << 30); }, settleMs);`;

let material: Material;
let alice: X509Identity;
let dir: string;
let fake: FakeIdentities;
let endpoint: WorkloadApiEndpoint | undefined;
let log: RecordingLogger;
const children: ChildProcess[] = [];
const clients: grpc.Client[] = [];
const crl = randomBytes(CRL_BYTES);

beforeAll(async () => {
  material = await makeMaterial();
  alice = await material.makeIdentity('spiffe://example.org/alice');
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-crl-flood-'));
  await chmod(dir, 0o755); // the unprivileged flooder must reach the socket inside
  fake = new FakeIdentities({ ...update(material, [alice]), crl: [crl] });
});

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const c of clients.splice(0)) c.close();
  await endpoint?.close();
  endpoint = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function start(extra: Partial<WorkloadApiEndpointConfig> = {}): Promise<WorkloadApiEndpoint> {
  const e = new WorkloadApiEndpoint({
    socketPath: join(dir, 'run', 'agent.sock'),
    identities: fake,
    validateJwtSvid: async () => {
      throw new Error('not used here');
    },
    peerCredentials: realPeerCredentials,
    logger: (log = new RecordingLogger()),
    ...CAPS,
    firstRequestTimeoutMs: 2000,
    ...extra,
  });
  endpoint = e;
  await e.start();
  return e;
}

interface FloodReport {
  closed: number;
  answered: number;
  /** grpc-status values the flooder received, with counts. */
  statuses: Record<string, number>;
}

async function flood(socketPath: string, conns: number, streams: number, mode: 'hold' | 'reset', settleMs: number): Promise<{ child: ChildProcess; report: FloodReport }> {
  const child = spawn(process.execPath, ['-e', FLOODER, socketPath, String(conns), String(streams), mode, String(settleMs)], {
    uid: NOBODY,
    gid: NOBODY,
    cwd: '/',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  if (first.done === true) throw new Error(`flooder exited (${String(child.exitCode)}) before reporting`);
  return { child, report: JSON.parse(first.value as string) as FloodReport };
}

/** A legitimate workload (this process, another uid): its bundle stream delivers the whole CRL. */
async function servedCrl(e: WorkloadApiEndpoint): Promise<Buffer> {
  const c = new Client(`unix://${e.socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 4 * CRL_BYTES });
  clients.push(c);
  const r = new Reader<X509BundlesResponse>(c, 'FetchX509Bundles');
  const msg = await r.next();
  r.call.cancel();
  return Buffer.concat(msg.crl);
}

const external = (): number => {
  gc();
  return process.memoryUsage().arrayBuffers;
};
const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
/** Whether external memory comes back under `base + bound` (sockets are freed asynchronously, then collected). */
async function memoryBackUnder(base: number, bound: number): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (external() - base < bound) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}
/** Whether this process's open descriptors come back to at most `n` (within a bound, not a timing). */
async function fdsBackTo(n: number): Promise<boolean> {
  for (let i = 0; i < 2000; i++) {
    if ((await fds()) <= n) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

describe('a CRL request flood from one local client', () => {
  it('streams that are never read: bounded by the caps to one message each; others are served; all is released after', { timeout: 60_000 }, async () => {
    // No stream-rate budget here: the connection and stream caps alone bound what is held.
    const e = await start({ streamRate: { burst: 100_000, perSecond: 100_000 } });
    expect((await servedCrl(e)).equals(crl)).toBe(true);
    const [memBefore, fdsBefore] = [external(), await fds()];

    // Asks for 20 connections × 50 streams (1,000 CRLs, ~1 GB unsent if each were held).
    const { child, report } = await flood(e.socketPath, 20, 50, 'hold', 2000);
    // Past the per-pid cap its connections were closed; past the stream cap its calls wait in the client.
    expect(report.closed).toBe(20 - CAPS.maxConnectionsPerPid);
    expect(report.answered).toBeLessThanOrEqual(CAPS.maxConnectionsPerPid * CAPS.maxConcurrentStreamsPerConnection);
    const admitted = CAPS.maxConnectionsPerPid * CAPS.maxConcurrentStreamsPerConnection;
    expect(fake.subscribers.size).toBeLessThanOrEqual(admitted);

    // Others are served in full meanwhile.
    expect((await servedCrl(e)).equals(crl)).toBe(true);
    // The agent holds at most one message per admitted stream (plus framing slack), not 1,000.
    const memDuring = external() - memBefore;
    expect(memDuring).toBeLessThan((admitted + 8) * CRL_BYTES);

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (const c of clients.splice(0)) c.close();
    expect(await eventually(() => e.connectionStats().open === 0 && fake.subscribers.size === 0)).toBe(true);
    expect(await fdsBackTo(fdsBefore)).toBe(true);
    expect(await memoryBackUnder(memBefore, 8 * CRL_BYTES)).toBe(true);
  });

  it('streams opened and reset as fast as possible: nothing accumulates, others are served throughout', { timeout: 60_000 }, async () => {
    const e = await start();
    expect((await servedCrl(e)).equals(crl)).toBe(true);
    const [memBefore, fdsBefore] = [external(), await fds()];

    const running = flood(e.socketPath, CAPS.maxConnectionsPerPid, 500, 'reset', 4000);
    // Served while the flood runs.
    for (let i = 0; i < 3; i++) expect((await servedCrl(e)).equals(crl)).toBe(true);
    const { child } = await running;
    // Past its uid's stream budget it is refused with RESOURCE_EXHAUSTED (8), before attestation:
    // of its 2,000 opens at most the burst and the refill were attested and sent a CRL.
    const attested = fake.attested.filter((c) => c.uid === NOBODY).length;
    expect(attested).toBeGreaterThan(0);
    expect(attested).toBeLessThan(CAPS.streamRate.burst + 10 * CAPS.streamRate.perSecond);
    expect(log.lines.some((l) => /opens streams faster than the per-uid budget/.test(l.msg) && (l.fields as { uid?: number }).uid === NOBODY)).toBe(true);
    // Nothing is left of the resets: only each connection's first call (kept open) is subscribed.
    expect(await eventually(() => fake.subscribers.size <= CAPS.maxConnectionsPerPid)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (const c of clients.splice(0)) c.close();
    expect(await eventually(() => e.connectionStats().open === 0 && fake.subscribers.size === 0)).toBe(true);
    expect(await fdsBackTo(fdsBefore)).toBe(true);
    expect(await memoryBackUnder(memBefore, 8 * CRL_BYTES)).toBe(true);
  });
});
