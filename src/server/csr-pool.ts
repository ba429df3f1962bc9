/**
 * @module server/csr-pool
 *
 * Runs the crypto of batch signing on worker threads, so the event loop keeps only gRPC,
 * TLS and authorisation. `mint` does the whole path per item — CSR checks (strict parse,
 * key policy, proof of possession), the mint, and the verification of the SVID against the
 * bundle, signature included (`mintX509SvidsFromCsrs` in ca/mint) — one message per worker
 * per batch. The code is the same inline: a worker changes where it runs, not what it
 * accepts or signs.
 *
 * Small batches run inline (a round trip to a worker costs more than it saves). If the
 * compiled worker script cannot be found (running from TypeScript sources without a
 * build), or a worker dies, the pool runs inline rather than failing the call. A worker
 * that does not answer a job within `jobTimeoutMs` is terminated and replaced, and that
 * job's items fail (INTERNAL) instead of being re-run here: whatever hung a worker must not
 * get the chance to hang the event loop.
 *
 * Threat: signing with the wrong authority. `mint` takes the `X509MintAuthority` snapshot
 * the request was given (ServerCa.x509MintAuthority at arrival); each snapshot gets a
 * number, a worker is sent the snapshot whenever the one it holds differs, and it refuses
 * a job naming a snapshot it does not hold. The CA key crosses only as a KeyObject clone
 * between threads of this process, never as bytes.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { MayflyError, type ErrorCode } from '../spiffe/errors.js';
import { mintX509SvidsFromCsrs, type CsrMintItem, type CsrMintOutcome, type X509MintAuthority } from '../ca/mint.js';
import type { CsrJobResult, MintJob, MintJobOutcome, WireError } from './csr-worker.js';

export type { CsrMintItem, CsrMintOutcome, X509MintAuthority } from '../ca/mint.js';

/** Where batch signing's crypto runs: CSR checks, mint and verification per item (`CsrWorkerPool`, or inline). */
export interface CsrMinter {
  /**
   * Checks every CSR, mints its X.509-SVID with `authority` at `now`, and verifies it
   * against `authority`'s bundle: `mintX509SvidsFromCsrs`, spread over the workers.
   * Outcomes in the order of `items`; never rejects for a bad item.
   */
  mint(authority: X509MintAuthority, now: Date, items: readonly CsrMintItem[]): Promise<CsrMintOutcome[]>;
  close(): Promise<void>;
}

export interface CsrWorkerPoolConfig {
  /** Worker threads (default: one per core, at most 4; 0 = all inline). They do the CSR checks, mints and verifications; the event loop keeps TLS and gRPC. */
  size?: number;
  /** Batches with fewer CSRs than this run inline (default 8). */
  inlineBelow?: number;
  /** The compiled worker script (default: found next to this module, or under dist/). */
  workerUrl?: URL;
  /** A job not answered within this many ms ends its worker and fails its items (default 30 s; a batch takes milliseconds). */
  jobTimeoutMs?: number;
}

/** A job its worker did not answer in time. */
class WorkerTimeout extends Error {}

/** An error from a worker: a MayflyError of the same code (the gRPC status depends only on it), or a plain Error for `internal`. */
function errorFromWorker(o: WireError): Error {
  if (o.code === 'internal') return new Error(`CSR worker: ${o.message}`);
  return new MayflyError(o.code as ErrorCode, o.message);
}

function mintedFromWorker(o: MintJobOutcome, leaves: ArrayBuffer | undefined): CsrMintOutcome {
  if ('offset' in o) {
    if (leaves === undefined || o.offset + o.length > leaves.byteLength) return { error: new Error('CSR worker: a minted leaf is missing from its answer') };
    return { leaf: Buffer.from(leaves, o.offset, o.length), serialHex: o.serialHex, notAfter: o.notAfter };
  }
  return { error: errorFromWorker(o) };
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
  pending: Map<number, { resolve: (r: CsrJobResult) => void; reject: (e: Error) => void }>;
  dead: boolean;
  /** The authority snapshot number this worker holds (after the messages already sent). */
  authorityRef: number | undefined;
}

/** Snapshot numbers: a worker holds one snapshot and is told which one a job needs. */
const authorityRefs = new WeakMap<X509MintAuthority, number>();
let nextAuthorityRef = 1;
function refOf(a: X509MintAuthority): number {
  let r = authorityRefs.get(a);
  if (r === undefined) authorityRefs.set(a, (r = nextAuthorityRef++));
  return r;
}

export class CsrWorkerPool implements CsrMinter {
  readonly size: number;
  readonly #inlineBelow: number;
  readonly #url: URL | undefined;
  readonly #jobTimeoutMs: number;
  readonly #slots: (Slot | undefined)[];
  #nextId = 1;
  #closed = false;

  constructor(cfg: CsrWorkerPoolConfig = {}) {
    const size = cfg.size ?? Math.max(1, Math.min(4, availableParallelism()));
    if (!Number.isInteger(size) || size < 0 || size > 64) throw new TypeError('size must be an integer from 0 to 64');
    this.#url = size > 0 ? (cfg.workerUrl ?? defaultCsrWorkerUrl()) : undefined;
    this.size = this.#url === undefined ? 0 : size;
    this.#inlineBelow = cfg.inlineBelow ?? 8;
    this.#jobTimeoutMs = cfg.jobTimeoutMs ?? 30_000;
    if (!Number.isSafeInteger(this.#jobTimeoutMs) || this.#jobTimeoutMs <= 0) throw new TypeError('jobTimeoutMs must be a positive integer');
    this.#slots = new Array<Slot | undefined>(this.size).fill(undefined);
  }

  /** Worker threads currently running (for tests and metrics). */
  get running(): number {
    return this.#slots.filter((s) => s !== undefined && !s.dead).length;
  }

  async mint(authority: X509MintAuthority, now: Date, items: readonly CsrMintItem[]): Promise<CsrMintOutcome[]> {
    const ref = refOf(authority);
    const nowMs = now.getTime();
    return this.#spread(
      items,
      (part) => mintX509SvidsFromCsrs(authority, part, now),
      (id, part, slot) => {
        const job: MintJob = { kind: 'mint', id, authorityRef: ref, nowMs, items: part };
        if (slot.authorityRef !== ref) {
          job.authority = authority;
          slot.authorityRef = ref;
        }
        return job;
      },
      (r) => r.outcomes.map((o) => mintedFromWorker(o, r.leaves)),
      (error) => ({ error }),
    );
  }

  /** Splits `items` into one share per worker (or runs them inline), in order. */
  async #spread<I, O>(
    items: readonly I[],
    inline: (part: I[]) => O[],
    job: (id: number, part: I[], slot: Slot) => MintJob,
    back: (r: CsrJobResult) => O[],
    failed: (err: Error) => O,
  ): Promise<O[]> {
    if (this.size === 0 || this.#closed || items.length < Math.max(1, this.#inlineBelow)) return inline([...items]);
    const chunks = Math.min(this.size, Math.ceil(items.length / Math.max(1, this.#inlineBelow)));
    const per = Math.ceil(items.length / chunks);
    const parts: Promise<O[]>[] = [];
    for (let i = 0; i < items.length; i += per) parts.push(this.#run(items.slice(i, i + per), inline, job, back, failed));
    return (await Promise.all(parts)).flat();
  }

  #run<I, O>(part: I[], inline: (part: I[]) => O[], job: (id: number, part: I[], slot: Slot) => MintJob, back: (r: CsrJobResult) => O[], failed: (err: Error) => O): Promise<O[]> {
    const slot = this.#leastBusy();
    if (slot === undefined) return Promise.resolve(inline(part));
    const id = this.#nextId++;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<O[]>((resolve, reject) => {
      slot.pending.set(id, { resolve: (o) => resolve(back(o)), reject });
      try {
        slot.worker.postMessage(job(id, part, slot));
      } catch (err) {
        slot.pending.delete(id);
        slot.authorityRef = undefined; // it may not have received the snapshot: send it again next time
        throw err;
      }
      timer = setTimeout(() => {
        const p = slot.pending.get(id);
        if (p === undefined) return;
        slot.pending.delete(id);
        p.reject(new WorkerTimeout(`CSR worker did not answer within ${this.#jobTimeoutMs} ms; it was replaced`));
        // Its other jobs fail over to inline through the exit handler; a new worker is spawned on demand.
        slot.dead = true;
        void slot.worker.terminate().catch(() => undefined);
      }, this.#jobTimeoutMs);
      timer.unref();
    })
      .catch((err: unknown) => (err instanceof WorkerTimeout ? part.map(() => failed(err)) : inline(part))) // the worker died (or the job could not be sent): do them here instead
      .finally(() => clearTimeout(timer));
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
    const slot: Slot = { worker, pending: new Map(), dead: false, authorityRef: undefined };
    const fail = (why: Error): void => {
      slot.dead = true;
      for (const p of slot.pending.values()) p.reject(why);
      slot.pending.clear();
    };
    worker.on('message', (r: CsrJobResult) => {
      const p = slot.pending.get(r.id);
      if (p === undefined) return;
      slot.pending.delete(r.id);
      p.resolve(r);
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
