/**
 * @module bench/audit
 *
 * `npm run bench -- audit` (issue 10): X.509-SVIDs per second through BatchNewX509SVID with
 * the audit ledger on (every SVID recorded, group-committed, before the call answers), as a
 * ratio to the same server without it, measured in the same run. The two are alternated
 * (off, on, off, on, ...) so a change in the shared machine's load falls on both; the ratio
 * is on the medians of five rounds each (an odd count: the median is a measured round, not
 * the better of two). With the ledger on, each SVID's issuance record rides in the write of
 * its audit record (one synced, group-committed write); off, each call syncs its own.
 * Goal: ≥ 0.8.
 */
import { loadavg } from 'node:os';
import { svidThroughput, type ServerBenchLine } from './server.js';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export async function benchAudit(rounds = 5): Promise<ServerBenchLine[]> {
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
      name: 'X.509-SVIDs via BatchNewX509SVID with the audit ledger on (every SVID recorded before the call answers)',
      text: `${fmt(withLedger)}/s  (ratio ${(withLedger / baseline).toFixed(2)} vs the same server with the ledger off ${fmt(baseline)}/s; medians of ${rounds} alternated rounds, off [${off.map(fmt).join(', ')}] on [${on.map(fmt).join(', ')}]; goal ≥ 0.8; load ${loadavg()[0]!.toFixed(2)})`,
    },
  ];
}
