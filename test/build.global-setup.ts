/**
 * Compiles src/ to dist/ once before the suite, so tests that spawn real processes
 * (CLI binaries, servers and agents killed with SIGKILL, child writers) run exactly
 * what `npm run build` ships rather than a test-only transpilation.
 * `tsconfig.test-build.json` is `tsconfig.build.json` (which leaves test support out) plus
 * the child-process fixtures under `testdata/` that tests run from dist/. Then, as
 * `npm run build` does, build/bundle-cli.mjs bundles mayfly-server's client commands.
 *
 * Type errors do not stop the build here (tsc still emits): `npm test` type-checks
 * the whole tree in its own step before vitest starts, and fails there.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.test-build.json'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    process.stderr.write(`build.global-setup: tsc reported problems (npm test's typecheck step fails on them):\n${r.stdout}${r.stderr}`.slice(0, 4000));
  }
  // The bundled client entry bin/mayfly-server.js runs, as `npm run build` makes it.
  const b = spawnSync(process.execPath, [join(root, 'build', 'bundle-cli.mjs')], { cwd: root, encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`build.global-setup: build/bundle-cli.mjs failed:\n${b.stdout}${b.stderr}`.slice(0, 4000));
}
