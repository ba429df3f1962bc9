/**
 * @module cli/server-program
 *
 * The `mayfly-server` command tree. Every command but `run` and `validate` is a client of
 * the server's admin API over its Unix socket (`-socketPath`, default: the first of
 * `defaultSocketCandidates('server')` that exists, i.e. `/run/mayfly/server/private/api.sock`
 * as root, see wire/workload/socket-paths). SPIRE's flag spellings (`-spiffeID`,
 * `-selector a -selector b`, `-output json`) and `--kebab-case` both work; every failure is
 * one `Error: ...` line on stderr and a non-zero exit code.
 */
import type { Command } from 'commander';
import { createProgram, type CliIo } from './flags.js';
import { addAgentCommands } from './server-agent.js';
import { addAuditCommands } from './server-audit.js';
import { addBundleCommands } from './server-bundle.js';
import { SERVER_SPIRE_FLAGS } from './server-common.js';
import { addEntryCommands } from './server-entry.js';
import { addFederationCommands } from './server-federation.js';
import { addLoggerCommands } from './server-logger.js';
import { addRunCommands } from './server-run.js';
import { addSvidCommands } from './server-svid.js';

export function buildServerProgram(io?: Partial<CliIo>): Command {
  const program = createProgram({
    name: 'mayfly-server',
    description: 'Mayfly server: a SPIFFE certificate authority and registration API',
    version: '0.1.0',
    spireFlags: SERVER_SPIRE_FLAGS,
    ...(io ? { io } : {}),
  });
  addRunCommands(program);
  addEntryCommands(program);
  addAgentCommands(program);
  addBundleCommands(program);
  addFederationCommands(program);
  addSvidCommands(program);
  addLoggerCommands(program);
  addAuditCommands(program);
  return program;
}
