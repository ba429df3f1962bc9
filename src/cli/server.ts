/**
 * @module cli/server
 *
 * Entry point of the `mayfly-server` binary (bin/mayfly-server.js imports this module).
 * The command tree is in cli/server-program.
 */
import { runMain } from './flags.js';
import { buildServerProgram } from './server-program.js';

await runMain(buildServerProgram());
