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
import { workloadServiceDefinition } from '../src/workloadapi/proto.js';
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
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/** Waiters re-checked on every stream message (no busy polling to steal the agent's CPU). */
const waiters = new Set<() => void>();
const notify = (): void => {
  for (const w of [...waiters]) w();
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

async function startAgentProc(args: Record<string, string>): Promise<{ agentId: string; stop(): Promise<void> }> {
  const child = fork(join(here, 'agent-proc.js'), [JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

export async function benchAgent(options: AgentBenchOptions = {}): Promise<ServerBenchLine[]> {
  const opts = { streams: 1000, streamsPerConnection: 10, firstResponses: 200, updates: 20, ...options };
  const out: ServerBenchLine[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-agent-'));
  const server = await startServerProc(join(dir, 'server'));
  const admin: ServerApiClients = adminSocketClients(server.ready.adminSocketPath);
  const clients: grpc.Client[] = [];
  const streams: Stream[] = [];
  let agent: { agentId: string; stop(): Promise<void> } | undefined;
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
    const connect = (): grpc.Client => {
      // A local subchannel pool: without it grpc-js shares one connection among all clients of a target.
      const c = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(c);
      return c;
    };
    const fetch = (c: grpc.Client): grpc.ClientReadableStream<X509SvidMsg> =>
      (c as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<X509SvidMsg> }).FetchX509SVID({}, header());

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
        notify();
      });
      s.call.on('error', () => undefined); // cancelled at the end
      streams.push(s);
    }
    const first = `spiffe://${TD}/bench/first`;
    await until(() => streams.every((s) => has(s.last, first)), 120_000, `${opts.streams} streams to receive their first X509-SVID`);
    out.push({ name: `${opts.streams} FetchX509SVID streams opened at once (${opts.streamsPerConnection}/connection)`, text: `all served in ${fmt(performance.now() - t0)} ms; first response p50 ${fmt(pct(burstFirst, 50))} ms, p99 ${fmt(pct(burstFirst, 99))} ms` });

    // First response of new calls while the N streams stay open.
    const probe = connect();
    const lat: number[] = [];
    for (let k = 0; k < opts.firstResponses; k++) {
      const start = performance.now();
      await new Promise<void>((ok, fail) => {
        const call = fetch(probe);
        call.once('data', () => {
          lat.push(performance.now() - start);
          call.cancel();
          ok();
        });
        call.once('error', (e: grpc.ServiceError) => {
          if (e.code !== grpc.status.CANCELLED) fail(e);
        });
      });
    }
    out.push({ name: `FetchX509SVID first response with ${opts.streams} streams open (${opts.firstResponses} calls)`, text: `p50 ${fmt(pct(lat, 50))} ms, p99 ${fmt(pct(lat, 99))} ms (target p99 ≤ 2 ms; load avg ${load()})` });

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
      await until(() => streams.every((s) => has(s.last, id)), 30_000, `update ${k} on all streams`);
      all.push(performance.now() - start);
      await sleep(20);
    }
    out.push({
      name: `entry created (admin API) → update on an open stream (${opts.updates} entries)`,
      text: `p50 ${fmt(pct(one, 50))} ms, p99 ${fmt(pct(one, 99))} ms; on all ${opts.streams} streams p50 ${fmt(pct(all, 50))} ms, p99 ${fmt(pct(all, 99))} ms (target p99 < 250 ms)`,
    });

    // Rotate, taint the old authority, and time the re-issue on every stream.
    const state = await unaryCall<{ active: { authority_id: string } | null }>(admin.LocalAuthority, 'GetX509AuthorityState', {});
    const oldId = state.active?.authority_id ?? '';
    const prepared = await unaryCall<{ authority: { authority_id: string } }>(admin.LocalAuthority, 'PrepareX509Authority', {});
    const newId = prepared.authority.authority_id;
    await unaryCall(admin.LocalAuthority, 'ActivateX509Authority', { authority_id: newId });
    await sleep(500); // let the new bundle reach the agent and the streams
    const tTaint = performance.now();
    await unaryCall(admin.LocalAuthority, 'TaintX509Authority', { authority_id: oldId });
    const tainted = await until(() => streams.every((s) => allSignedBy(s.last, newId)), 3000, 're-issue after taint').then(
      () => performance.now() - tTaint,
      () => undefined,
    );
    if (tainted !== undefined) {
      out.push({ name: `X.509 authority tainted → all ${opts.streams} streams hold re-issued SVIDs`, text: `${fmt(tainted)} ms (target < 2 s)` });
    } else {
      const tRevoke = performance.now();
      await unaryCall(admin.LocalAuthority, 'RevokeX509Authority', { authority_id: oldId });
      const revoked = await until(() => streams.every((s) => allSignedBy(s.last, newId)), 10_000, 're-issue after revoke').then(
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
