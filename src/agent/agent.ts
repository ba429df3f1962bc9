/**
 * @module agent/agent
 *
 * `MayflyAgent`: node attestation (or the stored agent SVID), entry sync by push, the SVID
 * cache, and the SPIFFE Workload API endpoint on a Unix socket, wired together.
 *
 * Data path: server push stream → `SvidCache.applyUpdate` → CSRs to the server (batched)
 * → cache → Workload API streams of every attested caller whose selectors match. The
 * Workload API never waits for the server except for a first JWT-SVID mint.
 *
 * States: `stopped` → `starting` → `syncing` (endpoint up, waiting for the first entry
 * set; callers get UNAVAILABLE) → `ready`; `failed` when the agent SVID expired and cannot
 * be renewed (cached workload SVIDs are still served until they expire; the CLI should exit
 * non-zero on `onFatal`). With a `nodeAttestor` that can attest again (k8s_psat), an expired
 * SVID or an eviction (the stream ends UNAUTHENTICATED) leads to a new attestation instead,
 * and the stream reopens with the new SVID.
 *
 * Health (agent/agent-health: one verdict for `grpc.health.v1.Health/Check` on the socket
 * and for `/ready`) and metrics (agent/metrics), served with `/live` and `/ready` on the
 * HTTP listeners `http` asks for.
 */
import { dirname } from 'node:path';
import { HttpEndpoints, type Readiness } from '../observability/http-endpoints.js';
import { UnixWorkloadAttestor } from '../attestors/workload/unix/unix.js';
import { MayflyError } from '../spiffe/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import { validateJwtSvid } from '../spiffe/jwt/validate.js';
import { agentTokenExchange } from './token-exchange-client.js';
import { WorkloadApiEndpoint } from '../workloadapi/endpoint.js';
import { resolveWorkloadApiLimits } from '../workloadapi/connection-limits.js';
import type { ValidateJwtSvid } from '../workloadapi/identities.js';
import { agentReadiness, unhealthyReason, type AgentHealthFacts } from './agent-health.js';
import { AgentIdentity, type AgentSvid } from './attestation.js';
import { SvidCache } from './cache.js';
import { SystemScheduler, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import { DeliveryLog } from './delivery-log.js';
import { WithheldEntriesLog } from './withheld.js';
import { AgentMetrics } from './metrics.js';
import { readPeerCredentials, verifyCaller } from './peercred/index.js';
import { serverConnection, serverTargets } from './server-connection.js';
import type { ServerPool } from './server-pool.js';
import { AgentStateStore } from './store.js';
import { defaultSocketPath, ensureTrustedDir, SOCKET_DIR_FIX } from '../securefs/index.js';
import { EntrySync } from './sync.js';
import { taintedAuthoritiesOf } from './taint.js';
import { revokedSerialsOf } from './revocation.js';

import type { MayflyAgentConfig } from './agent-config.js';

export type { MayflyAgentConfig } from './agent-config.js';

export type AgentState = 'stopped' | 'starting' | 'syncing' | 'ready' | 'failed' | 'stopping';

export class MayflyAgent {
  readonly trustDomain: TrustDomain;
  readonly socketPath: string;
  readonly #cfg: MayflyAgentConfig;
  readonly #log: AgentLogger;
  readonly #sched: Scheduler;
  #state: AgentState = 'stopped';
  #identity: AgentIdentity | undefined;
  #cache: SvidCache | undefined;
  #sync: EntrySync | undefined;
  #pool: ServerPool | undefined;
  #endpoint: WorkloadApiEndpoint | undefined;
  #deliveries: DeliveryLog | undefined;
  #lastError: MayflyError | undefined;
  readonly #readyWaiters = new Set<() => void>();
  readonly #http: HttpEndpoints[] = [];
  #startedAt: Date | undefined;
  /** The agent's Prometheus metrics (agent/metrics), served on the `http.metrics` listener. */
  readonly metrics: AgentMetrics;

  constructor(cfg: MayflyAgentConfig) {
    if (typeof cfg !== 'object' || cfg === null) throw new TypeError('MayflyAgent needs a config object');
    serverTargets(cfg);
    if (typeof cfg.dataDir !== 'string' || cfg.dataDir === '') throw new TypeError('dataDir is required');
    if (cfg.joinToken !== undefined && cfg.nodeAttestor !== undefined) throw new TypeError('give joinToken or nodeAttestor, not both');
    // Checked now, not when the endpoint starts: a misconfigured cap is the caller's mistake.
    if (cfg.workloadApiLimits !== undefined) resolveWorkloadApiLimits(cfg.workloadApiLimits);
    this.#cfg = cfg;
    this.trustDomain = TrustDomain.parse(cfg.trustDomain);
    this.socketPath = cfg.socketPath ?? defaultSocketPath('agent');
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#sched = cfg.scheduler ?? new SystemScheduler(cfg.now === undefined ? {} : { now: cfg.now });
    const t = cfg.serverUnreachableThresholdSeconds;
    if (t !== undefined && !(Number.isFinite(t) && t > 0)) throw new TypeError('serverUnreachableThresholdSeconds must be a positive number');
    const secondsSince = (d: Date | undefined): number | undefined => (d === undefined ? undefined : (this.#sched.now().getTime() - d.getTime()) / 1000);
    this.metrics = new AgentMetrics({
      processMetrics: cfg.processMetrics ?? true,
      state: {
        x509SvidsCached: () => this.#cache?.x509SvidCount ?? 0,
        serverConnected: () => this.#sync?.state === 'streaming',
        serverAddress: () => this.serverAddress,
        secondsSinceSync: () => secondsSince(this.#sync?.lastInSync()),
        bundleAgeSeconds: () => secondsSince(this.#cache?.bundleUpdatedAt),
        agentSvidSecondsLeft: () => {
          const svid = this.agentSvid;
          return svid === undefined ? undefined : (svid.notAfter.getTime() - this.#sched.now().getTime()) / 1000;
        },
        deliveryRecordsBuffered: () => this.#deliveries?.buffered,
      },
    });
  }

  get state(): AgentState {
    return this.#state;
  }

  /** True once the first authorised-entry set arrived (workloads can be served). */
  get ready(): boolean {
    return this.#state === 'ready' || (this.#state === 'failed' && this.#cache?.ready === true);
  }

  /**
   * True while the agent can serve workloads: its authorised entries arrived and its own
   * SVID is valid now (what `grpc.health.v1.Health/Check` on the socket reports).
   */
  get healthy(): boolean {
    return this.readiness().ready;
  }

  /** Ports of the HTTP listeners bound: [metrics, health] as configured (after start). */
  get httpPorts(): number[] {
    return this.#http.map((h) => h.port);
  }

  /** What the health verdict is made from (agent/agent-health). */
  #healthFacts(): AgentHealthFacts {
    return {
      now: this.#sched.now(),
      svid: this.agentSvid,
      entries: this.#state === 'ready',
      workloadApiListening: this.#endpoint !== undefined,
      lastInSync: this.#sync?.lastInSync() ?? this.#startedAt,
      thresholdSeconds: this.#cfg.serverUnreachableThresholdSeconds,
      failure: this.#state === 'failed' ? (this.#lastError?.message ?? 'unknown error') : undefined,
      serverAddress: this.serverAddress,
    };
  }

  /** The health verdict, check by check (agent/agent-health): `agentSvid`, `entries`, `workloadApi`, `server`. */
  readiness(): Readiness {
    return agentReadiness(this.#healthFacts());
  }

  /** One line saying why the agent is not healthy (the health check's answer carries it); undefined when it is. */
  unhealthyReason(): string | undefined {
    return unhealthyReason(this.#healthFacts());
  }

  get lastError(): MayflyError | undefined {
    return this.#lastError;
  }

  /** The agent's SVID (after start). */
  get agentSvid(): AgentSvid | undefined {
    try {
      return this.#identity?.svid;
    } catch {
      return undefined;
    }
  }

  /** The cache (diagnostics and tests). */
  get cache(): SvidCache | undefined {
    return this.#cache;
  }

  /** The server endpoint (`ip:port`) the entry stream is open on, else the one the agent tries next; undefined before the first try. */
  get serverAddress(): string | undefined {
    return this.#pool?.streamingOn ?? this.#pool?.address;
  }

  /** The entry sync (diagnostics and tests). */
  get sync(): EntrySync | undefined {
    return this.#sync;
  }

  /** True when no agent SVID renewal or attestation, no X509-SVID issuance and no notification pass is in flight. */
  get idle(): boolean {
    return (this.#identity?.idle ?? true) && (this.#cache?.idle ?? true);
  }

  /** Resolves once `idle` (tests: `ManualScheduler.settle`); each wait is for work in flight, never for time. */
  async settled(): Promise<void> {
    while (!this.idle) {
      await this.#identity?.settled();
      await this.#cache?.settled();
    }
  }

  /**
   * Attests (or resumes), opens the entry stream and the Workload API socket. Resolves
   * once the socket listens; use `whenReady()` to wait for the first entry set.
   */
  async start(): Promise<void> {
    if (this.#state !== 'stopped') throw new TypeError(`cannot start an agent that is ${this.#state}`);
    this.#state = 'starting';
    try {
      await this.#start();
    } catch (err) {
      this.#state = 'stopped';
      await this.#teardown();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const cfg = this.#cfg;
    this.#startedAt = this.#sched.now();
    // A Workload API socket directory another user could write to is refused before the
    // agent attests or stores anything (the endpoint checks again when it binds).
    ensureTrustedDir(dirname(this.socketPath), { mode: 0o755, fix: SOCKET_DIR_FIX });
    const { connect, pool } = serverConnection({ ...cfg, trustDomain: this.trustDomain, logger: this.#log, scheduler: this.#sched });
    this.#pool = pool;
    const random = cfg.random ?? Math.random;
    const identity = new AgentIdentity({
      trustDomain: this.trustDomain,
      store: new AgentStateStore({ dataDir: cfg.dataDir }),
      connect,
      scheduler: this.#sched,
      logger: this.#log,
      random,
      recorder: this.metrics,
      ...(cfg.joinToken !== undefined ? { joinToken: cfg.joinToken } : {}),
      ...(cfg.nodeAttestor !== undefined ? { nodeAttestor: cfg.nodeAttestor } : {}),
      ...(cfg.trustBundlePath !== undefined ? { trustBundlePath: cfg.trustBundlePath } : {}),
      ...(cfg.insecureBootstrap !== undefined ? { insecureBootstrap: cfg.insecureBootstrap } : {}),
    });
    this.#identity = identity;
    await identity.init();

    // The cache signs through the sync's current client (swapped on agent SVID renewal). While
    // a taint-driven agent SVID renewal runs, its calls wait for it: the renewal replaces the
    // client (closing the old one), and the server refuses the superseded SVID afterwards.
    let renewing: Promise<void> | undefined;
    const afterRenewal = <T>(call: () => Promise<T>): Promise<T> => (renewing === undefined ? call() : renewing.then(call, call));
    const cache = new SvidCache({
      trustDomain: this.trustDomain,
      issuer: {
        newX509Svids: (b) => afterRenewal(() => sync.newX509Svids(b)),
        newJwtSvid: (e, a, t) => afterRenewal(() => sync.newJwtSvid(e, a, t)),
      },
      workloadAttestors: cfg.workloadAttestors ?? [new UnixWorkloadAttestor()],
      scheduler: this.#sched,
      logger: this.#log,
      random,
      maxJwtSvids: cfg.jwtSvidCache?.maxEntries,
      maxJwtSvidBytes: cfg.jwtSvidCache?.maxBytes,
      maxJwtSvidsPerIdentity: cfg.jwtSvidCache?.maxPerIdentity,
      recorder: this.metrics,
    });
    const withheld = new WithheldEntriesLog(this.#log);
    const sync = new EntrySync({
      connect: () => connect(identity.credentials()),
      onUpdate: (u) => {
        identity.accepted();
        withheld.note(u);
        identity.updateRoots(u.bundle.x509Authorities);
        // Tainted authority in the agent SVID's chain: renew it first, then the workloads' SVIDs.
        // A CRL listing the agent SVID (issue 10) renews it the same way.
        const renewal = identity.renewIfTainted(taintedAuthoritiesOf(u)) ?? identity.renewIfRevoked(revokedSerialsOf(u.x509Crls));
        if (renewal !== undefined) {
          const gate: Promise<void> = renewal.catch(() => undefined).finally(() => {
            if (renewing === gate) renewing = undefined;
          });
          renewing = gate;
        }
        cache.applyUpdate(u);
        if (cache.ready && this.#state === 'syncing') {
          this.#state = 'ready';
          this.#log.info({ entries: cache.entryCount }, 'agent ready');
          for (const w of [...this.#readyWaiters]) w();
        }
      },
      onRefused: (err) => identity.refused(err.message),
      onBanned: (err) => {
        identity.banned(err.message);
        cache.withdrawAll('the server banned this agent');
      },
      scheduler: this.#sched,
      logger: this.#log,
      ...(pool !== undefined ? { failover: pool } : {}),
      random,
    });
    this.#sync = sync;
    this.#cache = cache;

    identity.startRenewal({
      onRenewed: () => sync.reconnect(),
      onExpired: (err) => this.#fail(err),
    });

    const dr = cfg.deliveryRecords ?? {};
    const deliveries =
      dr.enabled === false
        ? undefined
        : new DeliveryLog({
            sink: { reportDeliveries: (r) => afterRenewal(() => sync.reportDeliveries(r)) },
            scheduler: this.#sched,
            dataDir: cfg.dataDir,
            logger: this.#log,
            recorder: this.metrics,
            random,
            ...(dr.maxBuffered !== undefined ? { maxBuffered: dr.maxBuffered } : {}),
            ...(dr.maxBatch !== undefined ? { maxBatch: dr.maxBatch } : {}),
            ...(dr.flushIntervalMs !== undefined ? { flushIntervalMs: dr.flushIntervalMs } : {}),
            ...(dr.retryMinMs !== undefined ? { retryMinMs: dr.retryMinMs } : {}),
            ...(dr.retryMaxMs !== undefined ? { retryMaxMs: dr.retryMaxMs } : {}),
          });
    this.#deliveries = deliveries;
    deliveries?.start();

    const validate: ValidateJwtSvid = async (token, audience) => {
      const v = validateJwtSvid(token, { audience, bundles: cache.bundles(), now: this.#sched.now() });
      return { spiffeId: v.spiffeId.toString(), claims: v.claims };
    };
    this.#endpoint = new WorkloadApiEndpoint({
      ...cfg.workloadApiLimits,
      socketPath: this.socketPath,
      identities: cache,
      validateJwtSvid: validate,
      peerCredentials: cfg.peerCredentials ?? { read: (s) => readPeerCredentials(s), verify: (c) => verifyCaller(c) },
      logger: this.#log,
      serving: () => this.healthy,
      notServingReason: () => this.unhealthyReason(),
      interceptors: [this.metrics.workloadApiInterceptor()],
      ...(cfg.tokenExchange && { tokenExchange: agentTokenExchange({ ...cfg.tokenExchange, trustDomain: cfg.trustDomain, bundles: () => cache.bundles(), now: () => this.#sched.now() }) }),
      ...(deliveries !== undefined ? { onDelivered: (caller, what) => deliveries.record(caller, what) } : {}),
    });
    this.#state = 'syncing';
    sync.start();
    await this.#endpoint.start();
    this.#log.info({ socketPath: this.socketPath, spiffeId: identity.svid.spiffeId }, 'Workload API listening');
    const ready = (): Readiness => this.readiness();
    const live = (): boolean => this.#state !== 'failed' && this.#state !== 'stopped';
    const { metrics, health } = cfg.http ?? {};
    if (metrics !== undefined) {
      // Built now, so process metrics are sampled from start; an agent without a metrics listener never loads prom-client.
      await this.metrics.prometheus();
      this.#http.push(new HttpEndpoints({ host: metrics.host, port: metrics.port, metrics: this.metrics, ready, live }));
    }
    if (health !== undefined) {
      this.#http.push(new HttpEndpoints({ host: health.host, port: health.port, ready, live, ...(health.livePath ? { livePath: health.livePath } : {}), ...(health.readyPath ? { readyPath: health.readyPath } : {}) }));
    }
    for (const h of this.#http) await h.start();
    if (this.#http.length > 0) this.#log.info({ metricsPort: metrics !== undefined ? this.#http[0]?.port : undefined, healthPort: health !== undefined ? this.#http.at(-1)?.port : undefined }, 'HTTP listeners up');
  }

  #fail(err: MayflyError): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#lastError = err;
    this.#state = 'failed';
    this.#sync?.stop();
    this.#log.error({ code: err.code }, err.message);
    try {
      this.#cfg.onFatal?.(err);
    } catch (e) {
      this.#log.warn({ err: e }, 'onFatal handler threw');
    }
  }

  /** Resolves when the agent is ready (first entry set applied); rejects after `timeoutMs`. */
  whenReady(timeoutMs = 30_000): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#readyWaiters.delete(done);
        reject(new MayflyError('ERR_AGENT_NOT_READY', `agent not ready after ${timeoutMs} ms (state ${this.#state})`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#readyWaiters.delete(done);
        resolve();
      };
      this.#readyWaiters.add(done);
    });
  }

  /** Stops renewals and the stream, closes the Workload API (ending its calls) and removes its socket. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    await this.#teardown();
    this.#state = 'stopped';
  }

  async #teardown(): Promise<void> {
    this.#identity?.stop();
    // One last send while the server client is open; what stays unsent is counted in the data
    // directory (and deliveries during the rest of the shutdown are counted as dropped).
    await this.#deliveries?.stop();
    this.#sync?.stop();
    this.#cache?.close();
    const endpoint = this.#endpoint;
    this.#endpoint = undefined;
    await endpoint?.close();
    for (const h of this.#http.splice(0)) await h.stop();
    await this.#cache?.settled();
  }
}
