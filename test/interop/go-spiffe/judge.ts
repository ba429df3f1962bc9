/**
 * @module test/interop/go-spiffe/judge
 *
 * A go-spiffe v2 process that judges Mayfly's artefacts: SPIFFE IDs, trust domain names,
 * X509-SVIDs, JWT-SVIDs and bundles. Mayfly's compatibility is proven by a client we did
 * not write, so the verdicts come from go-spiffe's own parsers, not from ours.
 *
 * The Go program (main.go beside this file) reads one JSON request per line and writes
 * one JSON answer per line, in order, so one process serves a whole test file.
 */
import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const DIR = dirname(fileURLToPath(import.meta.url));
const BINARY = join(DIR, 'bin', process.platform === 'win32' ? 'judge.exe' : 'judge');
const SOURCES = ['main.go', 'go.mod', 'go.sum'];

/** Requests the judge understands; binary fields are standard base64. */
export type JudgeRequest =
  | { op: 'ids'; ids: string[] }
  | { op: 'trustDomains'; names: string[] }
  | {
      op: 'x509';
      /** DER certificates concatenated, leaf first. */
      svid: string;
      /** PKCS#8 DER; when given, go-spiffe's `x509svid.ParseRaw` also checks it matches the leaf. */
      key?: string;
      trustDomain: string;
      /** DER root certificates concatenated: the trust domain's X.509 bundle. */
      authorities: string;
      /** RFC 3339 verification time; go-spiffe's clock when omitted. */
      now?: string;
    }
  | { op: 'jwt'; token: string; audience: string[]; trustDomain: string; bundle: string }
  | { op: 'bundle'; trustDomain: string; bundle: string }
  | { op: 'jwtBundle'; trustDomain: string; jwks: string };

/** A go-spiffe refusal; `stage` says which step refused where a request has several. */
export interface JudgeFailure {
  ok: false;
  error: string;
  stage?: 'request' | 'parse' | 'verify' | 'bundle' | 'validate';
}

export type IdVerdict = { ok: true; id: string; trustDomain: string; path: string } | JudgeFailure;
export type TrustDomainVerdict = { ok: true; name: string; id: string } | JudgeFailure;
export type X509Verdict = { ok: true; spiffeId: string; chains: number } | JudgeFailure;
export type JwtVerdict = { ok: true; spiffeId: string; audience: string[]; expiry: string } | JudgeFailure;
export type BundleVerdict =
  | { ok: true; x509Authorities: number; jwtAuthorities: string[]; sequence?: number; refreshHintSeconds?: number }
  | JudgeFailure;
export type JwtBundleVerdict = { ok: true; jwtAuthorities: string[] } | JudgeFailure;

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Builds the judge with `go build` unless the binary is newer than its sources.
 * Returns the binary's path. Works under `GOFLAGS=-mod=readonly` (go.sum is complete).
 */
export async function buildJudge(): Promise<string> {
  const built = await mtime(BINARY);
  if (built !== undefined) {
    const sources = await Promise.all(SOURCES.map((f) => mtime(join(DIR, f))));
    if (sources.every((m) => m !== undefined && m <= built)) return BINARY;
  }
  try {
    await promisify(execFile)('go', ['build', '-o', BINARY, '.'], { cwd: DIR, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `cannot build the go-spiffe judge in ${DIR} (needs Go ≥ 1.24 on PATH and the Go module proxy, ` +
        `or a prior 'go mod download'): ${e.stderr?.trim() || e.message}`,
      { cause: err },
    );
  }
  return BINARY;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** One live judge process; requests are answered strictly in the order asked. */
export class GoSpiffeJudge {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #pending: Pending[] = [];
  #stderr = '';
  #dead: Error | undefined;
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    // A write after the judge died fails with EPIPE; the exit handler reports it instead.
    child.stdin.on('error', () => {});
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-4096);
    });
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      const next = this.#pending.shift();
      if (!next) return;
      try {
        next.resolve(JSON.parse(line));
      } catch (err) {
        next.reject(new Error(`go-spiffe judge wrote a line that is not JSON: ${line.slice(0, 200)}`, { cause: err }));
      }
    });
    this.#exited = new Promise((resolve) => {
      const die = (why: string) => {
        this.#dead ??= new Error(`go-spiffe judge ${why}${this.#stderr ? `; stderr: ${this.#stderr}` : ''}`);
        for (const p of this.#pending.splice(0)) p.reject(this.#dead);
        resolve();
      };
      child.on('exit', (code, signal) => die(`exited (code ${code}, signal ${signal})`));
      child.on('error', (err) => die(`failed: ${err.message}`));
    });
  }

  /** Builds the judge if needed and starts one process. */
  static async start(): Promise<GoSpiffeJudge> {
    const bin = await buildJudge();
    return new GoSpiffeJudge(spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** Sends one request and resolves with go-spiffe's answer. */
  ask<T>(req: JudgeRequest): Promise<T> {
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ resolve: resolve as (v: unknown) => void, reject });
      this.#child.stdin.write(`${JSON.stringify(req)}\n`);
    });
  }

  /** Closes stdin (the judge exits at EOF) and waits for the process to end. */
  async close(): Promise<void> {
    if (!this.#dead) this.#child.stdin.end();
    await this.#exited;
  }
}
