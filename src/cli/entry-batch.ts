/**
 * @module cli/entry-batch
 *
 * Batch calls of any size from the command line. The server takes at most `maxBatch`
 * items per call (server/api-context `DEFAULT_LIMITS.maxBatch`, 500) and refuses more with
 * RESOURCE_EXHAUSTED "... the limit per call is N"; `runBatched` sends chunks of 500, and
 * when a server says its limit is lower, re-chunks at that limit and goes on. Results keep
 * the order of the items. Runs of more than one chunk report progress on stderr
 * (`created 500 of 1200 entries`), so a long import is visibly moving and stdout stays
 * one document.
 */
import type { WireStatus } from '../server/messages.js';
import { grpcCodeName } from '../observability/grpc-code-name.js';
import type { CliIo } from './flags.js';

/** The server's default per-call limit (server/api-context DEFAULT_LIMITS.maxBatch). */
export const DEFAULT_BATCH_LIMIT = 500;

export interface BatchConfig<I, R> {
  items: readonly I[];
  /** One call with up to `limit` items; its results in item order. */
  call: (chunk: I[]) => Promise<R[]>;
  /** Progress lines go here when there is more than one chunk. */
  io: Pick<CliIo, 'err'>;
  /** Past tense and noun for progress lines: `created`, `entries`. */
  verb: string;
  noun: string;
  limit?: number;
}

const LIMIT_RE = /limit per call is (\d+)/;

/** A RESOURCE_EXHAUSTED error naming a smaller per-call limit: that limit. */
function smallerLimit(err: unknown, current: number): number | undefined {
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown } };
  const grpc = typeof e?.code === 'number' ? e.code : e?.cause?.code;
  if (grpc !== 8 && !(err instanceof Error && /RESOURCE_EXHAUSTED/.test(err.message))) return undefined;
  const m = LIMIT_RE.exec(String(e?.message ?? ''));
  const n = m ? Number(m[1]) : undefined;
  return n !== undefined && n > 0 && n < current ? n : undefined;
}

export async function runBatched<I, R>(cfg: BatchConfig<I, R>): Promise<R[]> {
  let limit = cfg.limit ?? DEFAULT_BATCH_LIMIT;
  const out: R[] = [];
  const total = cfg.items.length;
  let done = 0;
  while (done < total) {
    const chunk = cfg.items.slice(done, done + limit);
    let results: R[];
    try {
      results = await cfg.call(chunk);
    } catch (err) {
      const lower = smallerLimit(err, limit);
      if (lower === undefined) throw err;
      limit = lower;
      continue;
    }
    out.push(...results);
    done += chunk.length;
    if (total > limit) cfg.io.err(`${cfg.verb} ${done} of ${total} ${cfg.noun}\n`);
  }
  return out;
}

/** `Created 3 entries, 2 failed:` and one line per failure, for stderr. */
export function batchSummary(verb: string, results: readonly { status: WireStatus }[], describe: (i: number) => string): string {
  const failed = results.map((r, i) => ({ r, i })).filter(({ r }) => r.status.code !== 0);
  const ok = results.length - failed.length;
  const head = `${verb} ${ok} ${ok === 1 ? 'entry' : 'entries'}, ${failed.length} failed${failed.length > 0 ? ':' : ''}`;
  return [head, ...failed.map(({ r, i }) => `  ${describe(i)}: ${r.status.message} (${grpcCodeName(r.status.code)})`)].join('\n') + '\n';
}
