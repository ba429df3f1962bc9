/**
 * @module server/csr-worker
 *
 * Worker-thread side of server/csr-pool. One job per batch share: the whole batch signing
 * path, `mintX509SvidsFromCsrs` (CSR checks, mint, and verification of every SVID against
 * the bundle, signature included), with the `X509MintAuthority` snapshot the main thread
 * took when the request arrived.
 *
 * Threat: a worker signing with an authority other than the one the request was given. The
 * worker keeps only the last authority it was sent, and a `mint` job names the authority
 * it needs by number; the pool sends the snapshot along whenever the worker's differs
 * (messages to one worker arrive in order), and a job naming an authority the worker does
 * not hold is refused, never signed with another. The CA key arrives as a KeyObject
 * (cloned inside this process); it is never serialised to bytes and never leaves the process.
 */
import { parentPort } from 'node:worker_threads';
import { isMayflyError } from '../spiffe/errors.js';
import { mintX509SvidsFromCsrs, type CsrMintItem, type X509MintAuthority } from '../ca/mint.js';

/** A batch share to check and mint with authority number `authorityRef` (sent along in `authority` when new to this worker). */
export interface MintJob {
  kind: 'mint';
  id: number;
  authorityRef: number;
  authority?: X509MintAuthority;
  nowMs: number;
  items: CsrMintItem[];
}

/** An error as it crosses the thread boundary: a MayflyError code and message, or `internal`. */
export interface WireError {
  code: string;
  message: string;
}

/** One minted item: where its leaf is in the result's `leaves`, and what the wire needs of it; or an error. */
export type MintJobOutcome = { offset: number; length: number; serialHex: string; notAfter: number } | WireError;

export interface CsrJobResult {
  id: number;
  outcomes: MintJobOutcome[];
  /** Every leaf (DER) back to back, in one transferred buffer (one copy, no per-leaf clone). */
  leaves?: ArrayBuffer;
}

export function wireErrorOf(err: unknown): WireError {
  if (isMayflyError(err)) return { code: err.code, message: err.message };
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}

let current: { ref: number; authority: X509MintAuthority } | undefined;

function mint(job: MintJob): CsrJobResult {
  if (job.authority !== undefined) current = { ref: job.authorityRef, authority: job.authority };
  if (current === undefined || current.ref !== job.authorityRef) {
    return { id: job.id, outcomes: job.items.map(() => ({ code: 'internal', message: `CSR worker does not hold authority #${job.authorityRef}` })) };
  }
  const minted = mintX509SvidsFromCsrs(current.authority, job.items, new Date(job.nowMs));
  let total = 0;
  for (const o of minted) if ('leaf' in o) total += o.leaf.length;
  const leaves = new Uint8Array(total);
  let offset = 0;
  const outcomes = minted.map((o): MintJobOutcome => {
    if ('error' in o) return wireErrorOf(o.error);
    leaves.set(o.leaf, offset);
    offset += o.leaf.length;
    return { offset: offset - o.leaf.length, length: o.leaf.length, serialHex: o.serialHex, notAfter: o.notAfter };
  });
  return { id: job.id, outcomes, leaves: leaves.buffer };
}

parentPort?.on('message', (job: MintJob) => {
  const result = mint(job);
  parentPort?.postMessage(result, result.leaves ? [result.leaves] : []);
});
