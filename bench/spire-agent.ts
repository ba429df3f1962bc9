/**
 * @module bench/spire-agent
 *
 * `npm run bench -- spire-agent`: SPIRE's own agent (`spire-agent` v1.13.3, join_token,
 * unix workload attestor) with 1,000 entries, against Mayfly's server (`mayfly-server run`)
 * and against SPIRE's (`spire-server run`, sqlite), in the same run on this machine: the
 * time from starting the agent until all 1,000 X509-SVIDs are cached, read from the agent's
 * own `lru_cache_svid_map_size` gauge (its Prometheus endpoint, polled every 20 ms); then,
 * untimed, a workload every entry selects must get all of them (`spire-agent api fetch
 * x509`). Printed as the ratio Mayfly / SPIRE (goal ≤ 0.5), the median of `rounds`
 * alternating runs each side. The agent and the clients are the same binaries either way;
 * only the server differs.
 *
 * What the figure is made of (timelines from the agent's logs on this machine): on both
 * servers the agent mints in batches of 500 (its CSR limit), 0.5 s apart. On SPIRE's server
 * its first sync after attesting finds no entries (the server's authorised-entry cache has
 * not seen the new agent yet), so the batches start at the next sync, 5 s later; on Mayfly's
 * the set is computed at the call, so they start at once.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ServerBenchLine } from './server.js';
import { freePort, median, mustRun, Proc, runCmd, spireBinDir, until, writeEntriesFile, writeSpireAgentConf, type SpireLayout } from './spire-procs.js';
import { MayflyStack, NODE_ALIAS, SpireStack, TRUST_DOMAIN, type Stack } from './spire-stacks.js';

export interface SpireAgentBenchOptions {
  entries?: number;
  /** runs per server, alternating SPIRE and Mayfly. */
  rounds?: number;
}

async function addEntries(st: Stack, dir: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    const file = join(dir, `${st.name}-entries-${i}.json`);
    writeEntriesFile(file, { trustDomain: TRUST_DOMAIN, parentId: NODE_ALIAS, prefix: 'spire-agent-bench', from: i, n: Math.min(500, n - i), selector: `unix:uid:${process.getuid?.() ?? 0}` });
    const [f, a] = st.serverCli(['entry', 'create', '-data', file]);
    await mustRun(f, a, 300_000);
  }
}

/** X509-SVIDs in the agent's cache now: its `lru_cache_svid_map_size` gauge (Prometheus), 0 until it answers. */
function cachedByMetrics(port: number): Promise<number> {
  return new Promise((ok) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => {
        const m = /^spire_agent_lru_cache_svid_map_size(?:\{[^}]*\})?\s+(\S+)$/m.exec(body);
        ok(m === null ? 0 : Number(m[1]));
      });
    });
    req.on('error', () => ok(0));
    req.on('timeout', () => {
      req.destroy();
      ok(0);
    });
    req.end();
  });
}

/** SVIDs the agent serves to us now (0 while it serves none, or the fetch times out). */
async function cachedSvids(bin: string, socket: string): Promise<number> {
  const r = await runCmd(join(bin, 'spire-agent'), ['api', 'fetch', 'x509', '-socketPath', socket, '-output', 'json', '-timeout', '2s'], 30_000);
  if (r.code !== 0) return 0;
  try {
    return ((JSON.parse(r.stdout) as { svids?: unknown[] }).svids ?? []).length;
  } catch {
    return 0;
  }
}

/** One spire-agent run against `st`'s server: ms from spawn until it serves `n` SVIDs. */
async function timeToAllSvids(bin: string, st: Stack, port: number, dir: string, n: number, round: number): Promise<number> {
  const out = await mustRun(...st.serverCli(['token', 'generate', '-spiffeID', NODE_ALIAS, '-output', 'json']));
  const token = (JSON.parse(out.stdout) as { value?: string }).value;
  if (typeof token !== 'string' || token === '') throw new Error(`${st.name}: no join token in ${out.stdout}`);
  const d = join(dir, `agent-${st.name}-${round}`);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const l: SpireLayout = { dir: d, trustDomain: TRUST_DOMAIN, serverPort: port, healthPort: 0, serverSocket: '', agentSocket: join(d, 'api.sock'), bundlePath: join(d, 'bundle.pem') };
  writeFileSync(l.bundlePath, (await mustRun(...st.serverCli(['bundle', 'show']))).stdout);
  const conf = writeSpireAgentConf(l);
  const metricsPort = await freePort();
  appendFileSync(conf, `telemetry {\n  Prometheus {\n    host = "127.0.0.1"\n    port = ${metricsPort}\n  }\n}\n`);
  const start = performance.now();
  const agent = new Proc(`spire-agent → ${st.name}`, join(bin, 'spire-agent'), ['run', '-config', conf, '-joinToken', token]);
  try {
    // Polled every 20 ms: the gauge moves once per batch the server answers.
    await until(`${n} cached X509-SVIDs in spire-agent on ${st.name}'s server`, async () => (await cachedByMetrics(metricsPort)) >= n, 600_000, agent, 20);
    const ms = performance.now() - start;
    // Not timed: a workload every entry selects gets all of them.
    const served = await cachedSvids(bin, l.agentSocket);
    if (served < n) throw new Error(`spire-agent on ${st.name}'s server caches ${n} SVIDs but served ${served} to a workload`);
    return ms;
  } finally {
    await agent.stop();
  }
}

export async function benchSpireAgent(options: SpireAgentBenchOptions = {}): Promise<ServerBenchLine[]> {
  const spire = spireBinDir();
  if ('missing' in spire) return [{ name: 'spire-agent', text: `not measured: ${spire.missing}` }];
  const n = options.entries ?? 1000;
  const rounds = options.rounds ?? 5;
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-spire-agent-'));
  const s = await SpireStack.create(spire.dir, dir);
  const m = await MayflyStack.create(dir);
  try {
    for (const st of [s, m]) {
      await st.startServer();
      await st.waitServerReady();
      await addEntries(st, dir, n);
    }
    const times: Record<'SPIRE' | 'Mayfly', number[]> = { SPIRE: [], Mayfly: [] };
    for (let r = 0; r < rounds; r++) {
      for (const st of [s, m]) times[st.name].push(await timeToAllSvids(spire.dir, st, st.serverPort, dir, n, r));
    }
    const mt = median(times.Mayfly);
    const sp = median(times.SPIRE);
    const load = loadavg().map((x) => x.toFixed(1)).join('/');
    return [
      {
        name: 'spire-agent',
        text: `time until spire-agent caches ${n} X509-SVIDs: Mayfly's server ${(mt / 1000).toFixed(2)} s, SPIRE's ${(sp / 1000).toFixed(2)} s: ratio ${(mt / sp).toFixed(2)} (goal ≤ 0.5; median of ${rounds}; runs Mayfly ${times.Mayfly.map((t) => (t / 1000).toFixed(2)).join('/')} s, SPIRE ${times.SPIRE.map((t) => (t / 1000).toFixed(2)).join('/')} s; load ${load})`,
      },
    ];
  } finally {
    await s.stop();
    await m.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
