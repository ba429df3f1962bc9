/**
 * Child process for the SIGKILL test: opens the PostgreSQL datastore at argv[2]
 * (connection string) in schema argv[3] and writes until killed, printing one line per
 * ACKNOWLEDGED write (after its promise resolved):
 *   created <entryId>      (single creates and batch creates)
 *   updated <entryId> <revision>
 *   deleted <entryId>
 * The test runs its compiled form, dist/src/datastore/postgres/testdata/kill-writer.fixture.js.
 */
import { openPostgresDatastore } from '../postgres.js';

const [connectionString, schema] = process.argv.slice(2);
if (connectionString === undefined || schema === undefined) throw new Error('usage: kill-writer.fixture.js <connection string> <schema>');
const ds = await openPostgresDatastore({ connectionString, schema });
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
