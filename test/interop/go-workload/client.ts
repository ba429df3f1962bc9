/**
 * @module test/interop/go-workload/client
 *
 * Builds and runs `goworkload` (main.go beside this file): a go-spiffe v2 Workload API
 * client whose every identity, bundle and TLS decision is go-spiffe's own. Built once,
 * lazily, when the binary is older than its sources; the build writes a temp file and
 * renames it, so test files building at the same time never run a half-written binary.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams, type SpawnOptions } from 'node:child_process';
import { rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const DIR = dirname(fileURLToPath(import.meta.url));
export const GOWORKLOAD_BINARY = join(DIR, 'bin', 'goworkload');
const SOURCES = ['main.go', 'go.mod', 'go.sum', 'crls.go'];

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

let building: Promise<string> | undefined;

/** Builds the client unless the binary is newer than its sources; returns its path. */
export function buildGoWorkload(): Promise<string> {
  building ??= (async () => {
    const built = await mtime(GOWORKLOAD_BINARY);
    if (built !== undefined) {
      const sources = await Promise.all(SOURCES.map((f) => mtime(join(DIR, f))));
      if (sources.every((m) => m !== undefined && m <= built)) return GOWORKLOAD_BINARY;
    }
    const tmp = `${GOWORKLOAD_BINARY}.${process.pid}.tmp`;
    try {
      await promisify(execFile)('go', ['build', '-o', tmp, '.'], { cwd: DIR, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(
        `cannot build the go-spiffe Workload API client in ${DIR} (needs Go ≥ 1.24 and the Go module proxy, ` +
          `or a prior 'go mod download'): ${e.stderr?.trim() || e.message}`,
        { cause: err },
      );
    }
    await rename(tmp, GOWORKLOAD_BINARY);
    return GOWORKLOAD_BINARY;
  })();
  return building;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout lines parsed as JSON (lines that are not JSON are skipped). */
  json: Record<string, unknown>[];
}

export interface RunOptions {
  /** SPIFFE_ENDPOINT_SOCKET for the child (go-spiffe's own lookup). */
  endpoint: string;
  /** Run as this uid/gid (needs root). */
  uid?: number;
  gid?: number;
  /** Kill the child after this long (default 45 s): a hung client fails the test. */
  killAfterMs?: number;
}

function spawnOptions(o: RunOptions): SpawnOptions {
  return {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SPIFFE_ENDPOINT_SOCKET: o.endpoint },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(o.uid !== undefined ? { uid: o.uid } : {}),
    ...(o.gid !== undefined ? { gid: o.gid } : {}),
  };
}

function parseLines(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not one of ours
    }
  }
  return out;
}

/** Runs one subcommand to completion. */
export async function runGoWorkload(args: string[], o: RunOptions): Promise<RunResult> {
  const bin = await buildGoWorkload();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, spawnOptions(o)) as ChildProcessWithoutNullStreams;
    child.stdin.end();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.killAfterMs ?? 45_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, json: parseLines(stdout) });
    });
  });
}

/** A long-running `goworkload server`: JSON events as they come; `stop()` closes its stdin. */
export class GoWorkloadServer {
  readonly events: Record<string, unknown>[] = [];
  stderr = '';
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #exited: Promise<number | null>;
  #wake: (() => void) | undefined;
  #exitCode: number | null | undefined;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stdin.on('error', () => {});
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-8192);
    });
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      this.events.push(...parseLines(line));
      this.#wake?.();
    });
    this.#exited = new Promise((resolve) => {
      child.on('close', (code) => {
        this.#exitCode = code;
        this.#wake?.();
        resolve(code);
      });
      child.on('error', () => {
        this.#exitCode = -1;
        this.#wake?.();
        resolve(-1);
      });
    });
  }

  static async start(args: string[], o: RunOptions): Promise<GoWorkloadServer> {
    const bin = await buildGoWorkload();
    return new GoWorkloadServer(spawn(bin, ['server', ...args], spawnOptions(o)) as ChildProcessWithoutNullStreams);
  }

  /** Waits for an event matching `pred`; fails if the process exits or after `timeoutMs`. */
  async waitFor(pred: (e: Record<string, unknown>) => boolean, what: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find(pred);
      if (hit !== undefined) return hit;
      if (this.#exitCode !== undefined) throw new Error(`goworkload server exited (${this.#exitCode}) before ${what}; stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events ${JSON.stringify(this.events)}; stderr: ${this.stderr}`);
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 100);
      });
    }
  }

  /** Closes stdin (the server's stop signal), waits for exit, and returns the exit code. */
  async stop(): Promise<number | null> {
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}
