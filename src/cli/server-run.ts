/**
 * @module cli/server-run
 *
 * `mayfly-server run`, `validate` and `healthcheck`.
 *
 * `run` works with no arguments (see server/config for the defaults), reads `-config FILE`
 * (SPIRE's server.conf keys, HCL or JSON), and lets flags override the file. Logs are JSON
 * lines on stderr. SIGTERM or SIGINT drains (readiness off, no new calls, calls in flight
 * finish, datastore closed) and exits 0; a second signal exits 1 at once.
 */
import type { Command } from 'commander';
import { defaultSocketPath } from '../securefs/index.js';
import { ConfigError, type HclObject } from '../config/hcl.js';
import { pluginsOfKind } from '../config/plugins.js';
import type { ServerOverrides, ServerSettings } from '../server/config.js';
import { readConfigFile } from './config-env.js';
import { CliUsageError, ioOf } from './flags.js';
import { emit, withOutputOption, type OutputFormat } from './output.js';
import { clientCommand, withServer } from './server-common.js';

interface RunFlags {
  config?: string;
  expandEnv?: boolean;
  trustDomain?: string;
  dataDir?: string;
  socketPath?: string;
  bindAddress?: string;
  serverPort?: string;
  logLevel?: string;
  metricsPort?: string;
}


function readConfig(path: string, expand: boolean, env: NodeJS.ProcessEnv): Promise<HclObject> {
  return readConfigFile(path, expand, env);
}

function portFlag(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new CliUsageError(`${flag} must be a port number from 0 to 65535; got ${JSON.stringify(v)}`);
  return Number(v);
}

async function settingsFrom(o: RunFlags, env: NodeJS.ProcessEnv): Promise<ServerSettings> {
  const file = o.config === undefined ? undefined : await readConfig(o.config, o.expandEnv ?? false, env);
  const overrides: ServerOverrides = {};
  if (o.trustDomain !== undefined) overrides.trustDomain = o.trustDomain;
  if (o.dataDir !== undefined) overrides.dataDir = o.dataDir;
  if (o.socketPath !== undefined) overrides.socketPath = o.socketPath;
  if (o.bindAddress !== undefined) overrides.bindAddress = o.bindAddress;
  const port = portFlag(o.serverPort, '-serverPort');
  if (port !== undefined) overrides.bindPort = port;
  if (o.logLevel !== undefined) overrides.logLevel = o.logLevel;
  // Loaded here, not at start-up: the config loader pulls in every plugin (issue 18: a
  // client command such as `healthcheck` should not pay for the server's modules).
  const { resolveServerConfig } = await import('../server/config.js');
  const settings = resolveServerConfig(file, overrides);
  const metricsPort = portFlag(o.metricsPort, '-metricsPort');
  if (metricsPort !== undefined) settings.metrics = { ...settings.metrics, enabled: true, port: metricsPort };
  return settings;
}

function friendlyStartError(err: unknown, s: ServerSettings): Error {
  const msg = err instanceof Error ? err.message : String(err);
  if (/No address added/i.test(msg)) return new Error(`cannot listen on ${s.bindAddress}:${s.bindPort}: the address is in use or not available (set bind_port / -serverPort)`);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') return new Error(`cannot start the metrics/health listener: ${msg}`);
  return err instanceof Error ? err : new Error(msg);
}

function runOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', "configuration file (SPIRE server.conf keys, HCL or JSON)")
    .option('--expand-env', 'expand $VAR and ${VAR} in the config file')
    .option('--trust-domain <name>', 'trust domain (default example.org)')
    .option('--data-dir <dir>', 'data directory (default ./.mayfly/server)')
    .option('--socket-path <path>', `admin socket path (default ${defaultSocketPath('server')})`)
    .option('--bind-address <ip>', 'address of the agent API (default 127.0.0.1)')
    .option('--server-port <port>', 'port of the agent API (default 8081)')
    .option('--log-level <level>', 'DEBUG, INFO, WARN or ERROR')
    .option('--metrics-port <port>', 'port of the /metrics, /live and /ready listener (default 9988)');
}

export function addRunCommands(program: Command): void {
  runOptions(program.command('run').description('run the server')).action(async (_o: unknown, cmd: Command) => {
    const io = ioOf(cmd);
    const settings = await settingsFrom(cmd.opts<RunFlags>(), io.env);
    const [{ createLogger }, { logDestination }, { ServerRunner }] = await Promise.all([
      import('../observability/logger.js'),
      import('../observability/log-destination.js'),
      import('../server/runner.js'),
    ]);
    const logger = createLogger(settings.logLevel, logDestination({ ...(settings.logFormat ? { format: settings.logFormat } : {}), ...(settings.logFile !== undefined ? { file: settings.logFile } : {}) }));
    const runner = new ServerRunner({ settings, logger });
    try {
      await runner.start();
    } catch (err) {
      logger.flush();
      throw friendlyStartError(err, settings);
    }
    await new Promise<void>((done) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (stopping) {
          logger.warn({ signal }, 'second signal: exiting without draining');
          process.exit(1);
        }
        stopping = true;
        logger.info({ signal }, 'draining: no new calls, waiting for calls in flight');
        runner
          .stop()
          .then(() => logger.info({}, 'server stopped'))
          .catch((err: unknown) => {
            logger.error({ err }, 'error while stopping');
            process.exitCode = 1;
          })
          .finally(() => {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            // Anything still holding the event loop (a stuck client connection) gets a short grace.
            setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
            done();
          });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  });

  const validate = program.command('validate').description('check a configuration file; exit 1 on any problem');
  withOutputOption(runOptions(validate)).action(async (_o: unknown, cmd: Command) => {
    const o = cmd.opts<RunFlags & { output: OutputFormat }>();
    const io = ioOf(cmd);
    if (o.config === undefined) throw new CliUsageError('-config is required');
    const settings = await settingsFrom(o, io.env);
    // The upstream authority's files are read and checked now, as the CA would at start.
    for (const upstream of pluginsOfKind(settings.plugins, 'UpstreamAuthority')) {
      try {
        upstream.build({});
      } catch (err) {
        throw new ConfigError(`invalid configuration: UpstreamAuthority "${upstream.name}": ${(err as Error).message}`);
      }
    }
    // Valid, but perhaps not what was meant (sqlite3 is LevelDB, an ignored key): said on stderr.
    if (o.output !== 'json') for (const n of settings.notices) io.err(`Warning: ${n}\n`);
    emit(io, o.output, { json: { valid: true, notices: settings.notices }, text: 'Configuration is valid.' });
  });

  clientCommand(program.command('healthcheck').description("check the server's health over the admin socket"))
    .option('--shallow', 'only check that the server answers')
    .option('--verbose', 'say what is being checked')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ shallow?: boolean; verbose?: boolean }>();
      await withServer(cmd, async (ctx) => {
        if (o.verbose && ctx.format === 'pretty') ctx.io.out('Checking server health...\n');
        // grpc.health.v1, as `spire-server healthcheck` asks; the server answers with Mayfly's verdict.
        const h = await import('../wire/spire/health.js');
        const res = await ctx.unary<{ status: number }>(
          { path: `/${h.GRPC_HEALTH_SERVICE}/Check`, requestSerialize: (r) => h.encodeHealthCheckRequest(r as { service: string }), responseDeserialize: h.decodeHealthCheckResponse },
          { service: '' },
        );
        const status = Object.entries(h.HealthServingStatus).find(([, n]) => n === res.status)?.[0] ?? String(res.status);
        const healthy = status === 'SERVING' || o.shallow === true;
        if (!healthy) throw new Error(`Server is unhealthy: status ${status}`);
        emit(ctx.io, ctx.format, { json: { healthy: true, status }, text: o.shallow ? 'Server is live.' : 'Server is healthy.' });
      });
    });
}
