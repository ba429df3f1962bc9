/**
 * Where SPIRE v1.13.3's binaries are (built by `test/interop/spire/build.sh`, which
 * `.ci/run` calls): `$MAYFLY_SPIRE_BIN`, else `~/.cache/mayfly-peers/spire-1.13.3/bin`.
 * A test that needs one fails with the command to run when it is missing; none skips.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function spireBinary(name: 'spire-agent' | 'spire-server'): string {
  const dir = process.env.MAYFLY_SPIRE_BIN ?? join(homedir(), '.cache', 'mayfly-peers', 'spire-1.13.3', 'bin');
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: build SPIRE v1.13.3 once with test/interop/spire/build.sh (.ci/run does)`);
  }
  return path;
}
