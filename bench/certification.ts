/**
 * @module bench/certification
 *
 * `npm run bench -- certification` (issue 11): X.509-SVIDs per second through
 * BatchNewX509SVID with owner certification on (server/certification: a lapse check per
 * item, from an in-memory index), as a ratio to the same server with it off. Both run the
 * audit ledger (certification needs it), so the ratio is the check alone; alternated rounds
 * (off, on, …) so a change in the shared machine's load falls on both.
 */
import { loadavg } from 'node:os';
import { svidThroughput, type ServerBenchLine } from './server.js';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export async function benchCertification(rounds = 3): Promise<ServerBenchLine[]> {
  const opts = { svidMs: 4000, svidMax: 200_000, batch: 100, inflight: 4, entries: 0 };
  const off: number[] = [];
  const on: number[] = [];
  for (let r = 0; r < rounds; r++) {
    off.push((await svidThroughput(opts, { MAYFLY_BENCH_AUDIT: '1' })).perSecond);
    on.push((await svidThroughput(opts, { MAYFLY_BENCH_CERTIFICATION: '1' })).perSecond);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const baseline = median(off);
  const withChecks = median(on);
  return [
    {
      name: 'X.509-SVIDs via BatchNewX509SVID with owner certification checks on (audit ledger on in both)',
      text: `${fmt(withChecks)}/s  (ratio ${(withChecks / baseline).toFixed(2)} vs the same server with certification off ${fmt(baseline)}/s; medians of ${rounds} alternated rounds, off [${off.map(fmt).join(', ')}] on [${on.map(fmt).join(', ')}]; load ${loadavg()[0]!.toFixed(2)})`,
    },
  ];
}
