/**
 * Child process for the SIGKILL test: opens the PostgreSQL datastore at argv[2]
 * (connection string) in schema argv[3] and runs the shared write loop
 * (`../../testdata/kill-writer.ts`), which prints one line per ACKNOWLEDGED write until killed.
 * The test runs its compiled form, dist/src/datastore/postgres/testdata/kill-writer.fixture.js.
 */
import { runKillWriter } from '../../testdata/kill-writer.js';
import { openPostgresDatastore } from '../postgres.js';

const [connectionString, schema] = process.argv.slice(2);
if (connectionString === undefined || schema === undefined) throw new Error('usage: kill-writer.fixture.js <connection string> <schema>');
await runKillWriter(await openPostgresDatastore({ connectionString, schema }));
