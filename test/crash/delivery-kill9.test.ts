/**
 * Delivery records across an agent killed with SIGKILL: the real `mayfly-agent run` process
 * holds delivery records it cannot send (its server is down) when it is killed. The next
 * agent process on the same data directory reports them to the ledger as lost, counted at the
 * dead process's last flush and marked `atLeast` (deliveries after that flush are unknown).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { parseHcl } from '../../src/config/hcl.js';
import { WorkloadApiClient } from '../../src/sdk/index.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig, type ServerSettings } from '../../src/server/config.js';
import type { WireBundle } from '../../src/server/messages.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SERVER = join(ROOT, 'bin', 'mayfly-server.js');
const AGENT = join(ROOT, 'bin', 'mayfly-agent.js');
const TD = 'kill9-delivery.test';
const uid = String(process.getuid?.() ?? 0);
const dir = mkdtempSync(join(tmpdir(), 'mayfly-delivery-kill9-'));
const children = new Set<ChildProcess>();
let runner: ServerRunner | undefined;
let admin: ServerApiClients | undefined;

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  admin?.close();
  await runner?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SERVER, ...args], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
}

interface Shown {
  kind: string;
  reason?: string;
  count?: number;
  atLeast?: boolean;
  pid?: number;
}

it('records buffered when the agent is killed with SIGKILL reach the ledger as a lower-bound lost count', async () => {
  const port = await freePort();
  const settings: ServerSettings = resolveServerConfig(
    parseHcl(`
      server {
        trust_domain = "${TD}"
        data_dir = "${join(dir, 'server')}"
        socket_path = "${join(dir, 'admin.sock')}"
        bind_address = "127.0.0.1"
        bind_port = "${port}"
      }
      plugins {
        KeyManager "disk" { plugin_data { keys_path = "${join(dir, 'server', 'keys.json')}" } }
      }`),
    {},
  );
  settings.metrics.enabled = false;
  const startServer = async (): Promise<void> => {
    runner = new ServerRunner({ settings, logger: createServerLogger('error') });
    await runner.start();
    admin = adminSocketClients(settings.socketPath);
  };
  const stopServer = async (): Promise<void> => {
    admin?.close();
    admin = undefined;
    await runner?.stop();
    runner = undefined;
  };
  const show = async (): Promise<Shown[]> =>
    (JSON.parse(await cli(['audit', 'show', '-socketPath', settings.socketPath, '-output', 'json'])) as { records: { record: Shown }[] }).records.map((h) => h.record);

  await startServer();
  const bundle = await unaryCall<WireBundle>(admin!.Bundle, 'GetBundle', {});
  writeFileSync(join(dir, 'bundle.pem'), pemEncodeCertificates(bundle.x509_authorities));
  const parentId = `spiffe://${TD}/node1`;
  const token = await unaryCall<{ value: string }>(admin!.Agent, 'CreateJoinToken', { ttl: 600, agent_id: parentId });
  await unaryCall(admin!.Entry, 'BatchCreateEntry', { entries: [{ spiffe_id: `spiffe://${TD}/web`, parent_id: parentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }] });

  const agentSocket = join(dir, 'agent-public', 'api.sock');
  const dataDir = join(dir, 'agent-data');
  const conf = join(dir, 'agent.conf');
  writeFileSync(
    conf,
    `agent {
  trust_domain = "${TD}"
  data_dir = "${dataDir}"
  socket_path = "${agentSocket}"
  trust_bundle_path = "${join(dir, 'bundle.pem')}"
  server_address = "127.0.0.1"
  server_port = ${port}
  delivery_records { flush_interval = "1s" }
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`,
  );
  const log: string[] = [];
  const startAgent = (args: string[]): ChildProcess => {
    const child = spawn(process.execPath, [AGENT, 'run', '-config', conf, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };
  const fetchOnce = async (): Promise<void> => {
    const c = new WorkloadApiClient({ socketPath: agentSocket, timeoutMs: 10_000 });
    try {
      await c.fetchX509Svid();
    } finally {
      c.close();
    }
  };

  const agent = startAgent(['-joinToken', token.value]);
  await until('a first SVID from the agent', async () => {
    await fetchOnce();
    return true;
  });
  // That delivery reached the ledger: the buffer is empty.
  await until('the first delivery record', async () => ((await show()).some((r) => r.kind === 'svid.delivered') ? true : undefined));

  await stopServer();
  for (let i = 0; i < 3; i++) await fetchOnce();
  // A failed flush has counted them on disk.
  const counterFile = join(dataDir, 'delivery-records.json');
  await until('the unsent count on disk', async () => ((JSON.parse(readFileSync(counterFile, 'utf8')) as { unsent: number }).unsent >= 3 ? true : undefined), 30_000);
  await fetchOnce(); // possibly after the last count: unknown to the next process
  await new Promise<void>((resolve) => {
    agent.once('exit', () => resolve());
    agent.kill('SIGKILL');
  });

  await startServer();
  startAgent([]);
  const lost = await until('the agent-restart lost record', async () => (await show()).find((r) => r.kind === 'svid.deliveries-lost' && r.reason === 'agent-restart'), 90_000);
  expect(lost.atLeast, log.join('')).toBe(true);
  expect(lost.count).toBeGreaterThanOrEqual(3);
  expect(lost.count).toBeLessThanOrEqual(4);
}, 240_000);
