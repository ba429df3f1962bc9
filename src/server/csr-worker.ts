/**
 * @module server/csr-worker
 *
 * Worker-thread side of server/csr-pool: parses CSRs with `parseCsr` (strict DER, key
 * strength, and the self-signature that proves possession of the private key) and answers
 * with each CSR's SPKI or its error. Nothing but CSR bytes enters and nothing but public
 * keys and error messages leaves: no CA key is ever in a worker.
 */
import { parentPort } from 'node:worker_threads';
import { isMayflyError } from '../spiffe/errors.js';
import { parseCsr } from '../spiffe/x509/csr.js';

/** A request: CSRs (DER) tagged with the job id. */
export interface CsrJob {
  id: number;
  csrs: Uint8Array[];
}

/** One CSR's outcome: its SPKI, or a MayflyError code and message, or `internal`. */
export type CsrJobOutcome = { spki: Uint8Array } | { code: string; message: string };

export interface CsrJobResult {
  id: number;
  outcomes: CsrJobOutcome[];
}

function outcomeOf(csr: Uint8Array): CsrJobOutcome {
  try {
    return { spki: parseCsr(csr).spki };
  } catch (err) {
    if (isMayflyError(err)) return { code: err.code, message: err.message };
    return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
  }
}

parentPort?.on('message', (job: CsrJob) => {
  const result: CsrJobResult = { id: job.id, outcomes: job.csrs.map(outcomeOf) };
  parentPort?.postMessage(result);
});
