/**
 * @module server/server
 *
 * `MayflyServer`: the server API on two endpoints.
 * - The admin Unix socket: every admin RPC, no agent-only RPC. Its file mode (0770 by
 *   default, owner and group) is the authorisation, so the socket is bound inside a fresh
 *   0700 directory, given its mode, and only then renamed into place: there is no moment
 *   when it exists at the final path with looser permissions. A socket file already at the
 *   path is replaced only when nothing answers on it: a live server's is never taken over.
 *   The socket's directory and every one above it must be ours or root's and not writable
 *   by others without the sticky bit (securefs/trusted-dir), checked again at start (whoever
 *   composes the server checks it before opening any state: server/runner, server/testing):
 *   otherwise another user who created it first could move the socket aside and bind their own.
 * - TCP with TLS: the server presents an X509-SVID for `spiffe://<td>/spire/server`,
 *   minted by the CA and renewed at half its life and on every CA change; it asks for a
 *   client certificate but does not require one (attesting agents have none yet), and
 *   server/auth verifies whatever is presented against the served bundle: the CA's own,
 *   merged with the authorities of every server sharing the datastore (server/trust-bundle).
 *
 * The server builds none of its parts: the datastore, the CA and the node attestors are
 * given (ServerRunner builds them from the catalog, server/catalog), and the caller closes
 * them after `stop()`.
 *
 * `stop()` drains: authorised-entry streams end with UNAVAILABLE (agents reconnect), calls
 * in flight get a grace period, then the servers are forced down.
 */
import { chmod, lstat, mkdtemp, rename, rmdir, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { experimental, Server, ServerCredentials, type ServerInterceptor, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { NodeAttestor } from '../attestors/node/attestor.js';
import { ensurePrivateDir } from '../securefs/index.js';
import { MayflyError } from '../spiffe/errors.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { TrustDomain, type SpiffeId } from '../spiffe/id.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { agentService } from './api/agent.js';
import { AgentSyncStreams, agentSyncService } from './api/agentsync.js';
import { authorityService } from './api/authority.js';
import { bundleService } from './api/bundle.js';
import { entryService } from './api/entry.js';
import { healthService } from './api/health.js';
import { svidService } from './api/svid.js';
import type { Transport } from './auth.js';
import { DEFAULT_LIMITS, type ApiContext, type ApiLimits } from './context.js';
import { AuthorizedEntryCache } from './authorized-cache.js';
import { CsrWorkerPool } from './csr-pool.js';
import { ChangeHub } from './hub.js';
import { loadBundleOwnerId, TrustBundle } from './trust-bundle.js';
import { ensureAdminSocketDir } from './admin-socket-dir.js';
import { SILENT_LOGGER, type ServerApiCa, type ServerDatastore, type ServerLogger } from './ports.js';
import { serverApiServiceDefinition, type ServerApiService } from './proto.js';

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
  /**
   * Worker threads that check the CSRs of batch signing calls (server/csr-pool; default:
   * one per core, at most 4; 0 = on the event loop).
   */
  csrWorkers?: number;
}

interface CertificateListener<T> {
  (update: T | null): void;
}

/**
 * A grpc-js CertificateProvider fed by the server: identity = the server SVID, CA = the
 * bundle roots. Pushing a new value re-keys the TLS endpoint without a restart.
 */
class SvidCertificateProvider {
  #ca: { caCertificate: Buffer } | null = null;
  #id: { certificate: Buffer; privateKey: Buffer } | null = null;
  readonly #caListeners = new Set<CertificateListener<{ caCertificate: Buffer }>>();
  readonly #idListeners = new Set<CertificateListener<{ certificate: Buffer; privateKey: Buffer }>>();

  setCa(pem: string): void {
    this.#ca = { caCertificate: Buffer.from(pem) };
    for (const l of this.#caListeners) l(this.#ca);
  }

  setIdentity(certPem: string, keyPem: string): void {
    this.#id = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
    for (const l of this.#idListeners) l(this.#id);
  }

  addCaCertificateListener(l: CertificateListener<{ caCertificate: Buffer }>): void {
    this.#caListeners.add(l);
    // Deferred: grpc-js registers its watcher only after adding the listener, so a
    // synchronous first update would be lost and the endpoint would drop every connection.
    setImmediate(() => {
      if (this.#ca && this.#caListeners.has(l)) l(this.#ca);
    });
  }

  removeCaCertificateListener(l: CertificateListener<{ caCertificate: Buffer }>): void {
    this.#caListeners.delete(l);
  }

  addIdentityCertificateListener(l: CertificateListener<{ certificate: Buffer; privateKey: Buffer }>): void {
    this.#idListeners.add(l);
    setImmediate(() => {
      if (this.#id && this.#idListeners.has(l)) l(this.#id);
    });
  }

  removeIdentityCertificateListener(l: CertificateListener<{ certificate: Buffer; privateKey: Buffer }>): void {
    this.#idListeners.delete(l);
  }
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
  readonly #provider = new SvidCertificateProvider();
  readonly #intermediates = new Map<string, Buffer>();
  readonly #ds: ServerDatastore;
  readonly #ca: ServerApiCa;
  #tcp: Server | undefined;
  #admin: Server | undefined;
  #port = 0;
  #rotateTimer: NodeJS.Timeout | undefined;
  #unsubscribeCa: (() => void) | undefined;
  #serverSvidNotAfter = 0;
  #started = false;
  /** Inode of the admin socket this server placed; stop() removes the file only while it is still that one. */
  #adminSocketIno: number | undefined;
  #csrPool: CsrWorkerPool | undefined;
  #authorizedCache: AuthorizedEntryCache | undefined;
  #trustBundle: TrustBundle | undefined;

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
  }

  /** The TCP port actually bound (useful with `port: 0`). */
  get port(): number {
    return this.#port;
  }

  get adminSocketPath(): string {
    return resolve(this.#cfg.adminSocketPath);
  }

  /** The change hub (for in-process components that write to the datastore directly). */
  get hub(): ChangeHub {
    return this.#hub;
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
      onChange: (b) => this.#provider.setCa(pemEncodeCertificates(b.x509Authorities)),
    });
    this.#trustBundle = trustBundle;
    await trustBundle.start();
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
      csrParser: this.#csrPool,
      authorizedCache: this.#authorizedCache,
      trustBundle,
    };

    await this.#rotateServerSvid();
    this.#unsubscribeCa = ca.onEvent((e) => {
      // Every CA change (prepare, activate, taint, revoke, expiry, bundle) reaches the
      // authorised-entry streams at once: taint in particular must reach agents without delay.
      this.#hub.publish({ kind: 'ca' });
      if (e.type !== 'bundle-updated' && e.type !== 'authority-activated') return;
      this.#rotateServerSvid().catch((err: unknown) => this.#logger.error({ err }, 'server SVID rotation after CA change failed'));
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

    const creds = experimental.createCertificateProviderServerCredentials(
      // grpc-js 1.14 passes these two straight through in swapped order; the provider serves both roles.
      this.#provider as unknown as experimental.CertificateProvider,
      this.#provider as unknown as experimental.CertificateProvider,
      false,
    );
    const host = this.#cfg.bindAddress.includes(':') ? `[${this.#cfg.bindAddress}]` : this.#cfg.bindAddress;
    this.#port = await bind(this.#tcp, `${host}:${this.#cfg.port}`, creds);
    await new Promise((r) => setImmediate(r)); // let the deferred first certificate update land
    await this.#bindAdminSocket(this.#admin);
    this.#logger.info({ port: this.#port, adminSocket: this.adminSocketPath, trustDomain: this.trustDomain.name }, 'server API listening');
  }

  #addServices(server: Server, ctx: ApiContext, t: Transport): void {
    const impls: Record<ServerApiService, UntypedServiceImplementation> = {
      Entry: entryService(ctx, t),
      Agent: agentService(ctx, t),
      Bundle: bundleService(ctx, t),
      SVID: svidService(ctx, t),
      LocalAuthority: authorityService(ctx, t),
      AgentSync: agentSyncService(ctx, t, this.#streams),
      Health: healthService(ctx, t),
    };
    for (const [name, impl] of Object.entries(impls) as [ServerApiService, UntypedServiceImplementation][]) {
      server.addService(serverApiServiceDefinition(name) as ServiceDefinition, impl);
    }
  }

  async #bindAdminSocket(server: Server): Promise<void> {
    const final = this.adminSocketPath;
    const dir = ensureAdminSocketDir(this.adminSocketPath);
    try {
      const st = await lstat(final);
      if (!st.isSocket()) throw new TypeError(`${final} exists and is not a socket; refusing to replace it`);
      // Only a stale socket (nobody answering) is removed: unlinking a live one would take
      // the admin API away from the server that holds it.
      if (await socketAnswers(final)) {
        throw new MayflyError('ERR_SERVER_ADDRESS_IN_USE', `another server is already listening on ${final}; stop it or choose another admin socket path`);
      }
      await unlink(final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const tmpDir = await mkdtemp(join(dir, '.mayfly-admin-'));
    const tmpPath = join(tmpDir, 'admin.sock');
    try {
      await bind(server, `unix:${tmpPath}`, ServerCredentials.createInsecure());
      await chmod(tmpPath, this.#cfg.adminSocketMode ?? 0o770);
      await rename(tmpPath, final);
      this.#adminSocketIno = (await lstat(final)).ino;
    } finally {
      await rmdir(tmpDir).catch(() => undefined);
    }
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

  async #rotateServerSvid(): Promise<void> {
    const ca = this.#ca;
    const key = generateKeyPair('ec-p256');
    const ttl = this.#cfg.serverSvidTtl ?? 3600;
    const chain = ca.signX509Svid({ spiffeId: this.serverId, publicKey: key.publicKey, ttlSeconds: ttl }).certificates;
    this.#noteChain(chain);
    const leaf = parseCertificate(chain[0] as Buffer);
    this.#serverSvidNotAfter = leaf.notAfter.getTime();
    this.#provider.setCa(pemEncodeCertificates((this.#trustBundle?.bundle() ?? ca.getBundle()).x509Authorities));
    this.#provider.setIdentity(pemEncodeCertificates(chain), key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    if (this.#rotateTimer !== undefined) clearTimeout(this.#rotateTimer);
    const life = this.#serverSvidNotAfter - Date.now();
    this.#rotateTimer = setTimeout(() => {
      this.#rotateServerSvid().catch((err: unknown) => this.#logger.error({ err }, 'server SVID rotation failed'));
    }, Math.max(1000, life / 2));
    this.#rotateTimer.unref();
  }

  /** Stops both endpoints, draining calls in flight (see module doc). Idempotent. */
  async stop(): Promise<void> {
    if (this.#rotateTimer !== undefined) clearTimeout(this.#rotateTimer);
    this.#rotateTimer = undefined;
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
    if (this.#adminSocketIno !== undefined) {
      const ino = this.#adminSocketIno;
      this.#adminSocketIno = undefined;
      // Never another server's socket (e.g. after a start that found the path in use).
      const st = await lstat(this.adminSocketPath).catch(() => undefined);
      if (st?.ino === ino) await unlink(this.adminSocketPath).catch(() => undefined);
    }
    this.#authorizedCache?.close();
    await this.#trustBundle?.stop();
    await this.#csrPool?.close();
  }
}

/** Whether something accepts connections on the Unix socket at `path` (false on ECONNREFUSED/ENOENT). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((ok, fail) => {
    const s = createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') ok(false);
      else fail(new Error(`cannot tell whether ${path} is in use (${err.code ?? err.message}); remove it if no server holds it`, { cause: err }));
    });
  });
}

function bind(server: Server, address: string, creds: ServerCredentials): Promise<number> {
  return new Promise((ok, fail) => {
    server.bindAsync(address, creds, (err, port) => (err ? fail(err) : ok(port)));
  });
}
