#!/usr/bin/env node
// Client commands run from the bundled build of the CLI when `npm run build` made one
// (build/bundle-cli.mjs: a few files instead of ~40 modules, issue 18); `run`, `validate`,
// flags alone and a build without the bundle run the modules tsc emitted.
import { existsSync } from 'node:fs';

const first = process.argv[2];
const bundle = new URL('../dist/src/cli/server.bundle.js', import.meta.url);
const client = first !== undefined && first !== 'run' && first !== 'validate' && !first.startsWith('-');
await import(client && existsSync(bundle) ? bundle.href : '../dist/src/cli/server.js');
