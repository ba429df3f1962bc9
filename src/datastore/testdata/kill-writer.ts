/**
 * @module datastore/testdata/kill-writer
 *
 * The write loop of the kill -9 fixtures (`level/testdata/kill-writer.fixture.ts`,
 * `postgres/testdata/kill-writer.fixture.ts`): single creates, batch creates, updates and
 * deletes until the process is killed, printing one line per ACKNOWLEDGED write (after its
 * promise resolved), so the test can check that none of them was lost:
 *   ready                  (once, before the first write)
 *   created <entryId>      (single creates and batch creates)
 *   updated <entryId> <revision>
 *   deleted <entryId>
 */
import type { Datastore } from '../datastore.js';

/** Writes to `ds` forever (until the process is killed). */
export async function runKillWriter(ds: Datastore): Promise<never> {
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  say('ready');
  const entry = (n: number) => ({
    spiffeId: `spiffe://example.org/w/${n}`,
    parentId: `spiffe://example.org/agent/${n % 7}`,
    selectors: [
      { type: 'unix', value: `uid:${n}` },
      { type: 'k8s', value: `ns:${n % 3}` },
    ],
    federatesWith: n % 5 === 0 ? ['other.org'] : [],
  });
  for (let n = 0; ; ) {
    if (n % 10 === 9) {
      const results = await ds.createEntries(Array.from({ length: 20 }, (_, k) => entry(n + k)));
      for (const r of results) if (r.entry !== undefined) say(`created ${r.entry.entryId}`);
      n += 20;
    } else {
      const e = await ds.createEntry(entry(n));
      say(`created ${e.entryId}`);
      if (n % 4 === 0) {
        const u = await ds.updateEntry({ ...e, hint: `updated-${n}`, selectors: [...e.selectors, { type: 'extra', value: String(n) }] }, { expectedRevision: 0 });
        say(`updated ${u.entryId} ${u.revision}`);
      }
      if (n % 6 === 0) {
        await ds.deleteEntry(e.entryId);
        say(`deleted ${e.entryId}`);
      }
      n += 1;
    }
  }
}
