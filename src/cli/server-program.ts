/**
 * @module cli/server-program
 *
 * The `mayfly-server` command tree. Every command but `run` and `validate` is a client of
 * the server's admin API over its Unix socket (`-socketPath`, default: the first of
 * `defaultSocketCandidates('server')` that exists, i.e. `/run/mayfly/server/private/api.sock`
 * as root, see wire/workload/socket-paths). SPIRE's flag spellings (`-spiffeID`,
 * `-selector a -selector b`, `-output json`) and `--kebab-case` both work; every failure is
 * one `Error: ...` line on stderr and a non-zero exit code.
 *
 * Command groups load lazily: when the first argument names a top-level command, only the
 * module of its group is imported (a CLI call pays for one group, not eight, issue 18);
 * anything else (`--help`, a typo, no argument) builds the whole tree, so help and
 * commander's suggestions list every command.
 */
import type { Command } from 'commander';
import { createProgram, type CliIo } from './flags.js';
import { SERVER_SPIRE_FLAGS } from './server-common.js';

type AddCommands = (program: Command) => void;

/** Each group's top-level commands and the import that adds them, in help order. */
export const SERVER_COMMAND_GROUPS: ReadonlyArray<{ readonly commands: readonly string[]; readonly load: () => Promise<AddCommands> }> = [
  { commands: ['run', 'validate', 'healthcheck'], load: async () => (await import('./server-run.js')).addRunCommands },
  { commands: ['entry'], load: async () => (await import('./server-entry.js')).addEntryCommands },
  { commands: ['agent', 'token'], load: async () => (await import('./server-agent.js')).addAgentCommands },
  { commands: ['bundle'], load: async () => (await import('./server-bundle.js')).addBundleCommands },
  { commands: ['federation'], load: async () => (await import('./server-federation.js')).addFederationCommands },
  { commands: ['x509', 'jwt', 'localauthority'], load: async () => (await import('./server-svid.js')).addSvidCommands },
  { commands: ['logger'], load: async () => (await import('./server-logger.js')).addLoggerCommands },
  { commands: ['inventory'], load: async () => (await import('./server-inventory.js')).addInventoryCommands },
  { commands: ['audit'], load: async () => (await import('./server-audit.js')).addAuditCommands },
];

/**
 * The program for `argv` (the arguments after the binary): only the group of `argv[0]`
 * when it names a top-level command, the whole tree otherwise (and when `argv` is absent).
 */
export async function buildServerProgram(io?: Partial<CliIo>, argv?: readonly string[]): Promise<Command> {
  const program = createProgram({
    name: 'mayfly-server',
    description: 'Mayfly server: a SPIFFE certificate authority and registration API',
    version: '0.1.0',
    spireFlags: SERVER_SPIRE_FLAGS,
    ...(io ? { io } : {}),
  });
  const first = argv?.[0];
  const named = first === undefined ? undefined : SERVER_COMMAND_GROUPS.find((g) => g.commands.includes(first));
  const groups = named === undefined ? SERVER_COMMAND_GROUPS : [named];
  const adders = await Promise.all(groups.map((g) => g.load()));
  for (const add of adders) add(program);
  return program;
}
