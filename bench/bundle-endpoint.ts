/**
 * @module bench/bundle-endpoint
 *
 * Bundle endpoint requests per second (issue 9: goal ≥ 0.8 of the baseline) against a
 * plain `node:https` server serving the same bytes with the same certificate, both in one
 * child process (bench/bundle-endpoint-proc), measured in the same run by the same client:
 * keep-alive connections, a fixed number of requests in flight, alternating 500 ms slices
 * (the order swapped every round) so load from other processes hits both alike; the median
 * of 7 rounds, the ratio the median of the 7 rounds' ratios.
 */
import { fork } from 'node:child_process';
import { Agent, request } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One printed line (the shape bench/index prints: a rate, its baseline and their ratio). */
export interface BundleEndpointBenchLine {
  name: string;
  perSecond: number;
  baseline: number;
  ratio: number;
  baselineName: string;
}

const CONNECTIONS = 8;
const IN_FLIGHT = 32;

/** Requests completed against `port` in `ms` milliseconds, per second. */
async function rate(port: number, agent: Agent, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let done = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent, rejectUnauthorized: false }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`bundle endpoint bench: status ${res.statusCode ?? 0}`));
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end();
    });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < until) {
        await one();
        done++;
      }
    }),
  );
  return (done * 1000) / (performance.now() - start);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function benchBundleEndpoint(opts: { msPerSlice?: number; rounds?: number } = {}): Promise<BundleEndpointBenchLine[]> {
  const ms = opts.msPerSlice ?? 500;
  const rounds = opts.rounds ?? 7;
  const here = dirname(fileURLToPath(import.meta.url));
  const child = fork(join(here, 'bundle-endpoint-proc.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ports = await new Promise<{ ours: number; plain: number }>((resolve, reject) => {
      child.once('message', (m: { type: string; ours: number; plain: number }) => resolve(m));
      child.once('exit', (code) => reject(new Error(`bundle endpoint bench server exited (${code ?? 'signal'})`)));
    });
    const agents = { ours: new Agent({ keepAlive: true, maxSockets: CONNECTIONS }), plain: new Agent({ keepAlive: true, maxSockets: CONNECTIONS }) };
    // Warm up: TLS sessions, JIT.
    await rate(ports.ours, agents.ours, 300);
    await rate(ports.plain, agents.plain, 300);
    const ours: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Each round in the other order, so neither always runs right after the other.
      if (i % 2 === 0) {
        ours.push(await rate(ports.ours, agents.ours, ms));
        plain.push(await rate(ports.plain, agents.plain, ms));
      } else {
        plain.push(await rate(ports.plain, agents.plain, ms));
        ours.push(await rate(ports.ours, agents.ours, ms));
      }
    }
    agents.ours.destroy();
    agents.plain.destroy();
    const o = median(ours);
    const p = median(plain);
    // The ratio of each round's pair (measured back to back), then their median: steadier than a ratio of medians on a shared machine.
    const ratio = median(ours.map((x, i) => x / (plain[i] as number)));
    return [{ name: `bundle endpoint GET / (https, ${CONNECTIONS} keep-alive connections, ${IN_FLIGHT} in flight)`, perSecond: o, baseline: p, ratio, baselineName: 'plain node:https, same bytes and cert' }];
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.send({ type: 'stop' });
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
