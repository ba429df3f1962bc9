/**
 * @module bench/usage
 *
 * `npm run bench -- usage` (issue 11): X.509-SVIDs per second through BatchNewX509SVID with
 * entry usage recording on (server/usage-recorder: in memory, written in batches), as a ratio
 * to the same server with it off, measured in the same run, alternated (off, on, off, on) so
 * a change in the shared machine's load falls on both. Goal: ≥ 0.9.
 */
import { loadavg } from 'node:os';
import { svidThroughput, type ServerBenchLine } from './server.js';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export async function benchUsage(rounds = 3): Promise<ServerBenchLine[]> {
  const opts = { svidMs: 4000, svidMax: 200_000, batch: 100, inflight: 4, entries: 0 };
  const off: number[] = [];
  const on: number[] = [];
  for (let r = 0; r < rounds; r++) {
    off.push((await svidThroughput(opts)).perSecond);
    on.push((await svidThroughput(opts, { MAYFLY_BENCH_USAGE: '1' })).perSecond);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const baseline = median(off);
  const withUsage = median(on);
  return [
    {
      name: 'X.509-SVIDs via BatchNewX509SVID with entry usage recording on (batched off the issuance path)',
      text: `${fmt(withUsage)}/s  (ratio ${(withUsage / baseline).toFixed(2)} vs the same server with it off ${fmt(baseline)}/s; medians of ${rounds} alternated rounds, off [${off.map(fmt).join(', ')}] on [${on.map(fmt).join(', ')}]; goal ≥ 0.9; load ${loadavg()[0]!.toFixed(2)})`,
    },
  ];
}
