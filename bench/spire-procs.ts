/**
 * @module bench/spire-procs
 *
 * Processes for `npm run bench -- spire`: SPIRE v1.13.3's real `spire-server` and
 * `spire-agent` and Mayfly's real `mayfly-server` and `mayfly-agent` binaries, each in its
 * own process on loopback, so every figure is what an operator would see. Here: finding the
 * binaries, writing SPIRE's configs, spawning and stopping, timing a CLI call, reading a
 * process's RSS and waiting for `/ready`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** The repository root (bench runs from dist/bench). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** SPIRE's binaries (built by test/interop/spire/build.sh, which .ci/run calls), or why not. */
export function spireBinDir(): { dir: string } | { missing: string } {
  const dir = process.env.MAYFLY_SPIRE_BIN ?? join(homedir(), '.cache', 'mayfly-peers', 'spire-1.13.3', 'bin');
  for (const name of ['spire-server', 'spire-agent']) {
    if (!existsSync(join(dir, name))) return { missing: `${join(dir, name)} is missing: build SPIRE v1.13.3 once with test/interop/spire/build.sh (.ci/run does)` };
  }
  return { dir };
}

/** go-spiffe's Workload API client (test/interop/go-workload, built by .ci/run). */
export function goWorkloadBinary(): { path: string } | { missing: string } {
  const path = join(REPO, 'test', 'interop', 'go-workload', 'bin', 'goworkload');
  return existsSync(path) ? { path } : { missing: `${path} is missing: build it with (cd test/interop/go-workload && go build -o bin/goworkload .) (.ci/run does)` };
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? ok(a.port) : fail(new Error('no port'))));
    });
  });
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion; never rejects (the exit code says how it went). */
export function runCmd(file: string, args: readonly string[], timeoutMs = 120_000): Promise<CmdResult> {
  const start = performance.now();
  return new Promise((ok) => {
    execFile(file, [...args], { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, cwd: REPO }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      ok({ code, stdout, stderr, ms: performance.now() - start });
    });
  });
}

/** Runs a command and throws with its output unless it exits 0. */
export async function mustRun(file: string, args: readonly string[], timeoutMs?: number): Promise<CmdResult> {
  const r = await runCmd(file, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).slice(0, 2000)}`);
  return r;
}

/** Median wall time (ms) of `n` runs of a command; each must exit 0. */
export async function medianWallMs(file: string, args: (i: number) => readonly string[], n: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push((await mustRun(file, args(i))).ms);
  return median(times);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)] as number);
}

/** A long-running process with its output kept (the last 64 KiB) for error messages. */
export class Proc {
  readonly child: ChildProcess;
  #out = '';
  readonly exited: Promise<number | null>;

  constructor(readonly name: string, file: string, args: readonly string[]) {
    this.child = spawn(file, [...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer): void => {
      this.#out = (this.#out + b.toString('utf8')).slice(-65536);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((ok) => this.child.once('exit', (code) => ok(code)));
  }

  get pid(): number {
    const p = this.child.pid;
    if (p === undefined) throw new Error(`${this.name} did not start`);
    return p;
  }

  get output(): string {
    return this.#out;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** Resident set size of a process in MiB (/proc/<pid>/status VmRSS). */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Polls `check` every `everyMs` until it returns true; throws `what` (and the process output) after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, proc?: Proc, everyMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (proc !== undefined && proc.child.exitCode !== null) throw new Error(`${proc.name} exited (${proc.child.exitCode}) while waiting for ${what}:\n${proc.output.slice(-4000)}`);
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}${proc === undefined ? '' : `:\n${proc.output.slice(-4000)}`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True when GET http://127.0.0.1:<port><path> answers 200. */
export function httpOk(port: number, path: string): Promise<boolean> {
  return new Promise((ok) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      ok(res.statusCode === 200);
    });
    req.on('error', () => ok(false));
    req.on('timeout', () => {
      req.destroy();
      ok(false);
    });
    req.end();
  });
}

export interface SpireLayout {
  dir: string;
  trustDomain: string;
  serverPort: number;
  healthPort: number;
  serverSocket: string;
  agentSocket: string;
  bundlePath: string;
}

/** SPIRE's server.conf: sqlite datastore, disk keys, join_token, the health listener. */
export function writeSpireServerConf(l: SpireLayout): string {
  const path = join(l.dir, 'spire-server.conf');
  writeFileSync(
    path,
    `server {
  bind_address = "127.0.0.1"
  bind_port = "${l.serverPort}"
  socket_path = "${l.serverSocket}"
  trust_domain = "${l.trustDomain}"
  data_dir = "${join(l.dir, 'spire-server-data')}"
  log_level = "WARN"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(l.dir, 'spire-server-data', 'datastore.sqlite3')}"
    }
  }
  KeyManager "disk" {
    plugin_data { keys_path = "${join(l.dir, 'spire-server-data', 'keys.json')}" }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "${l.healthPort}"
  live_path = "/live"
  ready_path = "/ready"
}
`,
  );
  return path;
}

/** SPIRE's agent.conf: join_token, in-memory keys, the unix workload attestor. */
export function writeSpireAgentConf(l: SpireLayout): string {
  const path = join(l.dir, 'spire-agent.conf');
  writeFileSync(
    path,
    `agent {
  data_dir = "${join(l.dir, 'spire-agent-data')}"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "${l.serverPort}"
  socket_path = "${l.agentSocket}"
  trust_bundle_path = "${l.bundlePath}"
  trust_domain = "${l.trustDomain}"
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
  return path;
}

/** SPIRE's `entry create -data` file (also what Mayfly's reads): `n` entries under `parentId`. */
export function writeEntriesFile(path: string, opts: { trustDomain: string; parentId: string; prefix: string; from: number; n: number; selector: string }): void {
  const [type, ...rest] = opts.selector.split(':');
  const entries = Array.from({ length: opts.n }, (_, i) => ({
    spiffe_id: `spiffe://${opts.trustDomain}/${opts.prefix}/${opts.from + i}`,
    parent_id: opts.parentId,
    selectors: [{ type, value: rest.join(':') }],
  }));
  writeFileSync(path, JSON.stringify({ entries }));
}
