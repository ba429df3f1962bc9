/**
 * @module test/interop/spire/peers
 *
 * SPIRE v1.13.3's own binaries as peers of a Mayfly server in the issue-14 interop tests:
 * `spire-server` as a CLI pointed at any admin socket (Mayfly's or SPIRE's), a real
 * `spire-server run` (sqlite, disk key manager) for side-by-side comparisons, and a real
 * `spire-agent run` against any server's TCP port. Nothing here is faked; the binaries are
 * the ones `test/interop/spire/build.sh` builds from the Go module proxy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runProcess, type ProcessResult } from '../harness.js';
import { spireBinary } from './bin.js';

/** `spire-server <args> -socketPath <socketPath>` to completion. */
export function spireServerCli(socketPath: string, args: readonly string[], input?: string): Promise<ProcessResult> {
  return runProcess(spireBinary('spire-server'), [...args, '-socketPath', socketPath], input === undefined ? {} : { input });
}

/** `spire-agent <args>` to completion (e.g. `api fetch x509 -socketPath …`). */
export function spireAgentCli(args: readonly string[], input?: string): Promise<ProcessResult> {
  return runProcess(spireBinary('spire-agent'), args, input === undefined ? {} : { input });
}

/** A free loopback TCP port (bound and released; a peer binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A long-running SPIRE process with its stderr lines kept for failure messages. */
export interface SpireProcess {
  readonly child: ChildProcess;
  readonly logs: string[];
  stop(): Promise<void>;
}

function launch(bin: string, args: readonly string[]): SpireProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s as NodeJS.ReadableStream }).on('line', (l) => logs.push(l));
  return {
    child,
    logs,
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** Polls `ok` every 100 ms up to `ms`; throws naming `what` with the process logs. */
export async function waitFor(what: string, ok: () => Promise<boolean>, logs: readonly string[] = [], ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up in ${ms} ms:\n${logs.slice(-40).join('\n')}`);
}

export interface SpireServerOptions {
  /** Scratch directory (the caller creates and removes it). */
  dir: string;
  trustDomain: string;
  /** Extra HCL inside `plugins { … }` (join_token is always there). */
  plugins?: string;
  /** Extra HCL inside `server { … }`. */
  server?: string;
}

export interface SpireServer extends SpireProcess {
  readonly socketPath: string;
  readonly port: number;
  cli(args: readonly string[], input?: string): Promise<ProcessResult>;
}

/** `spire-server run` with sqlite and the disk key manager, up once `healthcheck` passes. */
export async function startSpireServer(o: SpireServerOptions): Promise<SpireServer> {
  const base = join(o.dir, 'spire-server');
  mkdirSync(join(base, 'data'), { recursive: true });
  const socketPath = join(base, 'api.sock');
  const port = await freePort();
  const conf = join(base, 'server.conf');
  writeFileSync(
    conf,
    `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${socketPath}"
  trust_domain = "${o.trustDomain}"
  data_dir = "${join(base, 'data')}"
  log_level = "WARN"
  ${o.server ?? ''}
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "${join(base, 'data', 'datastore.sqlite3')}" } }
  KeyManager "disk" { plugin_data { keys_path = "${join(base, 'data', 'keys.json')}" } }
  NodeAttestor "join_token" { plugin_data {} }
  ${o.plugins ?? ''}
}
`,
  );
  const p = launch(spireBinary('spire-server'), ['run', '-config', conf]);
  const cli = (args: readonly string[], input?: string): Promise<ProcessResult> => spireServerCli(socketPath, args, input);
  try {
    await waitFor('spire-server', async () => (await cli(['healthcheck'])).code === 0, p.logs);
  } catch (err) {
    await p.stop();
    throw err;
  }
  return { ...p, socketPath, port, cli };
}

export interface SpireAgentOptions {
  /** Scratch directory (the caller creates and removes it). */
  dir: string;
  trustDomain: string;
  /** The server's TCP port on 127.0.0.1 (Mayfly's or SPIRE's). */
  serverPort: number;
  /** PEM of the trust bundle the agent bootstraps with (`bundle show` of that server). */
  trustBundlePem: string;
  /** The node attestor block, e.g. `NodeAttestor "join_token" { plugin_data {} }`. */
  nodeAttestor: string;
  /** `-joinToken` for join_token attestation. */
  joinToken?: string;
  /** Extra HCL inside `agent { … }`. */
  agent?: string;
  /** Name of this agent's subdirectory (default `spire-agent`), for several agents in one dir. */
  name?: string;
}

export interface SpireAgent extends SpireProcess {
  /** The agent's Workload API socket. */
  readonly socketPath: string;
  /** `spire-agent healthcheck` passes (attested, serving). */
  healthy(): Promise<boolean>;
}

/** `spire-agent run` with the unix workload attestor, up once `healthcheck` passes. */
export async function startSpireAgent(o: SpireAgentOptions): Promise<SpireAgent> {
  const base = join(o.dir, o.name ?? 'spire-agent');
  mkdirSync(join(base, 'data'), { recursive: true });
  const socketPath = join(base, 'public', 'api.sock');
  const bundle = join(base, 'bootstrap.pem');
  writeFileSync(bundle, o.trustBundlePem);
  const conf = join(base, 'agent.conf');
  writeFileSync(
    conf,
    `agent {
  data_dir = "${join(base, 'data')}"
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "${o.serverPort}"
  socket_path = "${socketPath}"
  trust_bundle_path = "${bundle}"
  trust_domain = "${o.trustDomain}"
  ${o.agent ?? ''}
}
plugins {
  ${o.nodeAttestor}
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`,
  );
  const args = ['run', '-config', conf, ...(o.joinToken !== undefined ? ['-joinToken', o.joinToken] : [])];
  const p = launch(spireBinary('spire-agent'), args);
  const healthy = async (): Promise<boolean> => (await spireAgentCli(['healthcheck', '-socketPath', socketPath])).code === 0;
  try {
    await waitFor('spire-agent', healthy, p.logs);
  } catch (err) {
    await p.stop();
    throw err;
  }
  return { ...p, socketPath, healthy };
}
