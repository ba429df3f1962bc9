/**
 * @module cli/agent
 *
 * Entry point of the `mayfly-agent` binary (bin/mayfly-agent.js imports this module).
 */
import { runMain } from './flags.js';
import { buildAgentProgram } from './agent-program.js';

await runMain(buildAgentProgram());
