/**
 * @module cli/server-logger
 *
 * SPIRE's `spire-server logger get|set|reset`. The Mayfly server has no Logger API yet (its
 * level is fixed at start), so these commands say so in one line, with what to do instead,
 * and exit 1; SPIRE runbooks calling them fail with that message rather than with
 * "unknown command". `set -level` is still checked against SPIRE's level names first.
 */
import { Option, type Command } from 'commander';
import { CliCallError } from './cli-error.js';
import { choiceArg, clientCommand } from './server-common.js';

const LEVELS = ['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

function missing(what: string): CliCallError {
  return new CliCallError(
    'ERR_CLI_FAILED',
    `cannot ${what}: the Mayfly server has no Logger API; set log_level in server.conf (or -logLevel on run) and restart the server`,
  );
}

export function addLoggerCommands(program: Command): void {
  const logger = program.command('logger').description("the server's log level (SPIRE's Logger API; not in Mayfly yet)");
  clientCommand(logger.command('get').description('show the log level')).action(() => {
    throw missing('get the log level');
  });
  clientCommand(logger.command('set').description('change the log level'))
    .addOption(new Option('--level <level>', `one of ${LEVELS.join(', ')}`))
    .action((_o: unknown, cmd: Command) => {
      const level = cmd.opts<{ level?: string }>().level;
      choiceArg(level?.toLowerCase() ?? '', '-level', LEVELS, 'info');
      throw missing(`set the log level to ${level ?? ''}`);
    });
  clientCommand(logger.command('reset').description('reset the log level to the launch level')).action(() => {
    throw missing('reset the log level');
  });
}
