/**
 * @module cli/server-logger
 *
 * SPIRE's `spire-server logger get|set|reset` over the server's Logger API (admin socket):
 * the running server's log level, changed without a restart, and put back to the level it
 * was started with. Output as SPIRE prints it: `Logger Level : debug` / `Launch Level :
 * info`, or with `-output json` the `types.Logger` message (`current_level`,
 * `launch_level` as enum names).
 */
import { Option, type Command } from 'commander';
import { SPIRE_LOG_LEVELS } from '../config/log-level.js';
import { CliUsageError } from './flags.js';
import { emit } from './output.js';
import { choiceArg, clientCommand, withServer, type CommandContext } from './server-common.js';

interface LoggerState {
  current_level: string;
  launch_level: string;
}

function print(ctx: CommandContext, s: LoggerState): void {
  emit(ctx.io, ctx.format, {
    json: { current_level: s.current_level, launch_level: s.launch_level },
    text: `Logger Level : ${s.current_level.toLowerCase()}\nLaunch Level : ${s.launch_level.toLowerCase()}\n\n`,
  });
}

export function addLoggerCommands(program: Command): void {
  const logger = program.command('logger').description("the running server's log level (SPIRE's Logger API)");
  clientCommand(logger.command('get').description('show the log level and the level the server was started with')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => print(ctx, await ctx.call<LoggerState>('Logger', 'GetLogger', {})));
  });
  clientCommand(logger.command('set').description('change the log level of the running server (until it restarts or `logger reset`)'))
    .addOption(new Option('--level <level>', `the new log level, one of ${SPIRE_LOG_LEVELS.join(', ')}`))
    .action(async (_o: unknown, cmd: Command) => {
      const raw = cmd.opts<{ level?: string }>().level;
      if (raw === undefined || raw === '') throw new CliUsageError(`-level is required: one of ${SPIRE_LOG_LEVELS.join(', ')}`);
      const level = choiceArg(raw.toLowerCase(), '-level', SPIRE_LOG_LEVELS, 'info');
      await withServer(cmd, async (ctx) => print(ctx, await ctx.call<LoggerState>('Logger', 'SetLogLevel', { new_level: level.toUpperCase() })));
    });
  clientCommand(logger.command('reset').description('put the log level back to the one the server was started with')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => print(ctx, await ctx.call<LoggerState>('Logger', 'ResetLogLevel', {})));
  });
}
