/**
 * @module datastore/testdata/kill-check
 *
 * The parent side of the kill -9 tests both stores run: start a compiled kill-writer
 * fixture (see kill-writer.ts), SIGKILL it once it has acknowledged a good number of
 * writes, then check on a freshly opened store that every acknowledged write is there.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import type { Datastore } from '../datastore.js';

export interface KilledWriter {
  /** Every line the writer printed before it died, `ready` first. */
  lines: string[];
  /** How many stdout chunks carried them (more than one: the kill came mid-stream). */
  chunks: number;
}

/** Runs `fixture` (compiled, from dist/) with `args` and SIGKILLs it after 400 acknowledgements. */
export async function killWriterMidFlight(fixture: string, args: readonly string[]): Promise<KilledWriter> {
  expect(existsSync(fixture), `${fixture} is missing: run \`npm run build\` (vitest's global setup does)`).toBe(true);
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: string[] = [];
  let partial = '';
  let chunks = 0;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
      chunks++;
      // Kill it mid-flight once it has acknowledged a good number of writes.
      if (lines.length >= 400 && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', () => resolve());
    child.on('error', reject);
  });
  const signal = await exited;
  // Lines written before the kill but still in the pipe are acknowledged too.
  await new Promise<void>((resolve) => (child.stdout.readableEnded ? resolve() : child.stdout.on('end', () => resolve())));
  expect(signal, `child ended without being killed: ${stderr}`).toBe('SIGKILL');
  expect(lines[0]).toBe('ready');
  return { lines, chunks };
}

/** Checks a reopened store against the writer's acknowledgements. */
export async function expectAcknowledgedWrites(ds: Datastore & { verifyIndexes(): Promise<string[]> }, lines: readonly string[]): Promise<void> {
  const created = new Set<string>();
  const deleted = new Set<string>();
  const revisions = new Map<string, number>();
  for (const line of lines.slice(1)) {
    const [what, id, rev] = line.split(' ');
    if (what === 'created') created.add(id!);
    else if (what === 'deleted') deleted.add(id!);
    else if (what === 'updated') revisions.set(id!, Number(rev));
    else throw new Error(`unexpected line from the child: ${line}`);
  }
  expect(created.size).toBeGreaterThanOrEqual(300);
  for (const id of created) {
    const e = await ds.getEntry(id);
    if (deleted.has(id)) {
      expect(e, `deleted entry ${id} is back`).toBeUndefined();
    } else {
      expect(e, `acknowledged entry ${id} is missing`).toBeDefined();
      // An update may have landed after the last acknowledgement, never before it.
      expect(e!.revision).toBeGreaterThanOrEqual(revisions.get(id) ?? 0);
    }
  }
  // The write in flight at the kill left nothing half-written.
  expect(await ds.verifyIndexes()).toEqual([]);
  // The store is usable, and indexes answer for the acknowledged entries.
  const some = [...created].find((id) => !deleted.has(id))!;
  const e = (await ds.getEntry(some))!;
  expect((await ds.listEntries({ bySpiffeId: e.spiffeId })).items.map((x) => x.entryId)).toContain(some);
  expect(await ds.countEntries()).toBeGreaterThanOrEqual(created.size - deleted.size);
}
