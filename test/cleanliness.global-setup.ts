/**
 * `npm test` leaves nothing behind: every `/tmp/mayfly-*` entry a test made is gone at the
 * end of the run. In CI (CI=true: one run on the machine) a leftover fails the run, naming
 * it; elsewhere, where other runs may share /tmp, the leftovers are only listed.
 */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';

function mayflyEntries(): Set<string> {
  return new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('mayfly-')));
}

export default function setup(): () => void {
  const before = mayflyEntries();
  return () => {
    const left = [...mayflyEntries()].filter((n) => !before.has(n)).sort();
    if (left.length === 0) return;
    const list = left.map((n) => `${tmpdir()}/${n}`).join(', ');
    if (process.env.CI === 'true') {
      // A throw here is only printed by vitest (exit 0): set the exit code so the run fails.
      console.error(`FAIL: the tests left ${left.length} temporary entries behind: ${list}`);
      process.exitCode = 1;
      return;
    }
    console.warn(`tests left ${left.length} temporary entries behind (other runs may share ${tmpdir()}): ${list}`);
  };
}
