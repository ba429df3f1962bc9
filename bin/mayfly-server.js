#!/usr/bin/env node
// Client commands run from the bundled build of the CLI when `npm run build` made one
// (build/bundle-cli.mjs: a few files instead of ~40 modules, issue 18) and it is not older
// than tsc's output (a tsc run without the bundle step leaves it stale); `run`, `validate`,
// flags alone and every other case run the modules tsc emitted.
import { statSync } from 'node:fs';

const first = process.argv[2];
const client = first !== undefined && first !== 'run' && first !== 'validate' && !first.startsWith('-');
const bundle = new URL('../dist/src/cli/server.bundle.js', import.meta.url);
const modules = new URL('../dist/src/cli/server.js', import.meta.url);
const fresh = client && (statSync(bundle, { throwIfNoEntry: false })?.mtimeMs ?? -1) >= (statSync(modules, { throwIfNoEntry: false })?.mtimeMs ?? Infinity);
await import(fresh ? bundle.href : modules.href);
