/**
 * The real binaries as the restore tests drive them (test/docs/backup-restore*.test.ts):
 * `mayfly-server run` and `mayfly-agent run` as processes from what `npm run build`
 * ships, their CLI commands, and the file lists docs/backup-restore.md names.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parsePemCertificates } from '../../src/spiffe/x509/pem.js';

const ROOT = join(import.meta.dirname, '..', '..');
export const SERVER = join(ROOT, 'bin', 'mayfly-server.js');
export const AGENT = join(ROOT, 'bin', 'mayfly-agent.js');
const DOC = join(ROOT, 'docs', 'backup-restore.md');

/** The paths (relative to data_dir) in the first table under the doc's heading `### <heading>`. */
export function documentedBackupPaths(heading: string): string[] {
  const md = readFileSync(DOC, 'utf8');
  const start = md.indexOf(`### ${heading}\n`);
  if (start < 0) throw new Error(`docs/backup-restore.md has no "### ${heading}" section`);
  const rest = md.slice(start + 1);
  const end = rest.search(/\n#{1,3} /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^\|\s*`([^`]+)`\s*\|/gm)].map((m) => m[1] as string);
}

/** Copies each of `paths` from data directory `from` to `to`, modes kept; throws naming a path `from` lacks. */
export function copyBackup(paths: readonly string[], from: string, to: string): void {
  for (const rel of paths) {
    const src = join(from, rel);
    if (!existsSync(src)) throw new Error(`${rel} (named by docs/backup-restore.md) is not in the data directory`);
    mkdirSync(dirname(join(to, rel)), { recursive: true, mode: 0o700 });
    cpSync(src, join(to, rel), { recursive: true, preserveTimestamps: true });
  }
}

export function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export async function ok(bin: string, args: string[]): Promise<string> {
  const r = await run(bin, args);
  if (r.code !== 0) throw new Error(`${args.slice(0, 3).join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export interface Proc {
  child: ChildProcess;
  log: string[];
}

/** Every process `start` spawned and that has not exited: the test file kills them in afterAll. */
export const children = new Set<ChildProcess>();

export function start(bin: string, args: string[]): Proc {
  const log: string[] = [];
  const child = spawn(process.execPath, [bin, 'run', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return { child, log };
}

export function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
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

/** Starts a server (extra `args`, e.g. `-config`) with OS-chosen ports; resolves once it logs that it started. */
export async function startServer(dataDir: string, adminSocket: string, args: string[] = []): Promise<Proc & { port: number }> {
  const p = start(SERVER, [...args, '-dataDir', dataDir, '-socketPath', adminSocket, '-serverPort', '0', '-metricsPort', '0']);
  const port = await until('the server to start', async () => {
    for (const line of p.log.join('').split('\n')) {
      if (line.includes('"mayfly server started"')) return (JSON.parse(line) as { port: number }).port;
    }
    if (p.child.exitCode !== null) throw new Error(`the server exited: ${p.log.join('')}`);
    return undefined;
  });
  return { ...p, port };
}

/** What a restore must keep: the admin API's view of entries, agents, the bundle and the X.509 authorities. */
export async function snapshot(admin: string): Promise<Record<string, string>> {
  return {
    entries: await ok(SERVER, ['entry', 'show', '-output', 'json', '-socketPath', admin]),
    agents: await ok(SERVER, ['agent', 'list', '-output', 'json', '-socketPath', admin]),
    bundle: await ok(SERVER, ['bundle', 'show', '-socketPath', admin]),
    x509Authorities: await ok(SERVER, ['localauthority', 'x509', 'show', '-output', 'json', '-socketPath', admin]),
  };
}

/** The workload X509-SVID chain the agent at `socket` serves this process, or undefined while it serves none. */
export async function fetchWorkloadSvid(socket: string, scratch: string): Promise<Buffer[] | undefined> {
  rmSync(scratch, { recursive: true, force: true });
  const r = await run(AGENT, ['api', 'fetch', 'x509', '-socketPath', socket, '-write', scratch, '-silent', '-timeout', '5s']);
  if (r.code !== 0 || !existsSync(join(scratch, 'svid.0.pem'))) return undefined;
  return parsePemCertificates(readFileSync(join(scratch, 'svid.0.pem'), 'utf8'));
}

/** Mints an X509-SVID for `spiffeId` through the admin socket; its chain. */
export async function mintSvid(admin: string, spiffeId: string, scratch: string): Promise<Buffer[]> {
  await ok(SERVER, ['x509', 'mint', '-spiffeID', spiffeId, '-write', scratch, '-socketPath', admin]);
  return parsePemCertificates(readFileSync(join(scratch, 'svid.pem'), 'utf8'));
}

export interface RestoreScenario {
  /** A private temporary directory for this run. */
  dir: string;
  /** Extra `run` arguments of the original server and of the restored one (e.g. `-config`). */
  originalArgs: string[];
  restoredArgs: string[];
  /** Takes the backup of the stopped original (`from`, its data_dir) and restores it (`to`, the new data_dir). */
  backupAndRestore(from: string, to: string): Promise<void>;
}

export interface RestoreOutcome {
  before: Record<string, string>;
  after: Record<string, string>;
  /** Whether the restored server made itself a new CA at start (it must not). */
  restoredLogMentionsNewAuthority: boolean;
  /** SVIDs minted by the original: a workload's (through the agent) and one from `x509 mint`. */
  workloadSvid: Buffer[];
  mintedSvid: Buffer[];
  /** The workload's SVID as the agent serves it again, restarted against the restored server with no join token. */
  servedAfter: Buffer[];
  agentLogAfter: string;
}

/**
 * The doc's restore, end to end: an original server with two entries, an agent attested
 * with a join token serving a workload SVID, and an SVID from `x509 mint`; both stopped;
 * `backupAndRestore`; a server on the restored state (another port); the agent restarted
 * against it without a token.
 */
export async function runRestore(s: RestoreScenario): Promise<RestoreOutcome> {
  const dataA = join(s.dir, 'a', 'data');
  const dataB = join(s.dir, 'b', 'data');
  const adminA = join(s.dir, 'a', 'admin', 'api.sock');
  const adminB = join(s.dir, 'b', 'admin', 'api.sock');
  const agentSocket = join(s.dir, 'agent', 'public', 'api.sock');
  const bundleFile = join(s.dir, 'bundle.pem');
  const fetched = join(s.dir, 'fetched');
  const uid = String(process.getuid?.() ?? 0);
  const admin = (sock: string): string[] => ['-socketPath', sock];

  const a = await startServer(dataA, adminA, s.originalArgs);
  writeFileSync(bundleFile, await ok(SERVER, ['bundle', 'show', ...admin(adminA)]));
  const token = (JSON.parse(await ok(SERVER, ['token', 'generate', '-spiffeID', 'spiffe://example.org/node1', '-output', 'json', ...admin(adminA)])) as { value: string }).value;
  await ok(SERVER, ['entry', 'create', '-parentID', 'spiffe://example.org/node1', '-spiffeID', 'spiffe://example.org/web', '-selector', `unix:uid:${uid}`, ...admin(adminA)]);
  await ok(SERVER, ['entry', 'create', '-parentID', 'spiffe://example.org/node1', '-spiffeID', 'spiffe://example.org/db', '-selector', 'unix:uid:4242', ...admin(adminA)]);
  const agentArgs = ['-dataDir', join(s.dir, 'agent-data'), '-socketPath', agentSocket, '-trustBundle', bundleFile];
  const agent = start(AGENT, [...agentArgs, '-serverPort', String(a.port), '-joinToken', token]);
  const workloadSvid = await until('the workload SVID from the agent', () => fetchWorkloadSvid(agentSocket, fetched));
  const mintedSvid = await mintSvid(adminA, 'spiffe://example.org/minted', join(s.dir, 'minted'));
  const before = await snapshot(adminA);
  await stop(agent.child);
  await stop(a.child);

  await s.backupAndRestore(dataA, dataB);

  const b = await startServer(dataB, adminB, s.restoredArgs);
  const restoredLogMentionsNewAuthority = /authority prepared|authority activated/.test(b.log.join(''));
  const after = await snapshot(adminB);
  const again = start(AGENT, [...agentArgs, '-serverPort', String(b.port)]);
  const servedAfter = await until('the workload SVID after the restore', () => fetchWorkloadSvid(agentSocket, fetched));
  const agentLogAfter = again.log.join('');
  await stop(again.child);
  await stop(b.child);
  return { before, after, restoredLogMentionsNewAuthority, workloadSvid, mintedSvid, servedAfter, agentLogAfter };
}
