/**
 * @module cli/helper-run
 *
 * The engine of `mayfly-agent helper`: a workload of the Workload API (it uses the SDK's
 * X509Source and JwtSource, never the agent's internals) that keeps `cert_dir` current and
 * tells a process to reload (cli/helper-reload).
 *
 * Daemon mode: every X.509 update (rotation, new bundle, federated bundle, CRL) and every
 * JWT bundle update rewrites the files, then reloads; JWT-SVIDs are fetched again at half
 * their lifetime. A failed write is logged and retried with backoff, the good files stay.
 * The sources reconnect on their own when the agent goes away or is not there yet.
 * One-shot mode: waits (up to `timeout`) until everything configured has arrived, writes it
 * once and resolves; a missing agent, an unregistered workload or a failed write rejects.
 *
 * Threat: a process serving stale or mismatched credentials. Files are replaced atomically
 * (cli/helper-files) and the reload comes only after a whole pass succeeded.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BundleSet } from '../spiffe/bundle/index.js';
import { backoffDelay, type BackoffConfig } from '../sdk/client.js';
import type { JwtSvid, X509Context } from '../sdk/model.js';
import { JwtSource, X509Source } from '../sdk/sources.js';
import type { WorkloadApiClientConfig } from '../sdk/client.js';
import { resolveEndpoint } from '../sdk/endpoint.js';
import { CliCallError } from './cli-error.js';
import type { HelperConfig } from './helper-config.js';
import { atomicFileWriter, pickSvid, stateComplete, writeHelperFiles, type FileWriter, type HelperState } from './helper-files.js';
import { Reloader, type HelperLog } from './helper-reload.js';

/** setTimeout's limit (a longer delay fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SpiffeHelperConfig {
  config: HelperConfig;
  log: HelperLog;
  /** Where the Workload API is when `agent_address` is not set (SPIFFE_ENDPOINT_SOCKET). */
  env?: NodeJS.ProcessEnv;
  /** The file-writer seam (default: securefs writeFileAtomic). */
  writer?: FileWriter;
  /** Backoff of the Workload API watches and of write/reload retries (default 1 s × attempt, up to 30 s). */
  backoff?: BackoffConfig;
  now?: () => Date;
}

export class SpiffeHelper {
  readonly #cfg: HelperConfig;
  readonly #log: HelperLog;
  readonly #writer: FileWriter;
  readonly #backoff: BackoffConfig;
  readonly #now: () => Date;
  readonly #endpoint: WorkloadApiClientConfig;
  readonly reloader: Reloader;
  #x509: X509Source | undefined;
  #jwt: JwtSource | undefined;
  #state: HelperState = { jwtSvids: new Map() };
  readonly #jwtSvids = new Map<string, JwtSvid>();
  #jwtTimer: NodeJS.Timeout | undefined;
  #writeRetry: NodeJS.Timeout | undefined;
  #writeAttempt = 0;
  #health: Server | undefined;
  /** What the last complete pass wrote, by file name. */
  readonly #lastGood = new Map<string, string>();
  #stopped = false;
  #onWritten: (() => void) | undefined;
  /** Passes that wrote every file. */
  writes = 0;
  lastWriteError: Error | undefined;

  constructor(c: SpiffeHelperConfig) {
    this.#cfg = c.config;
    this.#log = c.log;
    this.#writer = c.writer ?? atomicFileWriter;
    this.#backoff = c.backoff ?? {};
    this.#now = c.now ?? (() => new Date());
    const addr = c.config.agentAddress;
    this.#endpoint = {
      ...(addr === undefined ? {} : addr.includes('://') ? { address: addr } : { socketPath: addr }),
      ...(c.env ? { env: c.env } : {}),
      backoff: this.#backoff,
    };
    this.reloader = new Reloader({ config: c.config, log: c.log, backoffMs: (n) => backoffDelay(n, this.#backoff) });
  }

  get #wantsJwt(): boolean {
    return this.#cfg.jwtBundleFileName !== undefined || this.#cfg.jwtSvids.length > 0;
  }

  get #wantsX509(): boolean {
    return this.#cfg.svidFileName !== undefined || this.#cfg.svidBundleFileName !== undefined || this.#cfg.jwtSvids.length > 0;
  }

  /** True once every configured file was written at least once. */
  get ready(): boolean {
    return this.writes > 0;
  }

  /** The health listener's port (after `start()` with `health_checks.listener_enabled`). */
  get healthPort(): number | undefined {
    return (this.#health?.address() as AddressInfo | null)?.port;
  }

  #openSources(): void {
    if (this.#wantsX509) {
      this.#x509 = new X509Source(this.#endpoint);
      this.#x509.on('update', (ctx: X509Context) => this.#onX509(ctx));
      this.#x509.on('error', (err: Error, willRetry: boolean) => this.#log(willRetry ? 'warn' : 'error', `X.509 watch: ${err.message}${willRetry ? '; retrying' : ''}`));
    }
    if (this.#wantsJwt) {
      this.#jwt = new JwtSource(this.#endpoint);
      this.#jwt.on('update', (set: BundleSet) => {
        this.#state = { ...this.#state, jwtBundles: set };
        this.#changed();
      });
      this.#jwt.on('error', (err: Error, willRetry: boolean) => this.#log(willRetry ? 'warn' : 'error', `JWT bundle watch: ${err.message}${willRetry ? '; retrying' : ''}`));
    }
  }

  #onX509(ctx: X509Context): void {
    const svid = pickSvid(ctx, this.#cfg.hint);
    if (svid === undefined) {
      this.#log('error', `no X509-SVID with hint ${JSON.stringify(this.#cfg.hint)} among ${ctx.svids.map((s) => s.id.toString()).join(', ')}; nothing written`);
      return;
    }
    const rotated = this.#state.svid !== undefined && !this.#state.svid.id.equals(svid.id);
    this.#state = { ...this.#state, x509: ctx, svid };
    this.#log('info', `X509-SVID ${svid.id} received (expires ${svid.expiresAt.toISOString()})`);
    if (this.#cfg.jwtSvids.length > 0 && (rotated || this.#jwtSvids.size === 0)) void this.#fetchJwtSvids(1);
    this.#changed();
  }

  async #fetchJwtSvids(attempt: number): Promise<void> {
    clearTimeout(this.#jwtTimer);
    const jwt = this.#jwt;
    if (this.#stopped || jwt === undefined) return;
    const spiffeId = this.#state.svid?.id;
    try {
      for (const j of this.#cfg.jwtSvids) {
        this.#jwtSvids.set(j.fileName, await jwt.fetchJwtSvid({ audience: j.audience, ...(spiffeId ? { spiffeId } : {}) }));
      }
    } catch (err) {
      if (this.#stopped) return;
      const delay = backoffDelay(attempt, this.#backoff);
      this.#log('error', `cannot fetch JWT-SVIDs: ${(err as Error).message}; retrying in ${delay} ms`);
      this.#jwtTimer = setTimeout(() => void this.#fetchJwtSvids(attempt + 1), delay);
      return;
    }
    if (this.#stopped) return;
    this.#state = { ...this.#state, jwtSvids: new Map(this.#jwtSvids) };
    // Fetch again at half the shortest remaining lifetime (at least 1 s).
    const now = this.#now().getTime();
    const remaining = Math.min(...[...this.#jwtSvids.values()].map((t) => t.expiry.getTime() - now));
    this.#jwtTimer = setTimeout(() => void this.#fetchJwtSvids(1), Math.min(MAX_TIMER_MS, Math.max(1000, remaining / 2)));
    this.#changed();
  }

  #changed(): void {
    if (this.#stopped || !stateComplete(this.#cfg, this.#state)) return;
    clearTimeout(this.#writeRetry);
    this.#writeAttempt = 0;
    this.#writePass();
  }

  #writePass(): void {
    if (this.#stopped) return;
    try {
      const written = writeHelperFiles(this.#cfg, this.#state, this.#writer, this.#lastGood);
      this.writes++;
      this.lastWriteError = undefined;
      this.#writeAttempt = 0;
      if (written.length === 0) {
        this.#onWritten?.();
        return; // nothing changed: no reload
      }
      this.#log('info', `wrote ${written.join(', ')}`);
    } catch (err) {
      this.lastWriteError = err as Error;
      if (!this.#cfg.daemonMode) {
        this.#onWritten?.();
        return;
      }
      const delay = backoffDelay(++this.#writeAttempt, this.#backoff);
      this.#log('error', `${(err as Error).message}; retrying in ${delay} ms`);
      this.#writeRetry = setTimeout(() => this.#writePass(), delay);
      return;
    }
    if (this.#cfg.daemonMode) this.reloader.notify();
    this.#onWritten?.();
  }

  async #startHealth(): Promise<void> {
    const h = this.#cfg.health;
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      const answer = (ok: boolean, body: Record<string, unknown>): void => {
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
      } else if (path === h.livenessPath) {
        answer(this.lastWriteError === undefined, { healthy: this.lastWriteError === undefined, ...(this.lastWriteError ? { error: this.lastWriteError.message } : {}) });
      } else if (path === h.readinessPath) {
        answer(this.ready, { ready: this.ready, writes: this.writes });
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(h.port, h.bindAddress, () => resolve());
    });
    this.#health = server;
    this.#log('info', `health checks on http://${h.bindAddress}:${this.healthPort}${h.livenessPath} and ${h.readinessPath}`);
  }

  #address(): string {
    try {
      return resolveEndpoint(this.#endpoint).address;
    } catch (err) {
      return `(${(err as Error).message})`;
    }
  }

  /** Daemon mode: opens the watches (and the health listener); returns at once. */
  async start(): Promise<void> {
    if (this.#cfg.health.enabled) await this.#startHealth();
    this.#openSources();
  }

  /** One-shot mode: resolves once every file was written; rejects (CliCallError) on timeout or a failed write. */
  async runOnce(): Promise<void> {
    const done = new Promise<void>((resolve) => (this.#onWritten = resolve));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const what = this.#state.svid === undefined && this.#wantsX509 ? 'X509-SVID' : 'JWT-SVID or JWT bundle';
        const address = this.#address();
        const socket = address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
        if (socket !== undefined && !existsSync(socket)) {
          reject(new CliCallError('ERR_CLI_UNREACHABLE', `no ${what} within ${this.#cfg.timeoutMs} ms: there is no Workload API socket at ${socket}; is the agent running, and is agent_address right?`));
          return;
        }
        reject(new CliCallError('ERR_CLI_UNREACHABLE', `no ${what} from the Workload API at ${this.#address()} within ${this.#cfg.timeoutMs} ms: is the agent running, is agent_address right, and is this workload registered?`));
      }, this.#cfg.timeoutMs);
    });
    this.#openSources();
    try {
      await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
      await this.stop();
    }
    if (this.lastWriteError) throw this.lastWriteError;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#jwtTimer);
    clearTimeout(this.#writeRetry);
    this.#x509?.close();
    this.#jwt?.close();
    await this.reloader.stop();
    const h = this.#health;
    this.#health = undefined;
    if (h) await new Promise<void>((resolve) => h.close(() => resolve()));
  }
}
