/**
 * @module server/server
 *
 * `MayflyServer`: the server API on two endpoints.
 * - The admin Unix socket: every admin RPC, no agent-only RPC. Its file mode (0770 by
 *   default) is the authorisation; server/admin-socket places it so that it is never
 *   reachable with looser permissions nor a live server's taken over, in a directory
 *   checked again at start (whoever composes the server checks it before opening any
 *   state: server/runner, server/testing).
 * - TCP with TLS: the server presents an X509-SVID for `spiffe://<td>/spire/server`
 *   (server/server-svid: minted by the CA, renewed at half its life and on every CA
 *   change); it asks for a client certificate but does not require one (attesting agents
 *   have none yet), and server/auth verifies whatever is presented against the served
 *   bundle: the CA's own, merged with the authorities of every server sharing the
 *   datastore (server/trust-bundle).
 *
 * The server builds none of its parts: the datastore, the CA and the node attestors are
 * given (ServerRunner builds them from the catalog, server/catalog), and the caller closes
 * them after `stop()`.
 *
 * `stop()` drains: authorised-entry streams end with UNAVAILABLE (agents reconnect), calls
 * in flight get a grace period, then the servers are forced down.
 */
import { spireApiServiceDefinition, type SpireApiService } from '../wire/spire/definition.js';
import { spireApiServices } from './spire-api/index.js';
import { Server, type ServerInterceptor, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { NodeAttestor } from '../attestors/node/attestor.js';
import type { LogLevelControl } from '../config/log-level.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { ensurePrivateDir } from '../securefs/index.js';
import { TrustDomain, type SpiffeId } from '../spiffe/id.js';
import { agentService } from './api/agent.js';
import { auditService } from './api/audit.js';
import { deliveryHandlers } from './api/delivery.js';
import { AgentSyncStreams, agentSyncService } from './api/agentsync.js';
import { authorityService } from './api/authority.js';
import { bundleService } from './api/bundle.js';
import { trustDomainService } from './api/trustdomain.js';
import { entryService } from './api/entry.js';
import { healthService } from './api/health.js';
import { inventoryService } from './api/inventory.js';
import { loggerService } from './api/logger.js';
import { svidService } from './api/svid.js';
import type { Transport } from './auth.js';
import { DEFAULT_LIMITS, type ApiContext, type ApiLimits } from './context.js';
import { AuthorizedEntryCache } from './authorized-cache.js';
import { CsrWorkerPool } from './csr-pool.js';
import { ChangeHub } from './hub.js';
import { loadBundleOwnerId, TrustBundle } from './trust-bundle.js';
import { ensureAdminSocketDir } from './admin-socket-dir.js';
import { AdminSocket, bindServer } from './admin-socket.js';
import { ServerSvid } from './server-svid.js';
import { grpcHealthHandlers, grpcHealthServiceDefinition } from './spire-api/health.js';
import { parsePemCertificates } from '../spiffe/x509/pem.js';
import { CrlPublisher } from './crl-publisher.js';
import type { X509SvidsRevokedEvent } from './api-context.js';
import { SILENT_LOGGER, type AuditRecorder, type FederationControl, type ServerApiCa, type ServerDatastore, type ServerLogger } from './ports.js';
import type { UsageSink } from './usage-recorder.js';
import type { RegistrarScope } from './registrar-scope.js';
import { EntryCertifications, type CertificationSettings } from './certification.js';
import { serverApiServiceDefinition, type ServerApiService } from '../wire/server/proto.js';

export interface MayflyServerConfig {
  trustDomain: string | TrustDomain;
  /**
   * Holds `<dataDir>/bundle-owner-id`: the ID under which this server publishes its CA's
   * authorities into a shared datastore (server/trust-bundle), kept across restarts. Made
   * 0700 at start.
   */
  dataDir: string;
  adminSocketPath: string;
  /** Mode of the admin socket file (default 0o770). */
  adminSocketMode?: number;
  /** e.g. `0.0.0.0` or `127.0.0.1`. */
  bindAddress: string;
  /** 0 picks a free port (see `port` after start). */
  port: number;
  /**
   * The parts the server API runs on, all given: it builds none of them (ServerRunner
   * builds them from the catalog; tests use server/testing). The caller opens them before
   * `start()` and closes them after `stop()`.
   */
  datastore: ServerDatastore;
  ca: ServerApiCa;
  /** Node attestors, one per attestation type (`NodeAttestor.type`). */
  attestors: readonly NodeAttestor[];
  logger?: ServerLogger;
  now?: () => Date;
  limits?: Partial<ApiLimits>;
  /** Lifetime of the server's own TLS X509-SVID (seconds, default 3600). */
  serverSvidTtl?: number;
  /** Grace period for calls in flight at `stop()` (ms, default 5000). */
  drainMs?: number;
  /** Largest request message accepted (bytes, default 4 MiB). */
  maxReceiveMessageBytes?: number;
  /** grpc-js server interceptors on both endpoints (e.g. RPC metrics from server/observability). */
  interceptors?: ServerInterceptor[];
  /** The process's log level for the Logger service (server/api/logger); without it the service is not offered (UNIMPLEMENTED). */
  logLevel?: LogLevelControl;
  /**
   * Worker threads that check the CSRs of batch signing calls (server/csr-pool; default:
   * one per core, at most 4; 0 = on the event loop).
   */
  csrWorkers?: number;
  /** Entry usage records (issue 11, server/usage-recorder); absent: none are kept. */
  usage?: UsageSink;
  /** The audit ledger (server/audit-ledger builds one for ServerRunner); absent: nothing is recorded. */
  audit?: AuditRecorder;
  /** Scoped registrars by admin SPIFFE ID (server.conf `registrars`, server/registrar-scope); absent: every admin is unscoped. */
  registrars?: ReadonlyMap<string, RegistrarScope>;
  /** Owner certification (server.conf `certification`, server/certification); needs `audit`. Absent: off. */
  certification?: CertificationSettings;
  /** How often certification states are swept (ms, default 60,000; 0 = only at start and when told: tests). */
  certificationSweepMs?: number;
  /** The peer bundle fetcher the TrustDomain API's RefreshBundle drives (ServerRunner composes federation/poller). */
  federation?: FederationControl;
  /** Lifetime of the X.509 CRLs (seconds, default 3600; re-issued at half, and on every revocation). Issue 10. */
  crlLifetimeSeconds?: number;
  /** Told after X509-SVIDs were revoked: the audit ledger's hook (issue 10). */
  onX509SvidsRevoked?: (event: X509SvidsRevokedEvent) => void | Promise<void>;
}

const MAX_INTERMEDIATES = 16;

export class MayflyServer {
  readonly trustDomain: TrustDomain;
  readonly serverId: SpiffeId;
  readonly #cfg: MayflyServerConfig;
  readonly #logger: ServerLogger;
  readonly #now: () => Date;
  readonly #hub = new ChangeHub();
  readonly #streams = new AgentSyncStreams();
  readonly #adminSocket: AdminSocket;
  #svid: ServerSvid | undefined;
  readonly #intermediates = new Map<string, Buffer>();
  readonly #ds: ServerDatastore;
  readonly #ca: ServerApiCa;
  #tcp: Server | undefined;
  #admin: Server | undefined;
  #port = 0;
  #unsubscribeCa: (() => void) | undefined;
  #started = false;
  #csrPool: CsrWorkerPool | undefined;
  #authorizedCache: AuthorizedEntryCache | undefined;
  #trustBundle: TrustBundle | undefined;
  #crls: CrlPublisher | undefined;
  #certifications: EntryCertifications | undefined;

  constructor(cfg: MayflyServerConfig) {
    if (typeof cfg !== 'object' || cfg === null) throw new TypeError('MayflyServer needs a config object');
    if (typeof cfg.adminSocketPath !== 'string' || cfg.adminSocketPath === '') throw new TypeError('adminSocketPath is required');
    if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) throw new TypeError('port must be an integer from 0 to 65535');
    if (typeof cfg.datastore !== 'object' || cfg.datastore === null) throw new TypeError('MayflyServer needs its datastore (ServerRunner builds one from the catalog; tests: server/testing)');
    if (typeof cfg.ca !== 'object' || cfg.ca === null) throw new TypeError('MayflyServer needs its CA');
    if (!Array.isArray(cfg.attestors) || cfg.attestors.length === 0) throw new TypeError('MayflyServer needs at least one node attestor');
    this.#cfg = cfg;
    this.trustDomain = typeof cfg.trustDomain === 'string' ? TrustDomain.parse(cfg.trustDomain) : cfg.trustDomain;
    this.serverId = this.trustDomain.idWithPath('/spire/server');
    this.#logger = cfg.logger ?? SILENT_LOGGER;
    this.#now = cfg.now ?? (() => new Date());
    this.#ds = cfg.datastore;
    this.#ca = cfg.ca;
    this.#adminSocket = new AdminSocket(cfg.adminSocketPath, cfg.adminSocketMode);
  }

  /** The TCP port actually bound (useful with `port: 0`). */
  get port(): number {
    return this.#port;
  }

  get adminSocketPath(): string {
    return this.#adminSocket.path;
  }

  /** The trust domain's bundle as served (after `start`): what the bundle endpoint and OIDC discovery publish. */
  get trustBundle(): TrustBundle | undefined {
    return this.#trustBundle;
  }

  /** The change hub (for in-process components that write to the datastore directly). */
  /** The trust domain's bundle as served (server/trust-bundle); a change is announced on the hub as `ca`. Throws before `start()`. */
  servedBundle(): Bundle {
    if (this.#trustBundle === undefined) throw new TypeError('the server is not started');
    return this.#trustBundle.bundle();
  }

  get hub(): ChangeHub {
    return this.#hub;
  }

  /** Owner certification, when configured (after `start()`): its sweep and counts (metrics, tests). */
  get certification(): EntryCertifications | undefined {
    return this.#certifications;
  }

  async start(): Promise<void> {
    if (this.#started) throw new TypeError('MayflyServer already started');
    this.#started = true;
    // Refuse a hijackable admin socket directory before any state is opened or created.
    ensureAdminSocketDir(this.adminSocketPath);
    ensurePrivateDir(this.#cfg.dataDir, { onTightened: (msg) => this.#logger.warn({ dataDir: this.#cfg.dataDir }, msg) });
    const ds = this.#ds;
    const ca = this.#ca;
    if (!ca.trustDomain.equals(this.trustDomain)) throw new TypeError(`the CA is for ${ca.trustDomain.name}, the server for ${this.trustDomain.name}`);
    const attestors = new Map<string, NodeAttestor>();
    for (const a of this.#cfg.attestors) attestors.set(a.type, a);
    // Subscribed to the hub before any stream, so a change empties the cache before a stream reads it.
    this.#authorizedCache = new AuthorizedEntryCache({ hub: this.#hub });
    this.#csrPool = new CsrWorkerPool(this.#cfg.csrWorkers === undefined ? {} : { size: this.#cfg.csrWorkers });
    // The bundle served and trusted: this CA's, merged with what other servers sharing the
    // datastore published there (server/trust-bundle). A change re-keys the TLS trust roots.
    // Published under this server's owner ID, so its first publish after a restart also
    // removes what its CA revoked before a crash cut the removal short.
    const trustBundle = new TrustBundle({
      owner: loadBundleOwnerId(this.#cfg.dataDir),
      ca,
      datastore: ds,
      hub: this.#hub,
      logger: this.#logger,
      now: this.#now,
      onChange: (b) => this.#svid?.setRoots(b),
    });
    this.#trustBundle = trustBundle;
    const svid = new ServerSvid({
      ca,
      serverId: this.serverId,
      ttlSeconds: this.#cfg.serverSvidTtl ?? 3600,
      bundle: () => trustBundle.bundle(),
      noteChain: (chain) => this.#noteChain(chain),
      logger: this.#logger,
    });
    this.#svid = svid;
    await trustBundle.start();
    const crls = new CrlPublisher({
      ca,
      datastore: ds,
      hub: this.#hub,
      logger: this.#logger,
      now: this.#now,
      ...(this.#cfg.crlLifetimeSeconds !== undefined ? { lifetimeSeconds: this.#cfg.crlLifetimeSeconds } : {}),
    });
    this.#crls = crls;
    await crls.start();
    if (this.#cfg.certification !== undefined) {
      const audit = this.#cfg.audit;
      if (audit === undefined) throw new TypeError('certification needs the audit ledger (MayflyServerConfig.audit): attestations are recorded there');
      const certs = new EntryCertifications({
        settings: this.#cfg.certification,
        ledger: { record: (actor, event) => audit.record(actor, event), listAuditRecords: (q) => ds.listAuditRecords(q) },
        entries: ds,
        logger: this.#logger,
        now: this.#now,
        onLapsedChanged: () => this.#hub.publish({ kind: 'entries' }),
      });
      await certs.start({ sweepEveryMs: this.#cfg.certificationSweepMs ?? 60_000 });
      this.#certifications = certs;
    }
    const ctx: ApiContext = {
      trustDomain: this.trustDomain,
      serverId: this.serverId,
      ds,
      ca,
      hub: this.#hub,
      attestors,
      logger: this.#logger,
      limits: { ...DEFAULT_LIMITS, ...this.#cfg.limits },
      now: this.#now,
      intermediates: () => [...this.#intermediates.values()],
      noteChain: (chain) => this.#noteChain(chain),
      csrMinter: this.#csrPool,
      authorizedCache: this.#authorizedCache,
      trustBundle,
      ...(this.#cfg.audit !== undefined ? { audit: this.#cfg.audit } : {}),
      ...(this.#cfg.usage !== undefined ? { usage: this.#cfg.usage } : {}),
      ...(this.#cfg.registrars !== undefined ? { registrars: this.#cfg.registrars } : {}),
      ...(this.#certifications !== undefined ? { certification: this.#certifications } : {}),
      ...(this.#cfg.federation !== undefined ? { federation: this.#cfg.federation } : {}),
      crls,
      ...(this.#cfg.onX509SvidsRevoked ? { onX509SvidsRevoked: this.#cfg.onX509SvidsRevoked } : {}),
      serverInfo: { startedAt: this.#now(), svidChain: () => serverSvidChain(svid) },
    };

    await svid.rotate();
    this.#unsubscribeCa = ca.onEvent((e) => {
      // Every CA change (prepare, activate, taint, revoke, expiry, bundle) reaches the
      // authorised-entry streams at once: taint in particular must reach agents without delay.
      this.#hub.publish({ kind: 'ca' });
      if (e.type !== 'bundle-updated' && e.type !== 'authority-activated') return;
      svid.rotate().catch((err: unknown) => this.#logger.error({ err }, 'server SVID rotation after CA change failed'));
    });

    const options = {
      'grpc.max_receive_message_length': this.#cfg.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      interceptors: this.#cfg.interceptors ?? [],
    };
    this.#tcp = new Server(options);
    this.#admin = new Server(options);
    this.#addServices(this.#tcp, ctx, 'tcp');
    this.#addServices(this.#admin, ctx, 'admin-socket');

    const host = this.#cfg.bindAddress.includes(':') ? `[${this.#cfg.bindAddress}]` : this.#cfg.bindAddress;
    this.#port = await bindServer(this.#tcp, `${host}:${this.#cfg.port}`, svid.credentials());
    await new Promise((r) => setImmediate(r)); // let the deferred first certificate update land
    await this.#adminSocket.bind(this.#admin);
    this.#logger.info({ port: this.#port, adminSocket: this.adminSocketPath, trustDomain: this.trustDomain.name }, 'server API listening');
  }

  #addServices(server: Server, ctx: ApiContext, t: Transport): void {
    const impls: Partial<Record<ServerApiService, UntypedServiceImplementation>> = {
      Entry: entryService(ctx, t),
      Agent: agentService(ctx, t),
      Bundle: bundleService(ctx, t),
      SVID: svidService(ctx, t),
      LocalAuthority: authorityService(ctx, t),
      AgentSync: { ...agentSyncService(ctx, t, this.#streams), ...deliveryHandlers(ctx, t) },
      Audit: auditService(ctx, t),
      Health: healthService(ctx, t),
      TrustDomain: trustDomainService(ctx, t),
      Inventory: inventoryService(ctx, t),
    };
    if (this.#cfg.logLevel !== undefined) impls.Logger = loggerService(ctx, t, this.#cfg.logLevel);
    for (const [name, impl] of Object.entries(impls) as [ServerApiService, UntypedServiceImplementation][]) {
      server.addService(serverApiServiceDefinition(name) as ServiceDefinition, impl);
    }
    // SPIRE's server API beside Mayfly's (issue 14), over the same implementations.
    for (const [name, impl] of Object.entries(spireApiServices(ctx, t, impls)) as [SpireApiService, UntypedServiceImplementation][]) {
      server.addService(spireApiServiceDefinition(name) as ServiceDefinition, impl);
    }
    // grpc.health.v1.Health, which `spire-server healthcheck` calls on the admin socket.
    server.addService(grpcHealthServiceDefinition(), grpcHealthHandlers(impls.Health));
  }

  #noteChain(chain: readonly Buffer[]): void {
    for (const c of chain.slice(1)) {
      const key = c.toString('base64');
      if (this.#intermediates.has(key)) continue;
      if (this.#intermediates.size >= MAX_INTERMEDIATES) {
        const oldest = this.#intermediates.keys().next().value;
        if (oldest !== undefined) this.#intermediates.delete(oldest);
      }
      this.#intermediates.set(key, c);
    }
  }

  /** Stops both endpoints, draining calls in flight (see module doc). Idempotent. */
  async stop(): Promise<void> {
    this.#svid?.stop();
    this.#certifications?.stop();
    this.#crls?.stop();
    this.#unsubscribeCa?.();
    this.#unsubscribeCa = undefined;
    this.#streams.closeAll();
    const servers = [this.#tcp, this.#admin].filter((s): s is Server => s !== undefined);
    this.#tcp = undefined;
    this.#admin = undefined;
    const drainMs = this.#cfg.drainMs ?? 5000;
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((done) => {
            const force = setTimeout(() => {
              s.forceShutdown();
              done();
            }, drainMs);
            s.tryShutdown(() => {
              clearTimeout(force);
              done();
            });
          }),
      ),
    );
    await this.#adminSocket.remove();
    this.#authorizedCache?.close();
    await this.#trustBundle?.stop();
    await this.#csrPool?.close();
  }
}

/** The server's current X509-SVID chain as DER (leaf first); empty before the first one. */
function serverSvidChain(svid: ServerSvid): Buffer[] {
  const current = svid.current();
  return current === undefined ? [] : parsePemCertificates(current.certPem);
}
