/**
 * @module cli/agent-validate
 *
 * `mayfly-agent validate -config agent.conf [-expandEnv]`: reads the configuration as
 * `run` would (every key, plugin and file it names checked) and says whether it is valid,
 * without attesting or serving. What is valid but may not mean what the operator thinks
 * (an ignored key, a SPIRE setting Mayfly reads differently) is a `Warning:` line on
 * stderr. An invalid file is one `Error:` line naming the key and exit code 2.
 */
import type { Command } from 'commander';
import { settingsFrom } from './agent-run.js';
import { CliUsageError, ioOf } from './flags.js';
import { emit, withOutputOption, type OutputFormat } from './output.js';

export function addAgentValidateCommand(program: Command): void {
  withOutputOption(program.command('validate').description('check an agent configuration file; exit 2 on any problem'))
    .option('--config <file>', 'configuration file (SPIRE agent.conf keys, HCL or JSON)')
    .option('--expand-env', 'expand $VAR and ${VAR} in the config file')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ config?: string; expandEnv?: boolean; output: OutputFormat }>();
      const io = ioOf(cmd);
      if (o.config === undefined) throw new CliUsageError('-config is required');
      const settings = await settingsFrom({ config: o.config, ...(o.expandEnv ? { expandEnv: true } : {}) }, io.env);
      if (o.output !== 'json') for (const n of settings.notices) io.err(`Warning: ${n}\n`);
      emit(io, o.output, { json: { valid: true, notices: settings.notices }, text: 'Configuration is valid.' });
    });
}
