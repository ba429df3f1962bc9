/**
 * @module cli/server
 *
 * Entry point of the `mayfly-server` binary (bin/mayfly-server.js imports this module).
 * The command tree is in cli/server-program; only the group the call names is loaded.
 */
import { runMain } from './flags.js';
import { buildServerProgram } from './server-program.js';

const argv = process.argv.slice(2);
await runMain(await buildServerProgram(undefined, argv), argv);
