/**
 * Child process for the kill -9 test: opens the LevelDB datastore at argv[2] and runs the
 * shared write loop (`../../testdata/kill-writer.ts`), which prints one line per
 * ACKNOWLEDGED write until killed.
 * The test runs its compiled form, dist/src/datastore/level/testdata/kill-writer.fixture.js.
 */
import { runKillWriter } from '../../testdata/kill-writer.js';
import { openLevelDatastore } from '../level.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: kill-writer.fixture.ts <dir>');
await runKillWriter(await openLevelDatastore({ path: dir }));
