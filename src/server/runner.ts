/**
 * @module server/runner
 *
 * Assembles a whole server process from `ServerSettings` (server/config): the datastore
 * (LevelDB, or PostgreSQL when configured), the CA with its key manager and journal (and
 * upstream authority if any), the server API (`MayflyServer`) with RPC metrics, and the
 * HTTP listeners for metrics and health. `mayfly-server run` is this plus signal handling; tests and the demo can run it
 * in-process.
 *
 * `stop()` drains in order: readiness goes false first (load balancers stop sending), the
 * API stops accepting and lets calls in flight finish, then the CA stops and the datastore
 * closes (releasing its lock so the next process can open it), then the HTTP listeners.
 */
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { NodeAttestor } from '../attestors/node/attestor.js';
import { JoinTokenAttestor } from '../attestors/node/join_token/join_token.js';
import type { KubernetesApi } from '../attestors/node/k8s_psat/apiserver.js';
import { K8sPsatAttestor } from '../attestors/node/k8s_psat/k8s_psat.js';
import { DiskKeyManager } from '../ca/disk-key-manager.js';
import { FileJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager, type KeyManager } from '../ca/key-manager.js';
import { ServerCa, type ServerCaConfig } from '../ca/server-ca.js';
import { loadDiskUpstreamAuthority } from '../ca/upstream.js';
import type { Datastore } from '../datastore/datastore.js';
import { openLevelDatastore } from '../datastore/level/level.js';
import { openPostgresDatastore, PostgresDatastore } from '../datastore/postgres/postgres.js';
import { ensurePrivateDir } from '../securefs/index.js';
import type { ServerSettings } from './config.js';
import type { ApiLimits } from './context.js';
import { HttpEndpoints, ServerMetrics, type Readiness } from './observability.js';
import { ensureAdminSocketDir } from './admin-socket-dir.js';
import { MayflyServer } from './server.js';

export interface ServerRunnerConfig {
  settings: ServerSettings;
  logger: Logger;
  now?: () => Date;
  /** Grace period for calls in flight at stop (ms, default 5000). */
  drainMs?: number;
  /** How k8s_psat reaches each cluster's API server (default: the pod's in-cluster configuration); tests point it at a fake. */
  kubernetesApi?: (cluster: string) => KubernetesApi;
}

/** The node attestors `settings` enable, by name (see server/config). */
export function buildNodeAttestors(settings: ServerSettings, datastore: Pick<Datastore, 'consumeJoinToken'>, kubernetesApi?: (cluster: string) => KubernetesApi): NodeAttestor[] {
  const out: NodeAttestor[] = [];
  for (const name of settings.nodeAttestors) {
    if (name === 'join_token') out.push(new JoinTokenAttestor({ datastore }));
    else if (name === 'k8s_psat') {
      const cfg = settings.k8sPsat;
      if (cfg === undefined) throw new TypeError('node attestor k8s_psat is enabled but settings.k8sPsat is missing');
      const clusters = kubernetesApi === undefined ? cfg.clusters : Object.fromEntries(Object.entries(cfg.clusters).map(([n, c]) => [n, { ...c, api: kubernetesApi(n) }]));
      out.push(new K8sPsatAttestor({ clusters }));
    } else throw new TypeError(`unknown node attestor ${JSON.stringify(name)}`);
  }
  return out;
}

export class ServerRunner {
  readonly #cfg: ServerRunnerConfig;
  readonly #log: Logger;
  #ds: Datastore | undefined;
  #ca: ServerCa | undefined;
  #server: MayflyServer | undefined;
  #metrics: ServerMetrics | undefined;
  readonly #http: HttpEndpoints[] = [];
  #listening = false;
  #stopping = false;

  constructor(cfg: ServerRunnerConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.settings === undefined) throw new TypeError('ServerRunner needs { settings, logger }');
    this.#cfg = cfg;
    this.#log = cfg.logger;
  }

  get server(): MayflyServer | undefined {
    return this.#server;
  }

  get metrics(): ServerMetrics | undefined {
    return this.#metrics;
  }

  /** Ports of the HTTP listeners actually bound: [metrics, health] as configured. */
  get httpPorts(): number[] {
    return this.#http.map((h) => h.port);
  }

  async start(): Promise<void> {
    const s = this.#cfg.settings;
    const now = this.#cfg.now;
    for (const n of s.notices) this.#log.warn({}, n);
    try {
      // Nothing is opened or created before the admin socket's directory is known to be safe.
      ensureAdminSocketDir(s.socketPath);
      // The data directory (keys, journal, LevelDB) is 0700 before anything opens in it.
      const tightened = (dir: string) => (msg: string): void => this.#log.warn({ dir }, msg);
      ensurePrivateDir(s.dataDir, { onTightened: tightened(s.dataDir) });
      if (s.keyManager.kind === 'disk' && s.keyManager.dataDir !== s.dataDir) ensurePrivateDir(s.keyManager.dataDir, { onTightened: tightened(s.keyManager.dataDir) });
      // PostgreSQL when configured (servers of one trust domain may share it), else LevelDB in the data directory.
      const ds: Datastore =
        s.postgres !== undefined
          ? await openPostgresDatastore({ connectionString: s.postgres.connectionString, ...(now ? { now } : {}) })
          : await openLevelDatastore({ path: s.datastorePath, warn: tightened(s.datastorePath), ...(now ? { now } : {}) });
      this.#ds = ds;
      const keyManager: KeyManager = s.keyManager.kind === 'memory' ? new MemoryKeyManager() : new DiskKeyManager({ dataDir: s.keyManager.dataDir });
      const caCfg: ServerCaConfig = {
        trustDomain: s.trustDomain,
        keyManager,
        journal: new FileJournalStore({ path: join(s.dataDir, 'ca-journal.json') }),
        logger: this.#log,
      };
      if (now) caCfg.now = now;
      if (s.caTtlSeconds !== undefined) caCfg.caTtlSeconds = s.caTtlSeconds;
      if (s.defaultX509SvidTtl !== undefined) caCfg.x509SvidTtlSeconds = s.defaultX509SvidTtl;
      if (s.defaultJwtSvidTtl !== undefined) caCfg.jwtSvidTtlSeconds = s.defaultJwtSvidTtl;
      if (s.caKeyType !== undefined) caCfg.caKeyType = s.caKeyType;
      if (s.jwtKeyType !== undefined) caCfg.jwtKeyType = s.jwtKeyType;
      if (s.caSubject !== undefined) caCfg.caSubject = s.caSubject;
      if (s.upstream !== undefined) caCfg.upstream = loadDiskUpstreamAuthority(now ? { ...s.upstream, now } : s.upstream);
      const ca = new ServerCa(caCfg);
      await ca.init();
      ca.start();
      this.#ca = ca;

      const metrics = new ServerMetrics({ datastore: ds, trustDomain: ca.trustDomain.name });
      this.#metrics = metrics;
      const limits: Partial<ApiLimits> = {};
      if (s.defaultX509SvidTtl !== undefined) limits.defaultX509SvidTtl = s.defaultX509SvidTtl;
      if (s.defaultJwtSvidTtl !== undefined) limits.defaultJwtSvidTtl = s.defaultJwtSvidTtl;
      if (s.agentTtl !== undefined) limits.agentSvidTtl = s.agentTtl;
      const server = new MayflyServer({
        trustDomain: s.trustDomain,
        dataDir: s.dataDir,
        adminSocketPath: s.socketPath,
        bindAddress: s.bindAddress,
        port: s.bindPort,
        datastore: ds,
        ca: metrics.countingCa(ca),
        logger: this.#log,
        attestors: buildNodeAttestors(s, ds, this.#cfg.kubernetesApi),
        limits,
        interceptors: [metrics.interceptor()],
        ...(now ? { now } : {}),
        ...(this.#cfg.drainMs !== undefined ? { drainMs: this.#cfg.drainMs } : {}),
      });
      this.#server = server;
      // Servers sharing a PostgreSQL datastore hear of each other's writes through it, so
      // their authorised-entry caches and streams do not serve what another server changed.
      if (ds instanceof PostgresDatastore) ds.watch((change) => server.hub.publish(change));
      await server.start();

      const ready = (): Promise<Readiness> => this.readiness();
      const live = (): boolean => this.#ds !== undefined;
      if (s.metrics.enabled) {
        this.#http.push(new HttpEndpoints({ host: s.metrics.host, port: s.metrics.port, metrics, ready, live }));
      }
      if (s.health.enabled) {
        this.#http.push(new HttpEndpoints({ host: s.health.host, port: s.health.port, livePath: s.health.livePath, readyPath: s.health.readyPath, ready, live }));
      }
      for (const h of this.#http) await h.start();
      this.#listening = true;
      this.#log.info(
        {
          trustDomain: s.trustDomain,
          dataDir: resolve(s.dataDir),
          adminSocket: server.adminSocketPath,
          bindAddress: s.bindAddress,
          port: server.port,
          metricsPort: s.metrics.enabled ? this.#http[0]?.port : undefined,
          healthPort: s.health.enabled ? this.#http[this.#http.length - 1]?.port : undefined,
        },
        'mayfly server started',
      );
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  /** Ready = datastore answers, the CA has an active X.509 authority, listeners are up. */
  async readiness(): Promise<Readiness> {
    let datastore = false;
    if (this.#ds !== undefined && !this.#stopping) {
      try {
        await this.#ds.countAgents();
        datastore = true;
      } catch {
        datastore = false;
      }
    }
    let ca: boolean;
    try {
      ca = this.#ca?.authorityState('x509').active !== undefined;
    } catch {
      ca = false;
    }
    const listeners = this.#listening && !this.#stopping;
    return { ready: datastore && ca && listeners, checks: { datastore, ca, listeners } };
  }

  /** Drains and closes everything (see module doc). Idempotent. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) await server.stop();
    this.#ca?.stop();
    this.#ca = undefined;
    const ds = this.#ds;
    this.#ds = undefined;
    if (ds !== undefined) await ds.close();
    for (const h of this.#http.splice(0)) await h.stop();
    this.#listening = false;
  }
}
