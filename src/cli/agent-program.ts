/**
 * @module cli/agent-program
 *
 * The `mayfly-agent` command tree: `run`, `validate`, `healthcheck`, the `api` client commands and `helper`.
 * SPIRE's flag spellings and `--kebab-case` both work; every failure is one `Error: ...`
 * line on stderr and a non-zero exit code.
 */
import type { Command } from 'commander';
import { createProgram, type CliIo } from './flags.js';
import { registerAgentApiCommands } from './agent-api.js';
import { addAgentHelperCommand } from './agent-helper.js';
import { addAgentRunCommands } from './agent-run.js';
import { addAgentValidateCommand } from './agent-validate.js';

export function buildAgentProgram(io?: Partial<CliIo>): Command {
  const program = createProgram({
    name: 'mayfly-agent',
    description: 'Mayfly agent: node attestation and the SPIFFE Workload API',
    version: '0.1.0',
    ...(io ? { io } : {}),
  });
  addAgentRunCommands(program);
  addAgentValidateCommand(program);
  registerAgentApiCommands(program);
  addAgentHelperCommand(program);
  return program;
}
