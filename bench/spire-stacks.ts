/**
 * @module bench/spire-stacks
 *
 * The two stacks `npm run bench -- spire` compares, driven through the same steps: SPIRE
 * v1.13.3 (`spire-server` + `spire-agent`, sqlite, disk keys, join_token, unix attestor)
 * and Mayfly (`mayfly-server run` + `mayfly-agent run` with their defaults: LevelDB, disk
 * keys, join_token, unix attestor). Each runs its real binaries on loopback in its own
 * directory; only the CLI spellings and config files differ.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, httpOk, mustRun, Proc, REPO, runCmd, until, writeSpireAgentConf, writeSpireServerConf, type SpireLayout } from './spire-procs.js';

export const TRUST_DOMAIN = 'bench.example';
/** The node alias every bench entry of the agent hangs off (made by `token generate -spiffeID`). */
export const NODE_ALIAS = `spiffe://${TRUST_DOMAIN}/bench-node`;

export interface Stack {
  readonly name: 'SPIRE' | 'Mayfly';
  readonly agentSocket: string;
  /** The server's TCP port (where agents connect). */
  readonly serverPort: number;
  /** The server CLI binary and its arguments for `args` (the admin socket added). */
  serverCli(args: readonly string[]): [string, string[]];
  startServer(): Promise<void>;
  /** Until `/ready` answers 200. */
  waitServerReady(timeoutMs?: number): Promise<void>;
  stopServer(): Promise<void>;
  /** Attests with a new join token (alias NODE_ALIAS) and serves the Workload API. */
  startAgent(): Promise<void>;
  stopAgent(): Promise<void>;
  readonly agentPid: number;
  readonly serverPid: number;
  stop(): Promise<void>;
}

abstract class BaseStack implements Stack {
  abstract readonly name: 'SPIRE' | 'Mayfly';
  protected server: Proc | undefined;
  protected agent: Proc | undefined;
  protected readonly l: SpireLayout;

  constructor(layout: SpireLayout) {
    this.l = layout;
    mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
  }

  get agentSocket(): string {
    return this.l.agentSocket;
  }

  get serverPort(): number {
    return this.l.serverPort;
  }

  get agentPid(): number {
    if (this.agent === undefined) throw new Error(`${this.name} agent not started`);
    return this.agent.pid;
  }

  get serverPid(): number {
    if (this.server === undefined) throw new Error(`${this.name} server not started`);
    return this.server.pid;
  }

  abstract serverCli(args: readonly string[]): [string, string[]];
  protected abstract spawnServer(): Proc;
  protected abstract spawnAgent(token: string): Proc;

  async startServer(): Promise<void> {
    this.server = this.spawnServer();
  }

  async waitServerReady(timeoutMs = 120_000): Promise<void> {
    await until(`${this.name} server /ready`, () => httpOk(this.l.healthPort, '/ready'), timeoutMs, this.server, 5);
  }

  async stopServer(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
  }

  protected async cli(args: readonly string[]): Promise<string> {
    const [file, a] = this.serverCli(args);
    return (await mustRun(file, a)).stdout;
  }

  async startAgent(): Promise<void> {
    const out = await this.cli(['token', 'generate', '-spiffeID', NODE_ALIAS, '-output', 'json']);
    const token = (JSON.parse(out) as { value?: string }).value;
    if (typeof token !== 'string' || token === '') throw new Error(`${this.name}: no token in ${out}`);
    writeFileSync(this.l.bundlePath, await this.cli(['bundle', 'show']));
    this.agent = this.spawnAgent(token);
    await until(`${this.name} agent socket`, () => exitsZero(this.agentHealthcheck()), 60_000, this.agent, 50);
  }

  /** A command that exits 0 once the agent serves. */
  protected abstract agentHealthcheck(): [string, string[]];

  async stopAgent(): Promise<void> {
    await this.agent?.stop();
    this.agent = undefined;
  }

  async stop(): Promise<void> {
    await this.stopAgent();
    await this.stopServer();
  }
}

async function exitsZero([file, args]: [string, string[]]): Promise<boolean> {
  return (await runCmd(file, args, 10_000)).code === 0;
}

export class SpireStack extends BaseStack {
  readonly name = 'SPIRE' as const;
  readonly #bin: string;
  readonly #serverConf: string;
  readonly #agentConf: string;

  private constructor(bin: string, layout: SpireLayout) {
    super(layout);
    this.#bin = bin;
    this.#serverConf = writeSpireServerConf(layout);
    this.#agentConf = writeSpireAgentConf(layout);
  }

  static async create(bin: string, dir: string): Promise<SpireStack> {
    return new SpireStack(bin, await layout(dir, 'spire'));
  }

  serverCli(args: readonly string[]): [string, string[]] {
    return [join(this.#bin, 'spire-server'), [...args, '-socketPath', this.l.serverSocket]];
  }

  protected spawnServer(): Proc {
    return new Proc('spire-server', join(this.#bin, 'spire-server'), ['run', '-config', this.#serverConf]);
  }

  protected spawnAgent(token: string): Proc {
    return new Proc('spire-agent', join(this.#bin, 'spire-agent'), ['run', '-config', this.#agentConf, '-joinToken', token]);
  }

  protected agentHealthcheck(): [string, string[]] {
    return [join(this.#bin, 'spire-agent'), ['healthcheck', '-socketPath', this.l.agentSocket]];
  }
}

export class MayflyStack extends BaseStack {
  readonly name = 'Mayfly' as const;

  private constructor(layout: SpireLayout) {
    super(layout);
  }

  static async create(dir: string): Promise<MayflyStack> {
    return new MayflyStack(await layout(dir, 'mayfly'));
  }

  serverCli(args: readonly string[]): [string, string[]] {
    return [process.execPath, [join(REPO, 'bin', 'mayfly-server.js'), ...args, '-socketPath', this.l.serverSocket]];
  }

  protected spawnServer(): Proc {
    return new Proc('mayfly-server', process.execPath, [
      join(REPO, 'bin', 'mayfly-server.js'), 'run', '-trustDomain', TRUST_DOMAIN, '-dataDir', join(this.l.dir, 'server-data'),
      '-socketPath', this.l.serverSocket, '-serverPort', String(this.l.serverPort), '-metricsPort', String(this.l.healthPort), '-logLevel', 'WARN',
    ]);
  }

  protected spawnAgent(token: string): Proc {
    return new Proc('mayfly-agent', process.execPath, [
      join(REPO, 'bin', 'mayfly-agent.js'), 'run', '-trustDomain', TRUST_DOMAIN, '-dataDir', join(this.l.dir, 'agent-data'),
      '-socketPath', this.l.agentSocket, '-serverPort', String(this.l.serverPort), '-trustBundle', this.l.bundlePath, '-joinToken', token, '-logLevel', 'WARN',
    ]);
  }

  protected agentHealthcheck(): [string, string[]] {
    return [process.execPath, [join(REPO, 'bin', 'mayfly-agent.js'), 'healthcheck', '-socketPath', this.l.agentSocket]];
  }
}

async function layout(dir: string, prefix: string): Promise<SpireLayout> {
  const d = join(dir, prefix);
  return {
    dir: d,
    trustDomain: TRUST_DOMAIN,
    serverPort: await freePort(),
    healthPort: await freePort(),
    serverSocket: join(d, 'server', 'api.sock'),
    agentSocket: join(d, 'agent', 'api.sock'),
    bundlePath: join(d, 'bundle.pem'),
  };
}
