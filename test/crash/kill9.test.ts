/**
 * "Nothing lost", with the real binaries: `mayfly-server run` and `mayfly-agent run` as
 * processes, killed with SIGKILL (no chance to flush or drain) and started again on the
 * same data directories.
 *
 * - agent killed → restarts without a new join token (its SVID and key are on disk) and
 *   workloads get SVIDs again;
 * - server killed → the agent keeps serving cached SVIDs to new callers;
 * - server restarted → every acknowledged entry is there, the CA keys still match the
 *   published bundle (the same roots), and the agent reconnects and receives a new entry
 *   by push.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SERVER = join(ROOT, 'bin', 'mayfly-server.js');
const AGENT = join(ROOT, 'bin', 'mayfly-agent.js');
const dir = mkdtempSync(join(tmpdir(), 'mayfly-kill9-'));
const children = new Set<ChildProcess>();

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function ok(bin: string, args: string[]): Promise<string> {
  const r = await run(bin, args);
  if (r.code !== 0) throw new Error(`${args.slice(0, 2).join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

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

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}: ${String(last)}`);
}

it('survives SIGKILL of the agent and of the server without losing anything acknowledged', async () => {
  const port = await freePort();
  const metricsPort = await freePort();
  const adminSocket = join(dir, 'server', 'api.sock');
  const agentSocket = join(dir, 'public', 'api.sock');
  const serverArgs = ['-dataDir', join(dir, 'server-data'), '-socketPath', adminSocket, '-serverPort', String(port), '-metricsPort', String(metricsPort)];
  const agentArgs = ['-dataDir', join(dir, 'agent-data'), '-socketPath', agentSocket, '-serverPort', String(port), '-trustBundle', join(dir, 'bundle.pem')];
  const admin = ['-socketPath', adminSocket];
  const uid = String(process.getuid?.() ?? 0);
  const fetchIds = async (): Promise<string[]> => {
    const out = await ok(AGENT, ['api', 'fetch', 'x509', '-socketPath', agentSocket, '-output', 'json', '-timeout', '5s']);
    const doc = JSON.parse(out) as { svids: Array<{ spiffe_id?: string; spiffeId?: string }> };
    return doc.svids.map((s) => s.spiffe_id ?? s.spiffeId ?? '').sort();
  };

  const serverLog: string[] = [];
  let server = start(SERVER, serverArgs, serverLog);
  const bundleBefore = await until('the server', async () => (await run(SERVER, ['bundle', 'show', ...admin])).stdout || undefined);
  writeFileSync(join(dir, 'bundle.pem'), bundleBefore);
  const token = (JSON.parse(await ok(SERVER, ['token', 'generate', '-spiffeID', 'spiffe://example.org/node1', '-output', 'json', ...admin])) as { value: string }).value;
  await ok(SERVER, ['entry', 'create', '-parentID', 'spiffe://example.org/node1', '-spiffeID', 'spiffe://example.org/web', '-selector', `unix:uid:${uid}`, ...admin]);

  const agentLog: string[] = [];
  let agent = start(AGENT, [...agentArgs, '-joinToken', token], agentLog);
  expect(await until('the first SVID', async () => ((await fetchIds()).length > 0 ? fetchIds() : undefined))).toEqual(['spiffe://example.org/web']);

  // 1. The agent dies mid-flight and comes back without a token.
  await kill9(agent);
  agent = start(AGENT, agentArgs, agentLog);
  expect(await until('SVIDs after the agent restart', async () => ((await fetchIds()).length > 0 ? fetchIds() : undefined))).toEqual(['spiffe://example.org/web']);
  expect(agentLog.join('')).toContain('resuming with the stored agent SVID');

  // 2. The server dies: a new caller still gets the cached SVID.
  await kill9(server);
  expect(await fetchIds()).toEqual(['spiffe://example.org/web']);

  // 3. The server comes back: entries and CA intact, and the agent is pushed a new entry.
  server = start(SERVER, serverArgs, serverLog);
  const bundleAfter = await until('the restarted server', async () => (await run(SERVER, ['bundle', 'show', ...admin])).stdout || undefined);
  expect(bundleAfter).toBe(bundleBefore);
  const shown = JSON.parse(await ok(SERVER, ['entry', 'show', '-spiffeID', 'spiffe://example.org/web', '-output', 'json', ...admin])) as { entries: unknown[] };
  expect(shown.entries).toHaveLength(1);
  await ok(SERVER, ['entry', 'create', '-parentID', 'spiffe://example.org/node1', '-spiffeID', 'spiffe://example.org/api', '-selector', `unix:uid:${uid}`, ...admin]);
  expect(await until('the pushed entry', async () => ((await fetchIds()).length === 2 ? fetchIds() : undefined), 45_000)).toEqual(['spiffe://example.org/api', 'spiffe://example.org/web']);
  await kill9(agent);
  await kill9(server);
}, 180_000);
