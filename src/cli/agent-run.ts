/**
 * @module cli/agent-run
 *
 * `mayfly-agent run` and `mayfly-agent healthcheck`.
 *
 * `run` attests with `-joinToken` (first start), with the configured `NodeAttestor
 * "k8s_psat"` (its projected service-account token), or resumes with the agent SVID kept in
 * the data directory (later starts), then serves the Workload API until SIGTERM/SIGINT,
 * which drains and exits 0. With k8s_psat an expired SVID or an eviction leads to a new
 * attestation; with a join token the agent logs why and exits 1 (join tokens cannot
 * re-attest: the operator must issue a new one).
 */
import type { Command } from 'commander';
import type { MayflyAgent } from '../agent/agent.js';
import { buildAgentPlugins } from '../agent/catalog.js';
import { parseLogLevel, resolveAgentConfig, serverTargetsOf, type AgentOverrides, type AgentSettings } from '../agent/config.js';
import type { WorkloadAttestor } from '../attestors/workload/attestor.js';
import { checkHealthDetail, ServingStatus } from '../workloadapi/health.js';
import { readConfigFile } from './config-env.js';
import { CliUsageError, ioOf } from './flags.js';
import { defaultSocketCandidates, defaultSocketPath, locateDefaultSocket } from '../securefs/index.js';

interface RunFlags {
  config?: string;
  trustDomain?: string;
  dataDir?: string;
  socketPath?: string;
  serverAddress?: string;
  serverPort?: string;
  joinToken?: string;
  trustBundle?: string;
  insecureBootstrap?: boolean;
  logLevel?: string;
  metricsPort?: string;
  expandEnv?: boolean;
}

/** The agent's settings from `-config` (with `-expandEnv`, $VARs from `env`) and the flags; ConfigError/CliUsageError naming the problem. */
export async function settingsFrom(o: RunFlags, env: NodeJS.ProcessEnv = process.env): Promise<AgentSettings> {
  const file = o.config === undefined ? undefined : await readConfigFile(o.config, o.expandEnv ?? false, env);
  const overrides: AgentOverrides = {};
  if (o.trustDomain !== undefined) overrides.trustDomain = o.trustDomain;
  if (o.dataDir !== undefined) overrides.dataDir = o.dataDir;
  if (o.socketPath !== undefined) overrides.socketPath = o.socketPath;
  if (o.serverAddress !== undefined) overrides.serverAddress = o.serverAddress;
  if (o.serverPort !== undefined) {
    if (!/^\d{1,5}$/.test(o.serverPort) || Number(o.serverPort) < 1 || Number(o.serverPort) > 65535) {
      throw new CliUsageError(`-serverPort must be a port number from 1 to 65535; got ${JSON.stringify(o.serverPort)}`);
    }
    overrides.serverPort = Number(o.serverPort);
  }
  if (o.joinToken !== undefined) overrides.joinToken = o.joinToken;
  if (o.trustBundle !== undefined) overrides.trustBundlePath = o.trustBundle;
  if (o.insecureBootstrap) overrides.insecureBootstrap = true;
  if (o.logLevel !== undefined) {
    const level = parseLogLevel(o.logLevel);
    if (level === undefined) throw new CliUsageError(`-logLevel must be DEBUG, INFO, WARN or ERROR; got ${JSON.stringify(o.logLevel)}`);
    overrides.logLevel = level;
  }
  const settings = resolveAgentConfig(file, overrides);
  if (o.metricsPort !== undefined) {
    if (!/^\d{1,5}$/.test(o.metricsPort) || Number(o.metricsPort) > 65535) {
      throw new CliUsageError(`-metricsPort must be a port number from 0 to 65535; got ${JSON.stringify(o.metricsPort)}`);
    }
    settings.metrics = { ...settings.metrics, enabled: true, port: Number(o.metricsPort) };
  }
  return settings;
}

/** The HTTP listeners the settings ask for, as MayflyAgent takes them. */
export function httpListenersOf(s: AgentSettings): NonNullable<ConstructorParameters<typeof MayflyAgent>[0]['http']> {
  return {
    ...(s.metrics.enabled ? { metrics: { host: s.metrics.host, port: s.metrics.port } } : {}),
    ...(s.health.enabled ? { health: { host: s.health.host, port: s.health.port, livePath: s.health.livePath, readyPath: s.health.readyPath } } : {}),
  };
}

/** The workload attestors the settings list, in order, built by the agent's catalog. */
export function buildWorkloadAttestors(s: AgentSettings): WorkloadAttestor[] {
  return buildAgentPlugins(s.plugins, {}).workloadAttestors;
}

export function addAgentRunCommands(program: Command): void {
  program
    .command('run')
    .description('run the agent: attest to the server and serve the SPIFFE Workload API')
    .option('--config <file>', 'configuration file (SPIRE agent.conf keys, HCL or JSON)')
    .option('--trust-domain <name>', 'trust domain (default example.org)')
    .option('--data-dir <dir>', 'data directory for the agent SVID and bundle (default ./.mayfly/agent)')
    .option('--socket-path <path>', `Workload API socket (default ${defaultSocketPath('agent')})`)
    .option('--server-address <host>', 'server address (default 127.0.0.1)')
    .option('--server-port <port>', 'server port (default 8081)')
    .option('--join-token <token>', 'join token for the first attestation')
    .option('--trust-bundle <file>', "PEM file with the server trust domain's roots (bootstrap trust)")
    .option('--insecure-bootstrap', 'trust the server on first use instead of a trust bundle (try-outs only)')
    .option('--log-level <level>', 'DEBUG, INFO, WARN or ERROR')
    .option('--metrics-port <port>', 'serve /metrics, /live and /ready on this port (127.0.0.1 unless telemetry.Prometheus.host says otherwise; default: off, or 9989 with a telemetry { Prometheus {} } block)')
    .option('--expand-env', 'expand $VAR and ${VAR} in the config file')
    .action(async (_o: unknown, cmd: Command) => {
      const s = await settingsFrom(cmd.opts<RunFlags>(), ioOf(cmd).env);
      // Loaded by `run` only, so client commands (`healthcheck`) start without them (issue 18).
      const [{ MayflyAgent }, { createLogger }, { logDestination }] = await Promise.all([
        import('../agent/agent.js'),
        import('../observability/logger.js'),
        import('../observability/log-destination.js'),
      ]);
      const logger = createLogger(s.logLevel, logDestination({ ...(s.logFormat ? { format: s.logFormat } : {}), ...(s.logFile !== undefined ? { file: s.logFile } : {}) }));
      for (const n of s.notices) logger.warn({}, n);
      // Every plugin comes from the agent's catalog (agent/catalog), configured by s.plugins.
      const plugins = buildAgentPlugins(s.plugins, s.joinToken !== undefined ? { joinToken: s.joinToken } : {});
      let fatal: Error | undefined;
      let wake: (() => void) | undefined;
      const servers = serverTargetsOf(s);
      const agent = new MayflyAgent({
        serverAddresses: servers,
        trustDomain: s.trustDomain,
        dataDir: s.dataDir,
        socketPath: s.socketPath,
        ...(plugins.nodeAttestor !== undefined ? { nodeAttestor: plugins.nodeAttestor } : {}),
        ...(s.trustBundlePath !== undefined ? { trustBundlePath: s.trustBundlePath } : {}),
        insecureBootstrap: s.insecureBootstrap,
        workloadAttestors: plugins.workloadAttestors,
        workloadApiLimits: s.workloadApi,
        ...(s.deliveryRecords !== undefined ? { deliveryRecords: s.deliveryRecords } : {}),
        ...(s.tokenExchange !== undefined ? { tokenExchange: s.tokenExchange } : {}),
        http: httpListenersOf(s),
        ...(s.serverUnreachableThresholdSeconds !== undefined ? { serverUnreachableThresholdSeconds: s.serverUnreachableThresholdSeconds } : {}),
        logger,
        onFatal: (err) => {
          fatal = err;
          wake?.();
        },
      });
      await agent.start();
      logger.info({ socketPath: s.socketPath, servers }, 'agent started');
      await new Promise<void>((resolve) => {
        wake = resolve;
        const onSignal = (signal: NodeJS.Signals): void => {
          logger.info({ signal }, 'draining: closing the Workload API and the server stream');
          resolve();
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      await agent.stop();
      logger.flush();
      if (fatal) throw fatal;
      // A stuck connection must not keep a stopped agent alive.
      setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
    });

  program
    .command('healthcheck')
    .description('check the agent\'s health on its Workload API socket (grpc.health.v1.Health/Check, as SPIRE\'s agent serves it); exit 0 when SERVING')
    .option('--socket-path <path>', `Workload API socket (default: the first of ${defaultSocketCandidates('agent').join(', ')} that exists)`)
    .option('--shallow', 'accepted for SPIRE compatibility; the check is always the same')
    .option('--verbose', 'print what was checked')
    .action(async (o: { socketPath?: string; verbose?: boolean }, cmd: Command) => {
      const io = ioOf(cmd);
      const socketPath = o.socketPath ?? locateDefaultSocket('agent').path;
      let result: { status: number; reason?: string };
      try {
        result = await checkHealthDetail(socketPath, 3000);
      } catch (err) {
        throw new Error(`agent is unhealthy: ${(err as Error).message}`, { cause: err });
      }
      if (result.status !== ServingStatus.SERVING) {
        const why = result.reason ?? 'no valid agent SVID, its entries have not arrived, or the server has been unreachable too long';
        throw new Error(`agent is unhealthy: it reports ${result.status === ServingStatus.NOT_SERVING ? `NOT_SERVING: ${why}` : `status ${result.status}`}`);
      }
      io.out(o.verbose ? `Agent is healthy (Workload API at ${socketPath} reports SERVING).\n` : 'Agent is healthy.\n');
    });
}
