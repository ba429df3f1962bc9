/**
 * Agent failover with the real binaries (issue 9, item 5): two `mayfly-server run`
 * processes of one trust domain on one real (throwaway) PostgreSQL, one `mayfly-agent run`
 * given both in `server_addresses`, and a workload (the SDK's WorkloadApiClient, in this
 * process) holding an open FetchX509SVID stream. The server the agent streams its entries
 * from (read from the agent's `mayfly_agent_server{address}` metric) is killed with SIGKILL
 * while entries keep being created on the other through its admin socket.
 *
 * Facts asserted, never durations: every entry created reaches the workload's stream; at
 * every observation (each update the stream delivers, and a sample of the workload's
 * current SVIDs taken every 50 ms from before the kill to the end) every SVID the workload
 * holds has a notAfter later than the moment it was observed, and the first workload
 * SVID is among them (nothing lapsed or was withdrawn); the workload's stream to the
 * agent never failed; the agent reports the survivor as its server and is ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestPostgres, type TestPostgres } from '../../src/datastore/postgres/testing.js';
import { WorkloadApiClient, type X509Context } from '../../src/sdk/index.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import type { WireBundle } from '../../src/server/messages.js';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SERVER = join(ROOT, 'bin', 'mayfly-server.js');
const AGENT = join(ROOT, 'bin', 'mayfly-agent.js');
const TD = 'failover.example.org';
const ENTRIES = 20;

let cluster: TestPostgres;
let dir: string;
const children = new Set<ChildProcess>();
const admins: ServerApiClients[] = [];
let workload: WorkloadApiClient | undefined;

beforeAll(async () => {
  cluster = await startTestPostgres();
  dir = mkdtempSync(join(tmpdir(), 'mayfly-failover-'));
});
afterAll(async () => {
  workload?.close();
  for (const a of admins) a.close();
  for (const c of children) c.kill('SIGKILL');
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
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

function start(bin: string, args: string[], log: string[]): ChildProcess {
  const child = spawn(process.execPath, [bin, 'run', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${String(last)}`);
}

interface Server {
  name: string;
  port: number;
  admin: ServerApiClients;
  child: ChildProcess;
  log: string[];
}

async function startServer(name: string): Promise<Server> {
  const port = await freePort();
  const socket = join(dir, `${name}-admin`, 'api.sock');
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    `server {
  trust_domain = "${TD}"
  data_dir = "${join(dir, `${name}-data`)}"
  socket_path = "${socket}"
  bind_address = "127.0.0.1"
  bind_port = "${port}"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "postgres"
      connection_string = "host=${cluster.dir} user=mayfly dbname=postgres"
    }
  }
  KeyManager "memory" { plugin_data {} }
}
telemetry {}
`,
  );
  const log: string[] = [];
  const child = start(SERVER, ['-config', conf], log);
  const admin = adminSocketClients(socket);
  admins.push(admin);
  return { name, port, admin, child, log };
}

const bundleOf = (s: Server): Promise<WireBundle> => unaryCall<WireBundle>(s.admin.Bundle, 'GetBundle', {});

async function createEntry(s: Server, spiffeId: string, parentId: string, uid: string): Promise<void> {
  const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(s.admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: spiffeId, parent_id: parentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
  });
  const st = res.results[0]?.status;
  if (st?.code !== 0) throw new Error(`creating ${spiffeId} on server ${s.name} failed: ${st?.message}`);
}

it('an agent given two servers on one PostgreSQL moves to the survivor when its server is killed: every entry created meanwhile reaches the workload and no SVID lapses', async () => {
  const uid = String(process.getuid?.() ?? 0);
  const [a, b] = await Promise.all([startServer('a'), startServer('b')]);
  // Both servers up, and each serving the merged bundle (both CAs), so the agent trusts both.
  const merged = await until('both servers serving one bundle with both CAs', async () => {
    const [ba, bb] = await Promise.all([bundleOf(a), bundleOf(b)]);
    return ba.x509_authorities.length >= 2 && bb.x509_authorities.length >= 2 ? ba : undefined;
  }).catch((err: Error) => {
    throw new Error(`${err.message}\nserver a (exit ${a.child.exitCode}):\n${a.log.join('').slice(-2000)}\nserver b (exit ${b.child.exitCode}):\n${b.log.join('').slice(-2000)}`);
  });
  writeFileSync(join(dir, 'bundle.pem'), pemEncodeCertificates(merged.x509_authorities));
  // The token comes with a node alias (the agent ID is a fresh UUID, not the token): entries hang under it.
  const parentId = `spiffe://${TD}/node1`;
  const token = await unaryCall<{ value: string }>(a.admin.Agent, 'CreateJoinToken', { ttl: 600, agent_id: parentId });
  const first = `spiffe://${TD}/w0`;
  await createEntry(a, first, parentId, uid);

  const agentSocket = join(dir, 'agent-public', 'api.sock');
  const metricsPort = await freePort();
  writeFileSync(
    join(dir, 'agent.conf'),
    `agent {
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'agent-data')}"
  socket_path = "${agentSocket}"
  trust_bundle_path = "${join(dir, 'bundle.pem')}"
  server_addresses = ["127.0.0.1:${a.port}", "127.0.0.1:${b.port}"]
}
telemetry {
  Prometheus {
    host = "127.0.0.1"
    port = ${metricsPort}
  }
}
`,
  );
  const agentLog: string[] = [];
  start(AGENT, ['-config', join(dir, 'agent.conf'), '-joinToken', token.value], agentLog);

  // The workload: one FetchX509SVID stream held open for the whole test.
  const observed: { at: number; ctx: X509Context }[] = [];
  const lapses: string[] = [];
  const streamErrors: string[] = [];
  let current: X509Context | undefined;
  const check = (ctx: X509Context, at: number, how: string): void => {
    const ids = ctx.svids.map((s) => s.id.toString());
    if (!ids.includes(first)) lapses.push(`${how} at ${new Date(at).toISOString()}: ${first} missing (held: ${ids.join(', ')})`);
    for (const s of ctx.svids) {
      if (s.expiresAt.getTime() <= at) lapses.push(`${how} at ${new Date(at).toISOString()}: ${s.id} expired at ${s.expiresAt.toISOString()}`);
    }
  };
  workload = new WorkloadApiClient({ address: `unix://${agentSocket}` });
  await until('the agent socket', async () => ((await fetch(`http://127.0.0.1:${metricsPort}/live`)).ok ? true : undefined));
  workload.watchX509Context(
    (ctx) => {
      const at = Date.now();
      current = ctx;
      observed.push({ at, ctx });
      check(ctx, at, 'update');
    },
    (err, willRetry) => void streamErrors.push(`${err.message} (retry: ${willRetry})`),
  );
  const ids = (): string[] => (current?.svids ?? []).map((s) => s.id.toString());
  await until('the first SVID on the workload stream', async () => (ids().includes(first) ? true : undefined)).catch((err: Error) => {
    throw new Error(`${err.message}\nworkload stream: ${streamErrors.slice(-3).join('; ')}\nagent log:\n${agentLog.join('').slice(-3000)}`);
  });
  // The stream errors before the first SVID (the agent still syncing) are not part of the proof.
  streamErrors.length = 0;

  // Which server does the agent stream its entries from?
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const streamingPort = async (): Promise<number | undefined> => {
    const text = await metrics();
    const m = /^mayfly_agent_server\{address="127\.0\.0\.1:(\d+)"\} 1$/m.exec(text);
    return /^mayfly_agent_server_connected 1$/m.test(text) && m !== null ? Number(m[1]) : undefined;
  };
  const port = await until('the agent streaming from a server', streamingPort);
  const [victim, survivor] = port === a.port ? [a, b] : [b, a];
  expect([a.port, b.port]).toContain(port);

  // Sample what the workload holds every 50 ms from now to the end.
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      if (current !== undefined) check(current, Date.now(), 'sample');
      await sleep(50);
    }
  })();

  // Entries keep being created on the survivor (one every 150 ms); the victim dies after the third.
  const created: string[] = [];
  let killed: Promise<void> | undefined;
  for (let n = 1; n <= ENTRIES; n++) {
    const id = `spiffe://${TD}/w${n}`;
    await createEntry(survivor, id, parentId, uid);
    created.push(id);
    if (n === 3) killed = kill9(victim.child);
    await sleep(150);
  }
  await killed;

  // Every created entry's SVID reaches the workload's stream.
  await until('every created entry on the workload stream', async () => (created.every((id) => ids().includes(id)) ? true : undefined)).catch((err: Error) => {
    throw new Error(`${err.message}\nmissing: ${created.filter((id) => !ids().includes(id)).join(', ')}\nagent log:\n${agentLog.join('').slice(-3000)}`);
  });
  sampling = false;
  await sampler;
  for (const id of [first, ...created]) expect(ids()).toContain(id);
  expect(lapses).toEqual([]);
  expect(streamErrors).toEqual([]);
  expect(observed.length).toBeGreaterThan(1);

  // The agent says where it went, and is healthy there.
  expect(await until('the agent streaming from the survivor', async () => ((await streamingPort()) === survivor.port ? true : undefined))).toBe(true);
  expect(agentLog.join('')).toContain(`moving to server 127.0.0.1:${survivor.port}`);
  expect(agentLog.join('')).toContain(`authorised-entry stream moved to server 127.0.0.1:${survivor.port}`);
  expect((await fetch(`http://127.0.0.1:${metricsPort}/ready`)).status).toBe(200);
}, 240_000);
