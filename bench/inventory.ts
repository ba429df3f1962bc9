/**
 * @module bench/inventory
 *
 * `npm run bench -- inventory` (issue 11): the inventory report over 100,000 entries in a
 * real LevelDB datastore (half of them with usage records, some owners missing, duplicates
 * and over-broad selectors among them), timed as `inventoryFromStore` does it for
 * `mayfly-server inventory` and the gauges. The baseline, measured in the same run on the
 * same store, is reading what the report reads (every entry, agent and usage record) without
 * computing anything; the RSS growth is the report's peak resident set over the process's
 * before it. Goals: report < 5 s, RSS growth < 100 MB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MAX_BATCH_CREATE, openLevelDatastore, type Datastore } from '../src/datastore/index.js';
import type { EntryInput } from '../src/registration/entry.js';
import { inventoryFromStore } from '../src/server/inventory.js';
import type { ServerBenchLine } from './server.js';

const TD = 'bench.example';
const SERVER_ID = `spiffe://${TD}/spire/server`;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(0)} MB`;

function entryInput(i: number): EntryInput {
  const dup = i % 1000 === 999; // same parent and selectors as entry i-1, another ID
  const n = dup ? i - 1 : i;
  return {
    spiffeId: `spiffe://${TD}/ns/ns${n % 100}/sa/svc${i}`,
    parentId: `spiffe://${TD}/spire/agent/join_token/node${n % 50}`,
    selectors: i % 5000 === 1 ? [{ type: 'unix', value: 'uid:0' }] : [{ type: 'k8s', value: `ns:ns${n % 100}` }, { type: 'k8s', value: `sa:svc${n}` }],
    ...(i % 10 === 0 ? {} : { owner: `team-${i % 20}` }),
    x509SvidTtl: 300 + (i % 3600),
  };
}

async function fill(ds: Datastore, n: number): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  for (let first = 0; first < n; first += MAX_BATCH_CREATE) {
    const inputs = Array.from({ length: Math.min(MAX_BATCH_CREATE, n - first) }, (_, j) => entryInput(first + j));
    const made = await ds.createEntries(inputs);
    const used = made.flatMap((r, j) => (r.entry !== undefined && (first + j) % 2 === 0 ? [r.entry.entryId] : []));
    await ds.recordEntryUsage(used.map((entryId) => ({ entryId, firstIssuedAt: now - 86_400 * 60, lastIssuedAt: now - ((first % 7) * 86_400 * 10), issuanceCount: 3, agents: [`spiffe://${TD}/spire/agent/join_token/node1`] })));
  }
}

async function readAll(ds: Datastore): Promise<number> {
  let count = 0;
  for (const list of [(q: { pageSize: number; pageToken?: string }) => ds.listEntries(q), (q: { pageSize: number; pageToken?: string }) => ds.listAgents(q)]) {
    let pageToken: string | undefined;
    for (;;) {
      const page = await list({ pageSize: 1000, ...(pageToken === undefined ? {} : { pageToken }) });
      count += page.items.length;
      if (page.nextPageToken === '') break;
      pageToken = page.nextPageToken;
    }
  }
  return count + (await ds.listEntryUsage()).length;
}

/** Peak RSS while `run` runs (sampled every 10 ms), and its result and wall time. */
async function measured<T>(run: () => Promise<T>): Promise<{ value: T; ms: number; peakRss: number }> {
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 10);
  const t0 = performance.now();
  try {
    const value = await run();
    return { value, ms: performance.now() - t0, peakRss: Math.max(peakRss, process.memoryUsage.rss()) };
  } finally {
    clearInterval(timer);
  }
}

export async function benchInventory(n = 100_000): Promise<ServerBenchLine[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-inventory-'));
  try {
    const ds = await openLevelDatastore({ path: join(dir, 'datastore') });
    try {
      await fill(ds, n);
      const now = Math.floor(Date.now() / 1000);
      const read: number[] = [];
      const report: number[] = [];
      let growth = 0;
      let findings = 0;
      for (let r = 0; r < 3; r++) {
        read.push((await measured(() => readAll(ds))).ms);
        globalThis.gc?.();
        const before = process.memoryUsage.rss();
        const m = await measured(() => inventoryFromStore(ds, SERVER_ID, now, 30));
        report.push(m.ms);
        growth = Math.max(growth, m.peakRss - before);
        findings = m.value.entries.length;
      }
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
      const baseline = median(read);
      const took = median(report);
      return [
        {
          name: `inventory report over ${fmt(n)} entries (LevelDB, half with usage records)`,
          text: `${(took / 1000).toFixed(2)} s, ${fmt(findings)} findings (ratio ${(took / baseline).toFixed(2)} of only reading the same entries, agents and usage records, ${(baseline / 1000).toFixed(2)} s; medians of 3; goal < 5 s; load ${loadavg()[0]!.toFixed(2)})`,
        },
        { name: 'RSS growth while the report runs (peak over before)', text: `${mb(growth)} (largest of 3 runs; goal < 100 MB)` },
      ];
    } finally {
      await ds.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
