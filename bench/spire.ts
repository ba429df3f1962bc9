/**
 * @module bench/spire
 *
 * `npm run bench -- spire`: Mayfly side by side with SPIRE v1.13.3 on this machine, in one
 * run, with the same clients (go-spiffe's Workload API client, each project's own CLI),
 * every figure as the ratio Mayfly / SPIRE:
 * - one CLI call (`healthcheck`, `entry show`, `entry create`), median of 10, also against
 *   `node -e 0` (the floor of any Node CLI);
 * - agent RSS with 10 and with 1,000 entries (every SVID fetched, then settled);
 * - FetchX509SVID / FetchJWTSVID p50 and p99 with one reused go-spiffe client;
 * - server restart with 10,000 entries → `/ready`, median of 3.
 * Signing throughput is `npm run bench -- server` (SPIRE rate-limits agent signing).
 * When SPIRE's binaries or the go-spiffe client are missing, it says so and measures nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerBenchLine } from './server.js';
import { goWorkloadBinary, median, medianWallMs, mustRun, rssMiB, spireBinDir, until, writeEntriesFile } from './spire-procs.js';
import { MayflyStack, NODE_ALIAS, SpireStack, TRUST_DOMAIN, type Stack } from './spire-stacks.js';

export interface SpireBenchOptions {
  /** CLI calls per command (median). */
  cliRuns?: number;
  /** timed Workload API calls per RPC and stack. */
  fetches?: number;
  /** entries for the restart row. */
  restartEntries?: number;
  restarts?: number;
}

interface Latency {
  svids: number;
  x509Micros: number[];
  jwtMicros: number[];
}

const pct = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const ms = (micros: number): string => `${(micros / 1000).toFixed(2)} ms`;
const load = (): string => `load ${loadavg().map((l) => l.toFixed(1)).join('/')}`;

export async function benchSpire(options: SpireBenchOptions = {}): Promise<ServerBenchLine[]> {
  const spire = spireBinDir();
  const go = goWorkloadBinary();
  if ('missing' in spire || 'missing' in go) {
    return [{ name: 'spire', text: `not measured: ${'missing' in spire ? spire.missing : ''}${'missing' in go ? ` ${go.missing}` : ''}`.trim() }];
  }
  const cliRuns = options.cliRuns ?? 10;
  const fetches = options.fetches ?? 2000;
  const restartEntries = options.restartEntries ?? 10_000;
  const restarts = options.restarts ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-spire-'));
  const stacks: Stack[] = [await SpireStack.create(spire.dir, dir), await MayflyStack.create(dir)];
  const [s, m] = stacks as [Stack, Stack];
  const lines: ServerBenchLine[] = [];
  const row = (name: string, mayfly: number, spireValue: number, unit: string, extra = ''): void => {
    const f = (v: number): string => (unit === 'ms' ? `${v.toFixed(1)} ms` : `${v.toFixed(1)} ${unit}`);
    lines.push({ name: `spire ${name}`, text: `Mayfly ${f(mayfly)}, SPIRE ${f(spireValue)}: ratio ${(mayfly / spireValue).toFixed(2)}${extra} (${load()})` });
  };
  const latency = async (st: Stack, n: number, warmup: number): Promise<Latency> => {
    const r = await mustRun(go.path, ['latency', '-addr', `unix://${st.agentSocket}`, '-n', String(n), '-warmup', String(warmup), '-audience', 'bench', '-timeout', '600s'], 620_000);
    return JSON.parse(r.stdout) as Latency;
  };
  const waitSvids = async (st: Stack, want: number): Promise<void> => {
    await until(`${st.name} agent serving ${want} X509-SVIDs`, async () => {
      try {
        return (await latency(st, 0, 0)).svids >= want;
      } catch {
        return false;
      }
    }, 600_000, undefined, 500);
  };
  const createEntries = async (st: Stack, parentId: string, prefix: string, from: number, n: number): Promise<void> => {
    for (let i = 0; i < n; i += 500) {
      const file = join(dir, `${st.name}-${prefix}-${from + i}.json`);
      writeEntriesFile(file, { trustDomain: TRUST_DOMAIN, parentId, prefix, from: from + i, n: Math.min(500, n - i), selector: `unix:uid:${process.getuid?.() ?? 0}` });
      const [file0, args] = st.serverCli(['entry', 'create', '-data', file]);
      await mustRun(file0, args, 300_000);
    }
  };
  const settledRss = async (pid: number): Promise<number> => {
    await new Promise((r) => setTimeout(r, 3000));
    return rssMiB(pid);
  };

  try {
    for (const st of stacks) await st.startServer();
    for (const st of stacks) await st.waitServerReady();

    // One CLI call.
    const bare = await medianWallMs(process.execPath, () => ['-e', '0'], cliRuns);
    for (const [label, args] of [
      ['healthcheck', (): string[] => ['healthcheck']],
      ['entry show', (): string[] => ['entry', 'show', '-spiffeID', NODE_ALIAS]],
      ['entry create', (i: number): string[] => ['entry', 'create', '-parentID', `spiffe://${TRUST_DOMAIN}/cli-parent`, '-spiffeID', `spiffe://${TRUST_DOMAIN}/cli/created/${i}`, '-selector', 'unix:uid:4242']],
    ] as const) {
      const t: Record<string, number> = {};
      for (const st of [m, s]) {
        const [file] = st.serverCli([]);
        t[st.name] = await medianWallMs(file, (i) => st.serverCli(args(i))[1], cliRuns);
      }
      row(`CLI ${label} (median of ${cliRuns})`, t.Mayfly as number, t.SPIRE as number, 'ms', `; node -e 0 ${bare.toFixed(1)} ms, Mayfly ${((t.Mayfly as number) / bare).toFixed(1)}x of it`);
    }

    // Agents with 10 entries: RSS, then Workload API latency.
    for (const st of stacks) {
      await createEntries(st, NODE_ALIAS, 'w', 0, 10);
      await st.startAgent();
    }
    for (const st of stacks) await waitSvids(st, 10);
    const rss10 = { SPIRE: await settledRss(s.agentPid), Mayfly: await settledRss(m.agentPid) };
    row('agent RSS, 10 entries', rss10.Mayfly, rss10.SPIRE, 'MiB');

    const lat: Record<string, Latency[]> = { Mayfly: [], SPIRE: [] };
    for (let round = 0; round < 2; round++) for (const st of [m, s]) (lat[st.name] as Latency[]).push(await latency(st, fetches / 2, 100));
    const merged = (name: string, key: 'x509Micros' | 'jwtMicros'): number[] => (lat[name] as Latency[]).flatMap((l) => l[key]).sort((a, b) => a - b);
    for (const [label, key] of [['FetchX509SVID', 'x509Micros'], ['FetchJWTSVID', 'jwtMicros']] as const) {
      const mm = merged('Mayfly', key);
      const ss = merged('SPIRE', key);
      lines.push({
        name: `spire ${label}, go-spiffe client reused, 10 SVIDs, ${mm.length} calls`,
        text: `p50 Mayfly ${ms(pct(mm, 50))} / SPIRE ${ms(pct(ss, 50))} (ratio ${(pct(mm, 50) / pct(ss, 50)).toFixed(2)}); p99 Mayfly ${ms(pct(mm, 99))} / SPIRE ${ms(pct(ss, 99))} (ratio ${(pct(mm, 99) / pct(ss, 99)).toFixed(2)}) (${load()})`,
      });
    }

    // 1,000 entries.
    for (const st of stacks) await createEntries(st, NODE_ALIAS, 'w', 10, 990);
    for (const st of stacks) await waitSvids(st, 1000);
    const rss1k = { SPIRE: await settledRss(s.agentPid), Mayfly: await settledRss(m.agentPid) };
    row('agent RSS, 1,000 entries', rss1k.Mayfly, rss1k.SPIRE, 'MiB');

    // Server restart with `restartEntries` entries (the rest under a parent no agent has).
    for (const st of stacks) {
      await st.stopAgent();
      await createEntries(st, `spiffe://${TRUST_DOMAIN}/elsewhere`, 'r', 0, Math.max(0, restartEntries - 1000));
    }
    const restart: Record<string, number[]> = { Mayfly: [], SPIRE: [] };
    for (let i = 0; i < restarts; i++) {
      for (const st of [m, s]) {
        await st.stopServer();
        const t0 = performance.now();
        await st.startServer();
        await st.waitServerReady();
        (restart[st.name] as number[]).push(performance.now() - t0);
      }
    }
    row(`server restart with ${restartEntries.toLocaleString('en-US')} entries -> /ready (median of ${restarts})`, median(restart.Mayfly as number[]), median(restart.SPIRE as number[]), 'ms');
    lines.push({ name: 'spire signing', text: 'X.509-SVIDs through the agent API: see `npm run bench -- server` (ratio to raw ECDSA sign; SPIRE limits agent signing per IP)' });
    return lines;
  } finally {
    for (const st of stacks) await st.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
