/**
 * @module bench/server
 *
 * Server benchmarks (issue 3), each against a real server process (bench/server-proc) on
 * loopback in a temp dir, removed afterwards:
 * - X.509-SVIDs signed through `SVID.BatchNewX509SVID` by an attested agent over TCP mTLS,
 *   batched CSRs, several calls in flight, for a bounded time and count; printed beside raw
 *   ECDSA P-256 signs/s on one core measured in the same run (median of before and after).
 * - 100,000 entries batch-created over the admin socket; then the server is stopped and
 *   started again on the same data (cold start: fork to ready), its RSS read, and
 *   `ListEntries` by SPIFFE ID (what `entry show -spiffeID` calls) timed as percentiles.
 *
 * The load average is printed beside the figures: the machine is shared, and a figure is
 * only as good as the CPU it got.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from '../src/server/client.js';
import type { WireBundle, WireEntry, WireX509Svid } from '../src/server/messages.js';
import { generateKeyPair } from '../src/spiffe/keys.js';
import { createCsr } from '../src/spiffe/x509/csr.js';

export interface ServerBenchOptions {
  /** SVID phase: stop after this many ms (default 6000) ... */
  svidMs?: number;
  /** ... or this many SVIDs (default 200,000), whichever comes first. */
  svidMax?: number;
  /** CSRs per BatchNewX509SVID call (default 100). */
  batch?: number;
  /** Calls in flight (default 4). */
  inflight?: number;
  /** Entries to create in the datastore phase (default 100,000). */
  entries?: number;
}

export interface ServerBenchLine {
  name: string;
  /** The figure, already formatted with its unit. */
  text: string;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MB`;
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** Raw ECDSA P-256 signs per second on this thread (the same baseline as bench/x509). */
export function rawSignRate(ms = 1000): number {
  const key = generateKeyPair('ec-p256').privateKey;
  const payload = randomBytes(200);
  for (let i = 0; i < 200; i++) sign('sha256', payload, key);
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 32; i++) sign('sha256', payload, key);
    n += 32;
  }
  return n / ((performance.now() - start) / 1000);
}

export interface Ready {
  type: 'ready';
  port: number;
  adminSocketPath: string;
  startMs: number;
  rss: number;
}

export interface ServerProc {
  child: ChildProcess;
  ready: Ready;
  /** fork → ready, as seen by the parent (ms) */
  coldStartMs: number;
  rss(): Promise<number>;
  /** CPU time (µs, all threads) the server process has used so far */
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

export async function startServerProc(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<ServerProc> {
  const t0 = performance.now();
  const child = fork(join(here, 'server-proc.js'), [dataDir], { env: { ...process.env, ...env }, execArgv: ['--expose-gc', ...(process.env.BENCH_SERVER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SERVER_PROF}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ready = await new Promise<Ready>((ok, fail) => {
    const onMsg = (m: { type?: string }): void => {
      if (m.type === 'ready') {
        child.off('message', onMsg);
        ok(m as Ready);
      }
    };
    child.on('message', onMsg);
    void exited.then((code) => fail(new Error(`bench server exited early (code ${code})`)));
  });
  const coldStartMs = performance.now() - t0;
  return {
    child,
    ready,
    coldStartMs,
    rss: () => ask(child, 'rss'),
    cpu: () => ask(child, 'cpu'),
    stop: async () => {
      if (child.exitCode === null) child.send({ type: 'stop' });
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function ask(child: ChildProcess, type: 'rss' | 'cpu'): Promise<number> {
  return new Promise((ok) => {
    const onMsg = (m: { type?: string; rss?: number; micros?: number }): void => {
      if (m.type === type) {
        child.off('message', onMsg);
        ok((type === 'rss' ? m.rss : m.micros) as number);
      }
    };
    child.on('message', onMsg);
    child.send({ type });
  });
}

type BatchResults = { results: { status: { code: number; message: string }; svid: WireX509Svid | null }[] };

/** Attests one agent with a join token; returns its clients over mTLS. */
async function attestAgent(admin: ServerApiClients, port: number): Promise<{ agentId: string; clients: ServerApiClients; bundleRoots: Buffer[] }> {
  const bundle = await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
  const bundleRoots = bundle.x509_authorities as Buffer[];
  const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
  const anon = tcpClients({ address: `127.0.0.1:${port}`, trustDomain: 'bench.example', bundleRoots });
  const key = generateKeyPair('ec-p256');
  try {
    const res = await unaryCall<{ svid: WireX509Svid }>(anon.Agent, 'AttestAgent', {
      attestation_data: { type: 'join_token', payload: Buffer.from(token.value) },
      csr: createCsr({ privateKey: key.privateKey }),
    });
    const clients = tcpClients({ address: `127.0.0.1:${port}`, trustDomain: 'bench.example', bundleRoots, svid: { certChain: res.svid.cert_chain, privateKey: key.privateKey } });
    return { agentId: res.svid.spiffe_id, clients, bundleRoots };
  } finally {
    anon.close();
  }
}

async function createEntries(admin: ServerApiClients, entries: Partial<WireEntry>[]): Promise<WireEntry[]> {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry | null }[] }>(admin.Entry, 'BatchCreateEntry', { entries }, { deadlineMs: 60_000 });
  return res.results.map((r) => {
    if (r.status.code !== 0 || r.entry === null) throw new Error(`entry create failed: ${r.status.message}`);
    return r.entry;
  });
}

/** X.509-SVIDs per second through BatchNewX509SVID, as one attested agent calls it. */
export async function svidThroughput(opts: Required<ServerBenchOptions>, env: NodeJS.ProcessEnv = {}): Promise<{ perSecond: number; count: number; ms: number; serverCores: number; clientCores: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-svid-'));
  const proc = await startServerProc(dir, env);
  const admin = adminSocketClients(proc.ready.adminSocketPath);
  let agent: ServerApiClients | undefined;
  try {
    const a = await attestAgent(admin, proc.ready.port);
    agent = a.clients;
    const entries = await createEntries(
      admin,
      Array.from({ length: 100 }, (_, i) => ({ spiffe_id: `spiffe://bench.example/svc/${i}`, parent_id: a.agentId, selectors: [{ type: 'unix', value: `uid:${1000 + i}` }] })),
    );
    // A pool of real CSRs (one key each), reused round-robin: the server parses and checks
    // every one from scratch, exactly as for a fresh key.
    const csrs = Array.from({ length: 256 }, () => createCsr({ privateKey: generateKeyPair('ec-p256').privateKey }));
    let next = 0;
    const params = (): { entry_id: string; csr: Buffer }[] =>
      Array.from({ length: opts.batch }, () => {
        const i = next++;
        return { entry_id: (entries[i % entries.length] as WireEntry).id, csr: csrs[i % csrs.length] as Buffer };
      });
    const call = async (): Promise<number> => {
      const res = await unaryCall<BatchResults>(a.clients.SVID, 'BatchNewX509SVID', { params: params() }, { deadlineMs: 60_000 });
      for (const r of res.results) if (r.status.code !== 0) throw new Error(`BatchNewX509SVID item failed: ${r.status.message}`);
      return res.results.length;
    };
    for (let i = 0; i < 3; i++) await call(); // warm up the JIT on both sides
    let count = 0;
    const cpu0 = await proc.cpu();
    const client0 = process.cpuUsage();
    const start = performance.now();
    const worker = async (): Promise<void> => {
      while (count < opts.svidMax && performance.now() - start < opts.svidMs) {
        const n = await call(); // not `count += await call()`: that reads count before the await and loses concurrent adds
        count += n;
      }
    };
    await Promise.all(Array.from({ length: opts.inflight }, worker));
    const ms = performance.now() - start;
    const client = process.cpuUsage(client0);
    const serverCores = (await proc.cpu()) - cpu0;
    return { perSecond: count / (ms / 1000), count, ms, serverCores: serverCores / 1000 / ms, clientCores: (client.user + client.system) / 1000 / ms };
  } finally {
    agent?.close();
    admin.close();
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

/** 100k entries: create time, cold start, RSS, ListEntries-by-SPIFFE-ID latency. */
async function entryScale(n: number): Promise<ServerBenchLine[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-entries-'));
  const out: ServerBenchLine[] = [];
  try {
    let proc = await startServerProc(dir);
    let admin = adminSocketClients(proc.ready.adminSocketPath);
    const batch = 500;
    const inflight = 4;
    let made = 0;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (made < n) {
        const first = made;
        made += batch;
        const items = Array.from({ length: Math.min(batch, n - first) }, (_, j) => {
          const i = first + j;
          return {
            spiffe_id: `spiffe://bench.example/ns/ns${i % 100}/sa/svc${i}`,
            parent_id: `spiffe://bench.example/spire/agent/join_token/node${i % 50}`,
            selectors: [{ type: 'k8s', value: `ns:ns${i % 100}` }, { type: 'k8s', value: `sa:svc${i}` }],
          };
        });
        await createEntries(admin, items);
      }
    };
    await Promise.all(Array.from({ length: inflight }, worker));
    const createMs = performance.now() - t0;
    out.push({ name: `${fmt(n)} entries batch-created (BatchCreateEntry ×${batch}, ${inflight} in flight, admin socket)`, text: `${(createMs / 1000).toFixed(1)} s (${fmt(n / (createMs / 1000))}/s; target < 30 s)` });
    out.push({ name: 'server RSS after creating them', text: `${mb(await proc.rss())} (target < 500 MB)` });
    admin.close();
    await proc.stop();

    proc = await startServerProc(dir);
    admin = adminSocketClients(proc.ready.adminSocketPath);
    out.push({ name: `server cold start with ${fmt(n)} entries (fork → API listening)`, text: `${fmt(proc.coldStartMs)} ms (in the child: ${fmt(proc.ready.startMs)} ms; target < 5 s)` });
    const lat: number[] = [];
    const q = async (i: number): Promise<void> => {
      const t = performance.now();
      const res = await unaryCall<{ entries: WireEntry[] }>(admin.Entry, 'ListEntries', { filter: { by_spiffe_id: `spiffe://bench.example/ns/ns${i % 100}/sa/svc${i}` } });
      lat.push(performance.now() - t);
      if (res.entries.length !== 1) throw new Error(`ListEntries by SPIFFE ID found ${res.entries.length} entries, expected 1`);
    };
    await q(0); // first call on a fresh connection, counted too
    const firstMs = lat[0] as number;
    for (let k = 0; k < 300; k++) await q(Math.floor(Math.random() * n));
    lat.sort((x, y) => x - y);
    out.push({
      name: 'ListEntries by SPIFFE ID (`entry show -spiffeID`), 300 random',
      text: `p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms, first on a new connection ${firstMs.toFixed(1)} ms (target < 50 ms)`,
    });
    out.push({ name: 'server RSS after cold start and queries', text: `${mb(await proc.rss())} (target < 500 MB)` });
    admin.close();
    await proc.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

export async function benchServer(options: ServerBenchOptions = {}): Promise<ServerBenchLine[]> {
  const opts: Required<ServerBenchOptions> = { svidMs: 6000, svidMax: 200_000, batch: 100, inflight: 4, entries: 100_000, ...options };
  const out: ServerBenchLine[] = [];
  const before = rawSignRate();
  const loadBefore = load();
  const svid = await svidThroughput(opts);
  const after = rawSignRate();
  const baseline = (before + after) / 2;
  out.push({
    name: `X.509-SVIDs via BatchNewX509SVID (agent, mTLS loopback, ${opts.batch}/call, ${opts.inflight} in flight, ${fmt(svid.count)} in ${(svid.ms / 1000).toFixed(1)} s)`,
    text: `${fmt(svid.perSecond)}/s  (ratio ${(svid.perSecond / baseline).toFixed(2)} vs raw ECDSA P-256 sign ${fmt(baseline)}/s on one core [${fmt(before)} before, ${fmt(after)} after]; target ≥ 10,000/s; the server used ${svid.serverCores.toFixed(2)} cores = ${fmt((svid.serverCores * 1e6) / svid.perSecond)} µs of server CPU per SVID (${fmt(svid.perSecond / svid.serverCores)}/s per core-second), the bench client ${svid.clientCores.toFixed(2)} cores = ${fmt((svid.clientCores * 1e6) / svid.perSecond)} µs per SVID; load avg ${loadBefore} → ${load()})`,
  });
  if (opts.entries > 0) {
    const l0 = load();
    out.push(...(await entryScale(opts.entries)));
    out.push({ name: 'load average during the entry phase', text: `${l0} → ${load()}` });
  }
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const entries = Number(process.env.BENCH_ENTRIES ?? 100_000);
  benchServer({ entries }).then(
    (lines) => {
      for (const l of lines) console.log(`${l.name}: ${l.text}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
