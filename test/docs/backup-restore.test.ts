/**
 * docs/backup-restore.md's LevelDB restore, done for real: `mayfly-server run` and
 * `mayfly-agent run` as processes (what `npm run build` ships), the backup being exactly
 * the paths the doc's table "LevelDB: the files" names, read from the doc. So a file the
 * server needs and the doc forgets fails here, and so does a restore that comes back as
 * another CA.
 *
 * Before: entries, an attested agent serving a workload SVID, an SVID from `x509 mint`.
 * After the copy, a server on the new directory (and another port) must print the same
 * entries, agents, bundle and X.509 authorities; both SVIDs must verify against its
 * bundle; and the agent, restarted against it without a join token, must resume with its
 * stored agent SVID and serve the workload's SVID again.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { TrustDomain } from '../../src/spiffe/id.js';
import { parsePemCertificates } from '../../src/spiffe/x509/pem.js';
import { verifyX509Svid } from '../../src/spiffe/x509/verify.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SERVER = join(ROOT, 'bin', 'mayfly-server.js');
const AGENT = join(ROOT, 'bin', 'mayfly-agent.js');
const DOC = join(ROOT, 'docs', 'backup-restore.md');
const dir = mkdtempSync(join(tmpdir(), 'mayfly-restore-'));
const children = new Set<ChildProcess>();

afterAll(async () => {
  await Promise.all([...children].map((c) => stop(c, 'SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

/** The paths (relative to data_dir) of the doc's table under "### LevelDB: the files". */
function documentedBackupPaths(): string[] {
  const md = readFileSync(DOC, 'utf8');
  const start = md.indexOf('### LevelDB: the files');
  if (start < 0) throw new Error('docs/backup-restore.md has no "### LevelDB: the files" section');
  const rest = md.slice(start + 1);
  const section = rest.slice(0, rest.search(/\n#{1,3} /));
  return [...section.matchAll(/^\|\s*`([^`]+)`\s*\|/gm)].map((m) => m[1] as string);
}

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function ok(bin: string, args: string[]): Promise<string> {
  const r = await run(bin, args);
  if (r.code !== 0) throw new Error(`${args.slice(0, 3).join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

interface Proc {
  child: ChildProcess;
  log: string[];
}

function start(bin: string, args: string[]): Proc {
  const log: string[] = [];
  const child = spawn(process.execPath, [bin, 'run', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return { child, log };
}

function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
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

/** Starts a server on `dataDir` with OS-chosen ports; resolves with its agent API port once it logs that it started. */
async function startServer(dataDir: string, adminSocket: string): Promise<Proc & { port: number }> {
  const p = start(SERVER, ['-dataDir', dataDir, '-socketPath', adminSocket, '-serverPort', '0', '-metricsPort', '0']);
  const port = await until('the server to start', async () => {
    for (const line of p.log.join('').split('\n')) {
      if (!line.includes('"mayfly server started"')) continue;
      return (JSON.parse(line) as { port: number }).port;
    }
    if (p.child.exitCode !== null) throw new Error(`the server exited: ${p.log.join('')}`);
    return undefined;
  });
  return { ...p, port };
}

it('a server restored from the files docs/backup-restore.md names is the same CA with the same registrations', async () => {
  const paths = documentedBackupPaths();
  expect(paths.length).toBeGreaterThan(0);
  const dataA = join(dir, 'a', 'data');
  const dataB = join(dir, 'b', 'data');
  const adminA = join(dir, 'a', 'admin', 'api.sock');
  const adminB = join(dir, 'b', 'admin', 'api.sock');
  const agentData = join(dir, 'agent-data');
  const agentSocket = join(dir, 'agent', 'public', 'api.sock');
  const td = TrustDomain.parse('example.org');
  const uid = String(process.getuid?.() ?? 0);
  const fetchWorkload = async (): Promise<Buffer[] | undefined> => {
    const out = join(dir, 'fetched');
    rmSync(out, { recursive: true, force: true });
    const r = await run(AGENT, ['api', 'fetch', 'x509', '-socketPath', agentSocket, '-write', out, '-silent', '-timeout', '5s']);
    if (r.code !== 0 || !existsSync(join(out, 'svid.0.pem'))) return undefined;
    return parsePemCertificates(readFileSync(join(out, 'svid.0.pem'), 'utf8'));
  };
  const snapshot = async (admin: string): Promise<Record<string, string>> => ({
    entries: await ok(SERVER, ['entry', 'show', '-output', 'json', '-socketPath', admin]),
    agents: await ok(SERVER, ['agent', 'list', '-output', 'json', '-socketPath', admin]),
    bundle: await ok(SERVER, ['bundle', 'show', '-socketPath', admin]),
    x509Authorities: await ok(SERVER, ['localauthority', 'x509', 'show', '-output', 'json', '-socketPath', admin]),
  });

  // 1. The original server, with entries, an agent and SVIDs.
  const a = await startServer(dataA, adminA);
  const bundlePem = await ok(SERVER, ['bundle', 'show', '-socketPath', adminA]);
  writeFileSync(join(dir, 'bundle.pem'), bundlePem);
  const token = (JSON.parse(await ok(SERVER, ['token', 'generate', '-spiffeID', 'spiffe://example.org/node1', '-output', 'json', '-socketPath', adminA])) as { value: string }).value;
  await ok(SERVER, ['entry', 'create', '-parentID', 'spiffe://example.org/node1', '-spiffeID', 'spiffe://example.org/web', '-selector', `unix:uid:${uid}`, '-socketPath', adminA]);
  await ok(SERVER, ['entry', 'create', '-parentID', 'spiffe://example.org/node1', '-spiffeID', 'spiffe://example.org/db', '-selector', 'unix:uid:4242', '-socketPath', adminA]);
  const agentArgs = ['-dataDir', agentData, '-socketPath', agentSocket, '-trustBundle', join(dir, 'bundle.pem')];
  const agent = start(AGENT, [...agentArgs, '-serverPort', String(a.port), '-joinToken', token]);
  const workloadSvid = await until('the workload SVID from the agent', fetchWorkload);
  const minted = join(dir, 'minted');
  await ok(SERVER, ['x509', 'mint', '-spiffeID', 'spiffe://example.org/minted', '-write', minted, '-socketPath', adminA]);
  const mintedSvid = parsePemCertificates(readFileSync(join(minted, 'svid.pem'), 'utf8'));
  const before = await snapshot(adminA);
  await stop(agent.child);
  await stop(a.child);

  // 2. The backup: exactly the documented paths, modes kept.
  for (const rel of paths) {
    const from = join(dataA, rel);
    expect(existsSync(from), `${rel} (named by docs/backup-restore.md) is not in the data directory`).toBe(true);
    mkdirSync(dirname(join(dataB, rel)), { recursive: true, mode: 0o700 });
    cpSync(from, join(dataB, rel), { recursive: true, preserveTimestamps: true });
  }

  // 3. The restored server: the same state, the same CA.
  const b = await startServer(dataB, adminB);
  expect(b.log.join('')).not.toMatch(/authority prepared|authority activated/);
  const after = await snapshot(adminB);
  expect(after).toEqual(before);
  const restored = { trustDomain: td, x509Authorities: parsePemCertificates(after.bundle as string) };
  expect(verifyX509Svid(workloadSvid, restored).spiffeId.toString()).toBe('spiffe://example.org/web');
  expect(verifyX509Svid(mintedSvid, restored).spiffeId.toString()).toBe('spiffe://example.org/minted');

  // 4. The agent, pointed at the restored server with no join token, resumes and serves again.
  const again = start(AGENT, [...agentArgs, '-serverPort', String(b.port)]);
  const served = await until('the workload SVID after the restore', fetchWorkload);
  expect(verifyX509Svid(served, restored).spiffeId.toString()).toBe('spiffe://example.org/web');
  expect(again.log.join('')).toContain('resuming with the stored agent SVID');
  await stop(again.child);
  await stop(b.child);
});
