/**
 * @module server/runner
 *
 * Assembles a whole server process from `ServerSettings` (server/config), the server's one
 * composition root: the datastore, key manager, upstream authority (if any) and node
 * attestors, each built by its catalog registration (server/catalog) from
 * `settings.plugins`; the CA with its journal; the server API (`MayflyServer`, which is
 * given every part and builds none) with RPC metrics; and the
 * HTTP listeners for metrics and health; the bundle endpoint and OIDC discovery
 * (server/publishers) when configured. `mayfly-server run` is this plus signal handling; tests and the demo can run it
 * in-process.
 *
 * `stop()` drains in order: readiness goes false first (load balancers stop sending), the
 * API stops accepting and lets calls in flight finish, then the CA stops and the datastore
 * closes (releasing its lock so the next process can open it), then the HTTP listeners.
 */
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ApiServerClientConfig, KubernetesApi } from '../attestors/node/k8s_psat/apiserver.js';
import type { ListenerLimits } from '../federation/bundle-endpoint-http.js';
import { FileJournalStore } from '../ca/journal-store.js';
import { ServerCa, type ServerCaConfig } from '../ca/server-ca.js';
import { pluginsOfKind } from '../config/plugins.js';
import { ensurePrivateDir } from '../securefs/index.js';
import type { RunnableDatastore } from './catalog.js';
import type { ServerSettings } from './config.js';
import type { ApiLimits } from './context.js';
import { HttpEndpoints, type Readiness } from '../observability/http-endpoints.js';
import { pinoLevelControl } from '../observability/logger.js';
import { ServerMetrics } from './observability.js';
import { ensureAdminSocketDir } from './admin-socket-dir.js';
import type { Notifier } from './notifier/notifier.js';
import { MayflyServer } from './server.js';
import { startServerAudit, type ServerAudit } from './audit-ledger.js';
import { EntryUsageRecorder } from './usage-recorder.js';
import { loadBundleOwnerId } from './trust-bundle.js';
import { SpiffeId } from '../spiffe/id.js';
import { startDelegationService, type DelegationService } from './delegation-service.js';
import { startPublishers, type Publishers } from './publishers.js';
import { BundlePoller, type BundlePollerConfig } from '../federation/poller.js';
import { applyStaticRelationships } from './static-relationships.js';
import { startConsole, type ConsoleService } from './console/listener.js';
import { hasAdminEntry } from './auth.js';
import { certificationFindings, inventoryFromStore } from './inventory.js';

export interface ServerRunnerConfig {
  settings: ServerSettings;
  logger: Logger;
  now?: () => Date;
  /** Grace period for calls in flight at stop (ms, default 5000). */
  drainMs?: number;
  /** How k8s_psat reaches each cluster's API server (default: the pod's in-cluster configuration); tests point it at a fake. */
  kubernetesApi?: (cluster: string) => KubernetesApi;
  /** Limits of the bundle endpoint and OIDC discovery listeners (default federation/bundle-endpoint-http's). */
  publisherLimits?: Partial<ListenerLimits>;
  /**
   * Tuning of the peer bundle fetcher (federation/poller: interval bounds, backoff,
   * timeouts, extra Web PKI roots); its defaults otherwise. Tests shorten the bounds.
   */
  federationFetcher?: Partial<Omit<BundlePollerConfig, 'store' | 'ownTrustDomain' | 'logger' | 'metrics' | 'onBundleStored' | 'now'>>;
  /** Where `Notifier "k8sbundle"` finds the API server (default: the pod's in-cluster configuration); tests point it at a stand-in. */
  kubernetesApiServer?: () => Promise<ApiServerClientConfig>;
}

/** The one configured plugin of a `one` kind the server cannot run without. */
function required<T>(list: readonly T[], kind: string): T {
  const [first] = list;
  if (first === undefined) throw new TypeError(`settings.plugins has no ${kind}`);
  return first;
}

export class ServerRunner {
  readonly #cfg: ServerRunnerConfig;
  readonly #log: Logger;
  #ds: RunnableDatastore | undefined;
  #ca: ServerCa | undefined;
  #server: MayflyServer | undefined;
  #metrics: ServerMetrics | undefined;
  #audit: ServerAudit | undefined;
  #usage: EntryUsageRecorder | undefined;
  #fetcher: BundlePoller | undefined;
  readonly #notifiers: Notifier[] = [];
  readonly #http: HttpEndpoints[] = [];
  #publishers: Publishers | undefined;
  #delegation: DelegationService | undefined;
  #console: ConsoleService | undefined;
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

  /** Ports of the bundle endpoint and the OIDC discovery listener, when they run. */
  get publisherPorts(): { bundleEndpoint?: number; oidcDiscovery?: number } {
    return this.#publishers?.ports ?? {};
  }

  /** Port of the token exchange listener (server.delegation), when it runs. */
  get delegationPort(): number | undefined {
    return this.#delegation?.port;
  }

  /** Port of the web console (server.console), when it runs. */
  get consolePort(): number | undefined {
    return this.#console?.port;
  }

  async start(): Promise<void> {
    const s = this.#cfg.settings;
    const now = this.#cfg.now;
    for (const n of s.notices) this.#log.warn({}, n);
    try {
      // Nothing is opened or created before the admin socket's directory is known to be safe.
      ensureAdminSocketDir(s.socketPath);
      // The data directory (keys, journal, LevelDB) is 0700 before anything opens in it.
      ensurePrivateDir(s.dataDir, { onTightened: (msg) => this.#log.warn({ dir: s.dataDir }, msg) });
      // Every plugin comes from the catalog (server/catalog), configured by settings.plugins.
      const plugins = s.plugins;
      const warn = (fields: Record<string, unknown>, msg: string): void => this.#log.warn(fields, msg);
      const at = now ? { now } : {};
      // Metrics first: the datastore's calls are timed from its first one (server/timed-datastore).
      const metrics = new ServerMetrics(at);
      this.#metrics = metrics;
      const ds: RunnableDatastore = metrics.timedDatastore(await required(pluginsOfKind(plugins, 'DataStore'), 'DataStore').build({ warn, ...at }));
      this.#ds = ds;
      // Static relationships (server.conf federates_with) are in the datastore before anything reads it.
      await applyStaticRelationships(ds, s.federatesWith ?? [], this.#log);
      const keyManager = required(pluginsOfKind(plugins, 'KeyManager'), 'KeyManager').build({ warn });
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
      if (s.jwtIssuer !== undefined) caCfg.jwtIssuer = s.jwtIssuer;
      if (s.bundleEndpoint?.refreshHintSeconds !== undefined) caCfg.bundleRefreshHintSeconds = s.bundleEndpoint.refreshHintSeconds;
      const [upstream] = pluginsOfKind(plugins, 'UpstreamAuthority');
      if (upstream !== undefined) caCfg.upstream = upstream.build(at);
      const ca = new ServerCa(caCfg);
      await ca.init();
      ca.start();
      this.#ca = ca;

      metrics.countStored(ds, ca.trustDomain.name);
      metrics.countInventory(ds, ca.trustDomain.idWithPath('/spire/server').toString());
      metrics.watchCa(ca);
      // The peer bundle fetcher: every stored peer bundle change is announced on the server's
      // change hub, so agents whose entries federate with that trust domain get it by push.
      let announce: (td: string) => void = () => undefined;
      const fetcher = new BundlePoller({
        ...this.#cfg.federationFetcher,
        store: ds,
        ownTrustDomain: ca.trustDomain.name,
        logger: this.#log,
        metrics: metrics.fetcherMetrics(),
        onBundleStored: (td) => announce(td),
        ...(now ? { now } : {}),
      });
      this.#fetcher = fetcher;
      const limits: Partial<ApiLimits> = {};
      if (s.defaultX509SvidTtl !== undefined) limits.defaultX509SvidTtl = s.defaultX509SvidTtl;
      if (s.defaultJwtSvidTtl !== undefined) limits.defaultJwtSvidTtl = s.defaultJwtSvidTtl;
      if (s.agentTtl !== undefined) limits.agentSvidTtl = s.agentTtl;
      if (s.requireOwner === true) limits.requireOwner = true;
      if (s.audit.enabled) {
        this.#audit = await startServerAudit({
          datastore: ds,
          ca,
          serverId: SpiffeId.parse(`spiffe://${ca.trustDomain.name}/spire/server`),
          instanceId: loadBundleOwnerId(s.dataDir),
          settings: s.audit,
          logger: this.#log,
          ...(now ? { now } : {}),
        });
      }
      // Entry usage (issue 11): recorded in batches off the issuance path, flushed at stop.
      this.#usage = new EntryUsageRecorder({ store: ds, logger: this.#log, ...(now ? { now } : {}) });
      this.#usage.start();
      const server = new MayflyServer({
        trustDomain: s.trustDomain,
        dataDir: s.dataDir,
        adminSocketPath: s.socketPath,
        bindAddress: s.bindAddress,
        port: s.bindPort,
        datastore: ds,
        ca: metrics.countingCa(ca),
        logger: this.#log,
        attestors: pluginsOfKind(plugins, 'NodeAttestor').map((a) =>
          metrics.countingAttestor(a.build({
            joinTokens: ds,
            serverX509Authorities: async () => ca.getBundle().x509Authorities,
            ...(this.#cfg.kubernetesApi ? { kubernetesApi: this.#cfg.kubernetesApi } : {}),
          })),
        ),
        limits,
        interceptors: [metrics.interceptor()],
        ...(this.#audit !== undefined ? { audit: this.#audit.ledger } : {}),
        usage: this.#usage,
        ...(s.registrars !== undefined ? { registrars: s.registrars } : {}),
        ...(s.certification !== undefined ? { certification: s.certification } : {}),
        federation: fetcher,
        logLevel: pinoLevelControl(this.#log),
        ...(now ? { now } : {}),
        ...(this.#cfg.drainMs !== undefined ? { drainMs: this.#cfg.drainMs } : {}),
      });
      this.#server = server;
      // Servers sharing a PostgreSQL datastore hear of each other's writes through it, so
      // their authorised-entry caches and streams do not serve what another server changed.
      ds.watch?.((change) => server.hub.publish(change));
      announce = () => server.hub.publish({ kind: 'bundles' });
      await server.start();
      metrics.watchCertification(server.certification);
      // The bundle endpoint and OIDC discovery, when configured (server/publishers).
      this.#publishers = await startPublishers({ settings: s, server, ca, logger: this.#log, ...(this.#cfg.publisherLimits ? { limits: this.#cfg.publisherLimits } : {}) });
      // The RFC 8693 token exchange, when configured (server/delegation-service).
      if (s.delegation !== undefined && server.trustBundle !== undefined) {
        this.#delegation = await startDelegationService({
          settings: s.delegation,
          issuer: s.jwtIssuer ?? `spiffe://${s.trustDomain}`,
          trustDomain: s.trustDomain,
          serverId: server.serverId,
          ca,
          trustBundle: server.trustBundle,
          logger: this.#log,
        });
      }
      // The read-only web console, when configured (server/console).
      if (s.console !== undefined && server.trustBundle !== undefined) {
        const clock = now ?? (() => new Date());
        const serverId = server.serverId.toString();
        this.#console = await startConsole({
          settings: s.console,
          source: {
            store: ds,
            ca,
            auditEnabled: s.audit.enabled,
            inventory: () => {
              const at = Math.floor(clock().getTime() / 1000);
              return inventoryFromStore(ds, serverId, at, 30, certificationFindings(server.certification, at));
            },
            now: clock,
          },
          admins: { isAdmin: (id, at) => hasAdminEntry(ds, id, at), isScoped: (id) => s.registrars?.has(id.toString()) === true },
          trustBundle: server.trustBundle,
          ca,
          serverId: server.serverId,
          logger: this.#log,
          ...(now ? { now } : {}),
        });
      }
      await fetcher.start();
      // Notifiers (k8sbundle) hear of the served bundle at start and on every change (`ca` on the hub).
      for (const n of pluginsOfKind(plugins, 'Notifier')) {
        const notifier = n.build({ logger: this.#log, ...(this.#cfg.kubernetesApiServer ? { kubernetesApiServer: this.#cfg.kubernetesApiServer } : {}) });
        this.#notifiers.push(notifier);
        const onChange = (l: () => void): (() => void) =>
          server.hub.subscribe((t) => {
            if (t.kind === 'ca') l();
          });
        await notifier.start({ bundle: () => server.servedBundle(), onChange });
      }

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
    // Public listeners drain first: they read the bundle the server keeps.
    const publishers = this.#publishers;
    this.#publishers = undefined;
    await publishers?.stop();
    const delegation = this.#delegation;
    this.#delegation = undefined;
    await delegation?.stop();
    const consoleService = this.#console;
    this.#console = undefined;
    await consoleService?.stop();
    const server = this.#server;
    this.#server = undefined;
    for (const n of this.#notifiers.splice(0)) await n.stop();
    if (server !== undefined) await server.stop();
    await this.#usage?.close().catch((err: unknown) => this.#log.error({ err }, 'entry usage flush at stop failed'));
    this.#usage = undefined;
    // After the API: calls in flight finish with their records written; before the CA and datastore close.
    await this.#audit?.stop().catch((err: unknown) => this.#log.error({ err }, 'audit ledger stop failed'));
    this.#audit = undefined;
    const fetcher = this.#fetcher;
    this.#fetcher = undefined;
    await fetcher?.stop();
    this.#ca?.stop();
    this.#ca = undefined;
    const ds = this.#ds;
    this.#ds = undefined;
    if (ds !== undefined) await ds.close();
    for (const h of this.#http.splice(0)) await h.stop();
    this.#listening = false;
  }
}
