/**
 * @module server/csr-pool
 *
 * Parses the CSRs of a batch signing call on worker threads. Checking a CSR (strict parse,
 * key import, proof-of-possession signature) is about half the CPU of signing an
 * X.509-SVID, and the event loop also carries TLS, gRPC and the mint itself; spreading the
 * CSR checks over worker threads lets a batch use every core. The check is the same
 * `parseCsr` either way: a worker changes where it runs, not what it accepts.
 *
 * Small batches are parsed inline (a round trip to a worker costs more than it saves). If
 * the compiled worker script cannot be found (running from TypeScript sources without a
 * build), or a worker dies, the pool parses inline rather than failing the call.
 *
 * No CA key enters a worker: CSR bytes go in, public keys and error messages come out.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { X509SvidError, type ErrorCode } from '../spiffe/errors.js';
import { parseCsr } from '../spiffe/x509/csr.js';
import type { CsrJob, CsrJobOutcome, CsrJobResult } from './csr-worker.js';

/** The SPKI of a CSR that passed every check, or why it failed. */
export type CsrOutcome = { spki: Buffer } | { error: Error };

export interface CsrParser {
  /** Outcomes in the order of `csrs`. Never rejects for a bad CSR: that is an outcome. */
  parse(csrs: readonly Uint8Array[]): Promise<CsrOutcome[]>;
  close(): Promise<void>;
}

export interface CsrWorkerPoolConfig {
  /** Worker threads (default: one per core, at most 4; 0 = parse inline). The event loop keeps the mint, TLS and gRPC. */
  size?: number;
  /** Batches with fewer CSRs than this are parsed inline (default 8). */
  inlineBelow?: number;
  /** The compiled worker script (default: found next to this module, or under dist/). */
  workerUrl?: URL;
}

/** Parses one CSR on this thread, as an outcome. */
export function parseCsrOutcome(csr: Uint8Array): CsrOutcome {
  try {
    return { spki: parseCsr(csr).spki };
  } catch (err) {
    return { error: err instanceof Error ? err : new Error(String(err)) };
  }
}

function fromWorker(o: CsrJobOutcome): CsrOutcome {
  if ('spki' in o) return { spki: Buffer.from(o.spki.buffer, o.spki.byteOffset, o.spki.byteLength) };
  if (o.code === 'internal') return { error: new Error(`CSR worker: ${o.message}`) };
  return { error: new X509SvidError(o.code as ErrorCode, o.message) };
}

/**
 * The compiled worker script: beside this module when running from dist/, else the
 * repository's dist/ (tests run from sources after `npm run build`, as the house does).
 */
export function defaultCsrWorkerUrl(): URL | undefined {
  const self = fileURLToPath(import.meta.url);
  const beside = join(dirname(self), 'csr-worker.js');
  if (existsSync(beside)) return pathToFileURL(beside);
  let dir = dirname(self);
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'dist', 'src', 'server', 'csr-worker.js');
    if (existsSync(candidate)) return pathToFileURL(candidate);
    dir = dirname(dir);
  }
  return undefined;
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (o: CsrOutcome[]) => void; reject: (e: Error) => void }>;
  dead: boolean;
}

export class CsrWorkerPool implements CsrParser {
  readonly size: number;
  readonly #inlineBelow: number;
  readonly #url: URL | undefined;
  readonly #slots: (Slot | undefined)[];
  #nextId = 1;
  #closed = false;

  constructor(cfg: CsrWorkerPoolConfig = {}) {
    const size = cfg.size ?? Math.max(1, Math.min(4, availableParallelism()));
    if (!Number.isInteger(size) || size < 0 || size > 64) throw new TypeError('size must be an integer from 0 to 64');
    this.#url = size > 0 ? (cfg.workerUrl ?? defaultCsrWorkerUrl()) : undefined;
    this.size = this.#url === undefined ? 0 : size;
    this.#inlineBelow = cfg.inlineBelow ?? 8;
    this.#slots = new Array<Slot | undefined>(this.size).fill(undefined);
  }

  /** Worker threads currently running (for tests and metrics). */
  get running(): number {
    return this.#slots.filter((s) => s !== undefined && !s.dead).length;
  }

  async parse(csrs: readonly Uint8Array[]): Promise<CsrOutcome[]> {
    if (this.size === 0 || this.#closed || csrs.length < Math.max(1, this.#inlineBelow)) return csrs.map(parseCsrOutcome);
    const chunks = Math.min(this.size, Math.ceil(csrs.length / Math.max(1, this.#inlineBelow)));
    const per = Math.ceil(csrs.length / chunks);
    const parts: Promise<CsrOutcome[]>[] = [];
    for (let i = 0; i < csrs.length; i += per) parts.push(this.#run(csrs.slice(i, i + per)));
    return (await Promise.all(parts)).flat();
  }

  #run(csrs: Uint8Array[]): Promise<CsrOutcome[]> {
    const slot = this.#leastBusy();
    if (slot === undefined) return Promise.resolve(csrs.map(parseCsrOutcome));
    const id = this.#nextId++;
    return new Promise<CsrOutcome[]>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      const job: CsrJob = { id, csrs };
      slot.worker.postMessage(job);
    }).catch(() => csrs.map(parseCsrOutcome)); // the worker died: check them here instead
  }

  #leastBusy(): Slot | undefined {
    let best: Slot | undefined;
    for (let i = 0; i < this.#slots.length; i++) {
      let s = this.#slots[i];
      if (s === undefined || s.dead) s = this.#slots[i] = this.#spawn();
      if (s === undefined) continue;
      if (best === undefined || s.pending.size < best.pending.size) best = s;
    }
    return best;
  }

  #spawn(): Slot | undefined {
    if (this.#url === undefined || this.#closed) return undefined;
    let worker: Worker;
    try {
      worker = new Worker(this.#url);
    } catch {
      return undefined;
    }
    worker.unref(); // a forgotten close() must not keep the process alive
    const slot: Slot = { worker, pending: new Map(), dead: false };
    const fail = (why: Error): void => {
      slot.dead = true;
      for (const p of slot.pending.values()) p.reject(why);
      slot.pending.clear();
    };
    worker.on('message', (r: CsrJobResult) => {
      const p = slot.pending.get(r.id);
      if (p === undefined) return;
      slot.pending.delete(r.id);
      p.resolve(r.outcomes.map(fromWorker));
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', () => fail(new Error('CSR worker exited')));
    return slot;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0).filter((s): s is Slot => s !== undefined);
    await Promise.all(slots.map((s) => s.worker.terminate().catch(() => undefined)));
  }
}
