/**
 * The bundled client entry of `mayfly-server` (issue 18, item 1: CLI start-up), built after
 * tsc by `npm run build` (and by the test suite's global setup): dist/src/cli/server.js and
 * the client command groups it loads, with commander, in a few files
 * (dist/src/cli/server.bundle*.js) instead of ~40 ES modules and commander's CommonJS
 * (resolving and reading each file was most of a call's start-up once protobufjs was gone).
 *
 * Only client commands run from it: bin/mayfly-server.js routes `run` and `validate` to
 * dist/src/cli/server.js. What only those two load (the server's config loader and runner,
 * the logger) stays external and is never loaded from the bundle; everything a client
 * command reaches is inside it, so no module runs twice under two names (one MayflyError
 * class, one SpiffeId). Other packages stay runtime imports. The files sit beside the
 * modules they replace, so lookups relative to a module's own URL (proto/server.json) and
 * the external imports' relative paths mean the same files.
 *
 * rolldown is used when it is installed (it is, with vitest's vite); without it this says
 * so and exits 0, and bin/mayfly-server.js runs the unbundled modules.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import process from 'node:process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'src', 'cli', 'server.js');
const outDir = join(root, 'dist', 'src', 'cli');
const distSrc = join(root, 'dist', 'src') + sep;
const PREFIX = 'server.bundle.';
/** Packages copied into the bundle; every other bare import stays a runtime import. */
const INLINED_PACKAGES = new Set(['commander']);
/** Modules of dist/src only `run` and `validate` load (cli/server-run's dynamic imports). */
const SERVER_ONLY = new Set(['server/config.js', 'server/runner.js', 'observability/logger.js', 'observability/log-destination.js']);

function external(id, importer, isResolved) {
  if (id.startsWith('node:')) return true;
  if (!isResolved && !id.startsWith('.') && !id.startsWith('/')) {
    const name = id.startsWith('@') ? id.split('/').slice(0, 2).join('/') : id.split('/')[0];
    return !INLINED_PACKAGES.has(name);
  }
  if (isResolved && id.startsWith(distSrc)) {
    return SERVER_ONLY.has(id.slice(distSrc.length).split(sep).join('/'));
  }
  return false;
}

for (const f of readdirSync(outDir)) if (f.startsWith(PREFIX) || f === 'server.bundle.js') rmSync(join(outDir, f));
if (!existsSync(entry)) {
  process.stderr.write(`bundle-cli: ${entry} is missing; run tsc first` + '\n');
  process.exit(1);
}
let rolldown;
try {
  ({ rolldown } = await import('rolldown'));
} catch {
  process.stderr.write('bundle-cli: rolldown is not installed; mayfly-server runs unbundled (slower start-up)' + '\n');
  process.exit(0);
}
const build = await rolldown({ input: { 'server.bundle': entry }, platform: 'node', external, logLevel: 'warn' });
await build.write({ dir: outDir, format: 'esm', entryFileNames: 'server.bundle.js', chunkFileNames: `${PREFIX}[name]-[hash].js`, sourcemap: false });
await build.close();
