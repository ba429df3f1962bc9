/**
 * @module bench/cli
 *
 * `npm run bench -- cli`: the wall time of one `mayfly-server` CLI call (`healthcheck`,
 * `entry show`, `entry create`) against a real `mayfly-server run` on its admin socket,
 * as a ratio to `node -e 0` (Node's own start-up) measured in the same run, interleaved so
 * both see the same load. Needs no SPIRE (the `spire` suite sets these beside SPIRE's CLI).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerBenchLine } from './server.js';
import { freePort, httpOk, median, mustRun, Proc, REPO, until } from './spire-procs.js';

const TRUST_DOMAIN = 'bench.example';

export async function benchCli(options: { runs?: number } = {}): Promise<ServerBenchLine[]> {
  const runs = options.runs ?? 15;
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-cli-'));
  const socket = join(dir, 'server', 'api.sock');
  const healthPort = await freePort();
  const server = new Proc('mayfly-server', process.execPath, [
    join(REPO, 'bin', 'mayfly-server.js'), 'run', '-trustDomain', TRUST_DOMAIN, '-dataDir', join(dir, 'data'),
    '-socketPath', socket, '-serverPort', String(await freePort()), '-metricsPort', String(healthPort), '-logLevel', 'WARN',
  ]);
  const lines: ServerBenchLine[] = [];
  try {
    await until('mayfly-server /ready', () => httpOk(healthPort, '/ready'), 120_000, server, 10);
    const cli = (args: readonly string[]): string[] => [join(REPO, 'bin', 'mayfly-server.js'), ...args, '-socketPath', socket];
    await mustRun(process.execPath, cli(['entry', 'create', '-parentID', `spiffe://${TRUST_DOMAIN}/p`, '-spiffeID', `spiffe://${TRUST_DOMAIN}/shown`, '-selector', 'unix:uid:1']));
    const calls: Array<[string, (i: number) => string[]]> = [
      ['healthcheck', () => cli(['healthcheck'])],
      ['entry show', () => cli(['entry', 'show', '-spiffeID', `spiffe://${TRUST_DOMAIN}/shown`])],
      ['entry create', (i) => cli(['entry', 'create', '-parentID', `spiffe://${TRUST_DOMAIN}/p`, '-spiffeID', `spiffe://${TRUST_DOMAIN}/c/${i}`, '-selector', 'unix:uid:2'])],
    ];
    for (const [label, args] of calls) {
      const bare: number[] = [];
      const ours: number[] = [];
      for (let i = 0; i < runs; i++) {
        bare.push((await mustRun(process.execPath, ['-e', '0'])).ms);
        ours.push((await mustRun(process.execPath, args(i))).ms);
      }
      const b = median(bare);
      const m = median(ours);
      lines.push({
        name: `cli ${label}`,
        text: `${m.toFixed(1)} ms median of ${runs}: ratio ${(m / b).toFixed(2)} vs node -e 0 ${b.toFixed(1)} ms (load ${loadavg()[0]?.toFixed(2)})`,
      });
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}
