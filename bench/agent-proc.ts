/**
 * @module bench/agent-proc
 *
 * A Mayfly agent in its own process for the agent benchmarks (bench/agent), so the
 * Workload API it serves and the workloads calling it do not share an event loop. Started
 * with `fork`, argv[2] = JSON `{ serverAddress, trustDomain, dataDir, socketPath,
 * joinToken, trustBundlePath }`; sends `{ type: 'ready', agentId }` once the first entry
 * set is applied; `{ type: 'stop' }` stops it and exits 0. `BENCH_AGENT_LOG=1` prints the
 * agent's log lines on stderr.
 */
import { MayflyAgent } from '../src/agent/agent.js';

interface Args {
  serverAddress: string;
  trustDomain: string;
  dataDir: string;
  socketPath: string;
  joinToken: string;
  trustBundlePath: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  // BENCH_AGENT_LOG=1: the agent's log lines on stderr (diagnosing a bench run).
  const line = (level: string) => (fields: object, message: string): void => {
    console.error(`[agent ${level}] ${message} ${JSON.stringify(fields, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`);
  };
  const logger = process.env.BENCH_AGENT_LOG === '1' ? { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') } : undefined;
  const agent = new MayflyAgent({ ...args, ...(logger !== undefined ? { logger } : {}) });
  await agent.start();
  await agent.whenReady(60_000);
  process.send?.({ type: 'ready', agentId: agent.agentSvid?.spiffeId ?? '' });
  const stop = (): void => {
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stop') stop();
  });
  process.on('disconnect', stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
