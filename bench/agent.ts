/**
 * @module bench/agent
 *
 * Agent benchmarks (issue 4) on real processes over loopback, in a temp dir removed
 * afterwards: a server (bench/server-proc), an agent attested with a join token
 * (bench/agent-proc), and, in this process, N workloads streaming `FetchX509SVID` from the
 * agent's Workload API socket (several streams per connection, like sidecars sharing a
 * node). Figures, as percentiles:
 * - FetchX509SVID first response (call → first message) for new calls while N streams are
 *   open;
 * - entry created on the server (admin socket) → the update on an already-open stream, and
 *   → on all N streams;
 * - X.509 authority rotated and the old one tainted → every stream holds SVIDs signed by the
 *   new authority (and, if taint alone did not do it, after the old one is revoked).
 * Every loop is bounded by a count and a deadline.
 *
 * The workloads' side runs in this one process (grpc-js, as a Node workload would), so the
 * "all N streams" figure includes decoding N full-state messages here, one after another.
 * Diagnostics: `BENCH_STREAMS=<n>` (default 1000), `BENCH_MARKS=1` (phase boundaries in
 * CLOCK_MONOTONIC µs on stderr, the clock of `--cpu-prof` samples, and the probe latencies),
 * `BENCH_AGENT_EXEC_ARGV="--cpu-prof --cpu-prof-dir=…"` (node flags for the agent process),
 * `BENCH_AGENT_LOG=1` (the agent's log on stderr).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../src/server/client.js';
import type { WireBundle } from '../src/server/messages.js';
import { parseCertificate } from '../src/spiffe/x509/parse.js';
import { pemEncodeCertificates, splitDerCertificates } from '../src/spiffe/x509/pem.js';
import { workloadServiceDefinition } from '../src/wire/workload/proto.js';
import { startServerProc, type ServerBenchLine } from './server.js';

export interface AgentBenchOptions {
  /** Concurrent streaming workloads (default 1000). */
  streams?: number;
  /** Streams per Workload API connection (default 10). */
  streamsPerConnection?: number;
  /** New FetchX509SVID calls timed while the streams are open (default 200). */
  firstResponses?: number;
  /** Entries created one by one and timed to the streams (default 20). */
  updates?: number;
}

interface X509SvidMsg {
  svids: { spiffe_id: string; x509_svid: Buffer; bundle: Buffer }[];
}

interface Stream {
  call: grpc.ClientReadableStream<X509SvidMsg>;
  last: X509SvidMsg | undefined;
  messages: number;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const TD = 'bench.example';
const fmt = (n: number): string => n.toFixed(n < 10 ? 2 : 1);
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
/** BENCH_MARKS=1: phase boundaries on stderr in CLOCK_MONOTONIC µs, the clock of `--cpu-prof` sample times. */
const mark = (name: string): void => {
  if (process.env.BENCH_MARKS === '1') console.error(`MARK ${name} ${process.hrtime.bigint() / 1000n}`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/**
 * Waiters re-checked on every stream message (no busy polling to steal the agent's CPU),
 * told which stream it was, so that a condition over all N streams costs O(1) per message
 * (re-checking all N on each of N messages would make the bench itself quadratic and
 * inflate the figures it reports).
 */
const waiters = new Set<(s: Stream) => void>();
const notify = (s: Stream): void => {
  for (const w of [...waiters]) w(s);
};

/** Resolves as soon as `cond` holds after a stream message; rejects after `ms`. */
function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((ok, fail) => {
    const check = (): void => {
      if (!cond()) return;
      waiters.delete(check);
      clearTimeout(timer);
      ok();
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      fail(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    waiters.add(check);
  });
}

/** Resolves once `pred` holds for every stream (each re-checked on its own messages); rejects after `ms`. */
function untilEvery(streams: readonly Stream[], pred: (s: Stream) => boolean, ms: number, what: string): Promise<void> {
  const ok = new Set(streams.filter(pred));
  if (ok.size === streams.length) return Promise.resolve();
  return new Promise((resolve, fail) => {
    const check = (s: Stream): void => {
      if (pred(s)) ok.add(s);
      else ok.delete(s);
      if (ok.size < streams.length) return;
      waiters.delete(check);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      fail(new Error(`timed out after ${ms} ms waiting for ${what} (${ok.size}/${streams.length})`));
    }, ms);
    waiters.add(check);
  });
}

function has(m: X509SvidMsg | undefined, spiffeId: string): boolean {
  return m?.svids.some((s) => s.spiffe_id === spiffeId) ?? false;
}

/** True when every SVID in `m` was signed by the authority whose SKI (hex) is `authorityId`. */
/** Verdict per (message, authority): the check runs on every incoming message for all 1,000
 * streams, so re-parsing every SVID each time would make the bench itself quadratic. */
const signedByCache = new WeakMap<X509SvidMsg, Map<string, boolean>>();
function allSignedBy(m: X509SvidMsg | undefined, authorityId: string): boolean {
  if (m === undefined || m.svids.length === 0) return false;
  let byAuthority = signedByCache.get(m);
  if (byAuthority === undefined) signedByCache.set(m, (byAuthority = new Map()));
  let verdict = byAuthority.get(authorityId);
  if (verdict === undefined) {
    verdict = m.svids.every((s) => parseCertificate(splitDerCertificates(s.x509_svid)[0] as Buffer).authorityKeyId?.toString('hex') === authorityId);
    byAuthority.set(authorityId, verdict);
  }
  return verdict;
}

export async function startAgentProc(args: Record<string, string>): Promise<{ agentId: string; stop(): Promise<void> }> {
  // BENCH_AGENT_EXEC_ARGV: node flags for the agent process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const execArgv = (process.env.BENCH_AGENT_EXEC_ARGV ?? '').split(' ').filter((a) => a !== '');
  const child = fork(join(here, 'agent-proc.js'), [JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const agentId = await new Promise<string>((ok, fail) => {
    child.on('message', (m: { type?: string; agentId?: string }) => {
      if (m.type === 'ready') ok(m.agentId ?? '');
    });
    void exited.then(() => fail(new Error('bench agent exited early')));
  });
  return {
    agentId,
    stop: async () => {
      if (child.exitCode === null) child.send({ type: 'stop' });
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Starts bench/grpc-baseline-proc on `socketPath`, serving `response` (encoded X509SVIDResponse). */
async function startBaselineProc(socketPath: string, response: Buffer): Promise<{ stop(): Promise<void> }> {
  const child = fork(join(here, 'grpc-baseline-proc.js'), [socketPath], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((ok, fail) => {
    child.on('message', (m: { type?: string }) => {
      if (m.type === 'ready') ok();
    });
    void exited.then(() => fail(new Error('bench gRPC baseline exited early')));
    child.send({ type: 'response', bytes: response });
  });
  return {
    stop: async () => {
      if (child.exitCode === null) child.send({ type: 'stop' });
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

export async function benchAgent(options: AgentBenchOptions = {}): Promise<ServerBenchLine[]> {
  const opts = { streams: 1000, streamsPerConnection: 10, firstResponses: 200, updates: 20, ...options };
  const out: ServerBenchLine[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-agent-'));
  const server = await startServerProc(join(dir, 'server'));
  const admin: ServerApiClients = adminSocketClients(server.ready.adminSocketPath);
  const clients: grpc.Client[] = [];
  const streams: Stream[] = [];
  let agent: { agentId: string; stop(): Promise<void> } | undefined;
  let baseline: { stop(): Promise<void> } | undefined;
  try {
    const bundle = await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
    const bundlePath = join(dir, 'bundle.pem');
    writeFileSync(bundlePath, pemEncodeCertificates(bundle.x509_authorities as Buffer[]));
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const socketPath = join(dir, 'wl', 'api.sock');
    agent = await startAgentProc({
      serverAddress: `127.0.0.1:${server.ready.port}`, trustDomain: TD, dataDir: join(dir, 'agent'), socketPath, joinToken: token.value, trustBundlePath: bundlePath,
    });
    const agentId = agent.agentId;
    const uid = process.getuid?.() ?? 0;
    const createEntry = async (path: string): Promise<void> => {
      const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: `spiffe://${TD}${path}`, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
      });
      if (res.results[0]?.status.code !== 0) throw new Error(`entry create failed: ${res.results[0]?.status.message}`);
    };
    await createEntry('/bench/first');

    const Ctor = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
    const connectTo = (path: string): grpc.Client => {
      // A local subchannel pool: without it grpc-js shares one connection among all clients of a target.
      const c = new Ctor(`unix://${path}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(c);
      return c;
    };
    const connect = (): grpc.Client => connectTo(socketPath);
    const fetch = (c: grpc.Client): grpc.ClientReadableStream<X509SvidMsg> =>
      (c as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<X509SvidMsg> }).FetchX509SVID({}, header());
    /** A new FetchX509SVID call on `c`: ms from the call to its first message (then cancelled). */
    const firstResponse = (c: grpc.Client): Promise<number> =>
      new Promise<number>((ok, fail) => {
        const start = performance.now();
        const call = fetch(c);
        call.once('data', () => {
          const ms = performance.now() - start;
          call.cancel();
          ok(ms);
        });
        call.once('error', (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) fail(e);
        });
      });

    // The agent answers PERMISSION_DENIED until the entry's first SVID is in its cache: the
    // probe client (used below) waits for it, so no stream below is opened too early.
    const probe = connect();
    const first = `spiffe://${TD}/bench/first`;
    for (let attempt = 0; ; attempt++) {
      const served = await new Promise<boolean>((ok, fail) => {
        const call = fetch(probe);
        call.once('data', (m: X509SvidMsg) => {
          call.cancel();
          ok(has(m, first));
        });
        call.once('error', (e: grpc.ServiceError) => {
          if (e.code === grpc.status.PERMISSION_DENIED) ok(false);
          else if (e.code !== grpc.status.CANCELLED) fail(e);
        });
      });
      if (served) break;
      if (attempt >= 600) throw new Error('the agent did not serve the first entry within 30 s');
      await sleep(50);
    }

    // N streaming workloads.
    const burstFirst: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < opts.streams; i++) {
      const c = i % opts.streamsPerConnection === 0 ? connect() : (clients.at(-1) as grpc.Client);
      const started = performance.now();
      const s: Stream = { call: fetch(c), last: undefined, messages: 0 };
      s.call.on('data', (m: X509SvidMsg) => {
        if (s.messages === 0) burstFirst.push(performance.now() - started);
        s.last = m;
        s.messages++;
        notify(s);
      });
      s.call.on('error', () => undefined); // cancelled at the end
      streams.push(s);
    }
    await untilEvery(streams, (s) => has(s.last, first), 120_000, `${opts.streams} streams to receive their first X509-SVID`);
    out.push({ name: `${opts.streams} FetchX509SVID streams opened at once (${opts.streamsPerConnection}/connection)`, text: `all served in ${fmt(performance.now() - t0)} ms; first response p50 ${fmt(pct(burstFirst, 50))} ms, p99 ${fmt(pct(burstFirst, 99))} ms` });

    // First response of new calls while the N streams stay open, in steady state: a pause
    // first lets both processes finish the garbage collection the burst above left due
    // (it would otherwise land on the first probe calls; the burst is measured above).
    // Baseline in the same run: a bare grpc-js server (bench/grpc-baseline-proc) answering
    // with the very bytes the agent serves now, called by the same client, alternating with
    // the agent's calls so both see the same load; the agent's figure is printed beside it.
    const encode = workloadServiceDefinition().FetchX509SVID?.responseSerialize as (m: X509SvidMsg) => Buffer;
    baseline = await startBaselineProc(join(dir, 'baseline.sock'), encode((streams[0] as Stream).last as X509SvidMsg));
    const bare = connectTo(join(dir, 'baseline.sock'));
    await firstResponse(bare); // its connection is set up before timing, as the agent's probe's is
    await sleep(1000);
    const lat: number[] = [];
    const base: number[] = [];
    mark('probe');
    for (let k = 0; k < opts.firstResponses; k++) {
      lat.push(await firstResponse(probe));
      base.push(await firstResponse(bare));
    }
    const ratio = (p: number): string => (pct(lat, p) / pct(base, p)).toFixed(2);
    out.push({
      name: `FetchX509SVID first response with ${opts.streams} streams open (${opts.firstResponses} calls)`,
      text: `p50 ${fmt(pct(lat, 50))} ms, p99 ${fmt(pct(lat, 99))} ms (target p99 ≤ 2 ms); a bare grpc-js server sending the same bytes, same client, same run: p50 ${fmt(pct(base, 50))} ms, p99 ${fmt(pct(base, 99))} ms → agent/bare ${ratio(50)}× at p50, ${ratio(99)}× at p99 (load avg ${load()})`,
    });

    mark('probe-end');
    if (process.env.BENCH_MARKS === '1') console.error(`probe latencies (ms, in call order): ${lat.map((l) => l.toFixed(2)).join(' ')}`);
    // Entry created → update on an open stream, and on all of them.
    const one: number[] = [];
    const all: number[] = [];
    const watched = streams[0] as Stream;
    for (let k = 0; k < opts.updates; k++) {
      const id = `spiffe://${TD}/bench/update-${k}`;
      const start = performance.now();
      await createEntry(`/bench/update-${k}`);
      await until(() => has(watched.last, id), 30_000, `update ${k} on the watched stream`);
      one.push(performance.now() - start);
      await untilEvery(streams, (s) => has(s.last, id), 30_000, `update ${k} on all streams`);
      all.push(performance.now() - start);
      await sleep(20);
    }
    out.push({
      name: `entry created (admin API) → update on an open stream (${opts.updates} entries)`,
      text: `p50 ${fmt(pct(one, 50))} ms, p99 ${fmt(pct(one, 99))} ms; on all ${opts.streams} streams p50 ${fmt(pct(all, 50))} ms, p99 ${fmt(pct(all, 99))} ms (target p99 < 250 ms)`,
    });

    mark('updates-end');
    if (process.env.BENCH_MARKS === '1') console.error(`messages per stream after the updates: ${streams.reduce((n, s) => n + s.messages, 0) / streams.length}`);
    // Rotate, taint the old authority, and time the re-issue on every stream.
    const state = await unaryCall<{ active: { authority_id: string } | null }>(admin.LocalAuthority, 'GetX509AuthorityState', {});
    const oldId = state.active?.authority_id ?? '';
    const prepared = await unaryCall<{ authority: { authority_id: string } }>(admin.LocalAuthority, 'PrepareX509Authority', {});
    const newId = prepared.authority.authority_id;
    await unaryCall(admin.LocalAuthority, 'ActivateX509Authority', { authority_id: newId });
    await sleep(500); // let the new bundle reach the agent and the streams
    const tTaint = performance.now();
    await unaryCall(admin.LocalAuthority, 'TaintX509Authority', { authority_id: oldId });
    const tainted = await untilEvery(streams, (s) => allSignedBy(s.last, newId), 3000, 're-issue after taint').then(
      () => performance.now() - tTaint,
      () => undefined,
    );
    if (tainted !== undefined) {
      out.push({ name: `X.509 authority tainted → all ${opts.streams} streams hold re-issued SVIDs`, text: `${fmt(tainted)} ms (target < 2 s)` });
    } else {
      const tRevoke = performance.now();
      await unaryCall(admin.LocalAuthority, 'RevokeX509Authority', { authority_id: oldId });
      const revoked = await untilEvery(streams, (s) => allSignedBy(s.last, newId), 10_000, 're-issue after revoke').then(
        () => `${fmt(performance.now() - tRevoke)} ms after revoking it`,
        () => `nor within 10 s of revoking it (${streams.filter((s) => allSignedBy(s.last, newId)).length}/${opts.streams} streams re-issued)`,
      );
      out.push({
        name: `X.509 authority tainted → all ${opts.streams} streams hold re-issued SVIDs`,
        text: `NOT within 3 s of the taint; ${revoked} (target < 2 s from the taint)`,
      });
    }
    out.push({ name: 'load average at the end of the agent bench', text: load() });
  } finally {
    for (const s of streams) s.call.cancel();
    for (const c of clients) c.close();
    await agent?.stop();
    await baseline?.stop();
    admin.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  benchAgent({ streams: Number(process.env.BENCH_STREAMS ?? 1000) }).then(
    (lines) => {
      for (const l of lines) console.log(`${l.name}: ${l.text}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
