/**
 * @module bench/audit
 *
 * `npm run bench -- audit` (issue 10): X.509-SVIDs per second through BatchNewX509SVID with
 * the audit ledger on (every SVID recorded, group-committed, before the call answers), as a
 * ratio to the same server without it, measured in the same run. The two are alternated
 * (off, on, off, on) so a change in the shared machine's load falls on both; the ratio is
 * on the medians. Goal: ≥ 0.8.
 */
import { loadavg } from 'node:os';
import type { BenchLine } from './index.js';
import { svidThroughput } from './server.js';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export async function benchAudit(rounds = 2): Promise<BenchLine[]> {
  const opts = { svidMs: 4000, svidMax: 200_000, batch: 100, inflight: 4, entries: 0 };
  const off: number[] = [];
  const on: number[] = [];
  for (let r = 0; r < rounds; r++) {
    off.push((await svidThroughput(opts)).perSecond);
    on.push((await svidThroughput(opts, { MAYFLY_BENCH_AUDIT: '1' })).perSecond);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const baseline = median(off);
  const withLedger = median(on);
  return [
    {
      name: `X.509-SVIDs via BatchNewX509SVID with the audit ledger on (${rounds} rounds each, off [${off.map(fmt).join(', ')}] on [${on.map(fmt).join(', ')}]; goal ratio ≥ 0.8; load ${loadavg()[0]!.toFixed(2)})`,
      perSecond: withLedger,
      baseline,
      ratio: withLedger / baseline,
      baselineName: 'the same server with the ledger off',
    },
  ];
}
