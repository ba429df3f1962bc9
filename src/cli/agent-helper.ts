/**
 * @module cli/agent-helper
 *
 * `mayfly-agent helper -config helper.conf [-daemon-mode=false]`: spiffe-helper built in.
 * Reads spiffe-helper's `helper.conf` (docs/helper.md), writes the SVID, key, bundles,
 * CRLs and JWT-SVIDs into `cert_dir` on every rotation and reloads the process that uses
 * them (cli/helper-run, cli/helper-reload). Daemon mode runs until SIGINT/SIGTERM;
 * one-shot mode (`daemon_mode = false`, for init containers) exits 0 once everything is
 * written, 5 when no SVID arrives within `timeout`, 1 when the files cannot be written.
 */
import type { Command } from 'commander';
import { CliUsageError, ioOf, type CliIo } from './flags.js';
import { loadHelperConfig } from './helper-config.js';
import type { HelperLog } from './helper-reload.js';
import { SpiffeHelper } from './helper-run.js';

/** `time level message` lines on the program's stderr. */
export function helperLogger(io: CliIo): HelperLog {
  return (level, message) => io.err(`${new Date().toISOString()} ${level.toUpperCase()} helper: ${message}\n`);
}

function waitForStop(io: CliIo): Promise<void> {
  return new Promise<void>((resolve) => {
    if (io.signal) {
      if (io.signal.aborted) return resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function addAgentHelperCommand(program: Command): void {
  program
    .command('helper')
    .description("keep SVID, key, bundle and JWT files current in a directory and reload a process (spiffe-helper's helper.conf)")
    .option('--config <file>', 'helper configuration file (spiffe-helper keys, HCL or JSON)', 'helper.conf')
    .option('--daemon-mode <bool>', 'override daemon_mode: false writes once and exits')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ config: string; daemonMode?: string }>();
      const io = ioOf(cmd);
      const config = await loadHelperConfig(o.config);
      if (o.daemonMode !== undefined) {
        if (o.daemonMode !== 'true' && o.daemonMode !== 'false') throw new CliUsageError('-daemon-mode must be true or false');
        config.daemonMode = o.daemonMode === 'true';
      }
      const helper = new SpiffeHelper({ config, log: helperLogger(io), env: io.env });
      if (!config.daemonMode) {
        await helper.runOnce();
        return;
      }
      const stopped = waitForStop(io);
      await helper.start();
      await stopped;
      await helper.stop();
    });
}
