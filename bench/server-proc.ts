/**
 * @module bench/server-proc
 *
 * A Mayfly server in its own process for the server benchmarks (bench/server), so its
 * memory and start time are its own and the load generator runs beside it as a real agent
 * would. Started with `fork` and driven over the IPC channel:
 * - argv: `<dataDir>`; it starts a `MayflyServer` on 127.0.0.1 (free port) with a LevelDB
 *   datastore and disk CA keys under dataDir, then sends
 *   `{ type: 'ready', port, adminSocketPath, startMs, rss }` (startMs from process start);
 * - `{ type: 'rss' }` → `{ type: 'rss', rss }` (after a GC when `--expose-gc` was given);
 * - `{ type: 'cpu' }` → `{ type: 'cpu', micros }`: user + system CPU of all its threads;
 * - `{ type: 'stop' }` → drains, exits 0.
 * `MAYFLY_BENCH_CSR_WORKERS` sets the server's `csrWorkers` (default: the server's own);
 * `MAYFLY_BENCH_AUDIT=1` gives it the audit ledger as `mayfly-server run` composes it
 * (server/audit-ledger, default settings), so every SVID is recorded before it is returned;
 * `MAYFLY_BENCH_USAGE=1` gives it entry usage recording as `mayfly-server run` does
 * (server/usage-recorder, issue 11); `MAYFLY_BENCH_CERTIFICATION=1` owner certification
 * (server/certification, with the audit ledger it needs).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { JoinTokenAttestor } from '../src/attestors/node/join_token/join_token.js';
import { DiskKeyManager } from '../src/ca/disk-key-manager.js';
import { FileJournalStore } from '../src/ca/journal-store.js';
import { ServerCa } from '../src/ca/server-ca.js';
import { openLevelDatastore } from '../src/datastore/level/level.js';
import { MayflyServer } from '../src/server/server.js';
import { startServerAudit, type ServerAudit } from '../src/server/audit-ledger.js';
import { DEFAULT_AUDIT } from '../src/server/config-audit.js';
import { EntryUsageRecorder } from '../src/server/usage-recorder.js';
import { SILENT_LOGGER } from '../src/server/ports.js';
import { SpiffeId } from '../src/spiffe/id.js';

interface Command {
  type: 'rss' | 'cpu' | 'stop';
}

function send(msg: unknown): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (dataDir === undefined) throw new TypeError('usage: server-proc <dataDir>');
  // The parts `mayfly-server run` builds by default (server/catalog), without its metrics.
  const datastore = await openLevelDatastore({ path: join(dataDir, 'datastore') });
  const ca = new ServerCa({ trustDomain: 'bench.example', keyManager: new DiskKeyManager({ dataDir }), journal: new FileJournalStore({ path: join(dataDir, 'ca-journal.json') }) });
  await ca.init();
  ca.start();
  let audit: ServerAudit | undefined;
  // Owner certification (issue 11) needs the ledger: MAYFLY_BENCH_CERTIFICATION=1 turns both on.
  const certification = process.env.MAYFLY_BENCH_CERTIFICATION === '1';
  if (process.env.MAYFLY_BENCH_AUDIT === '1' || certification) {
    audit = await startServerAudit({
      datastore,
      ca,
      serverId: SpiffeId.parse('spiffe://bench.example/spire/server'),
      instanceId: 'bench',
      settings: DEFAULT_AUDIT,
      logger: SILENT_LOGGER,
    });
  }
  const usage = process.env.MAYFLY_BENCH_USAGE === '1' ? new EntryUsageRecorder({ store: datastore }) : undefined;
  usage?.start();
  const server = new MayflyServer({
    trustDomain: 'bench.example',
    dataDir,
    datastore,
    ca,
    attestors: [new JoinTokenAttestor({ datastore })],
    adminSocketPath: join(dataDir, 'admin.sock'),
    bindAddress: '127.0.0.1',
    port: 0,
    drainMs: 500,
    ...(audit !== undefined ? { audit: audit.ledger } : {}),
    ...(usage !== undefined ? { usage } : {}),
    ...(certification ? { certification: { intervalSeconds: 90 * 86_400, graceSeconds: 14 * 86_400 } } : {}),
    ...(process.env.MAYFLY_BENCH_CSR_WORKERS !== undefined ? { csrWorkers: Number(process.env.MAYFLY_BENCH_CSR_WORKERS) } : {}),
  });
  await server.start();
  send({ type: 'ready', port: server.port, adminSocketPath: server.adminSocketPath, startMs: performance.now(), rss: process.memoryUsage().rss });
  const stop = async (): Promise<void> => {
    await server.stop();
    await usage?.close();
    await audit?.stop();
    ca.stop();
    await datastore.close();
  };
  process.on('message', (cmd: Command) => {
    if (cmd.type === 'rss') {
      (globalThis as { gc?: () => void }).gc?.();
      send({ type: 'rss', rss: process.memoryUsage().rss });
    } else if (cmd.type === 'cpu') {
      const u = process.cpuUsage();
      send({ type: 'cpu', micros: u.user + u.system });
    } else if (cmd.type === 'stop') {
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    }
  });
  process.on('disconnect', () => {
    stop().finally(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
