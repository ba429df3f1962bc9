/**
 * @module server/observability
 *
 * What an operator watches a running server with:
 * - structured logs: `pino`, one JSON object per line on stderr;
 * - Prometheus metrics (`prom-client`, a registry per server, never the global one):
 *   SVIDs signed by type, RPCs by method and status code, RPC latency, and the number of
 *   entries, agents and federated bundles read from the datastore at scrape time; under
 *   `mayfly_server_`: seconds until each X.509 CA and JWT authority (prepared, active,
 *   old) expires, read from the CA at scrape time; rotation steps by kind and step (from
 *   the CA's events); node attestations by attestor and result (the attestor's verdict on
 *   the evidence); datastore call latency by operation (server/timed-datastore). Every
 *   name is listed in docs/metrics.md (test/docs/metrics.test.ts keeps the two equal);
 * - served over the shared HTTP listener (observability/http-endpoints) with `/live` and
 *   `/ready` (server/runner gives the readiness: datastore open, CA with an active
 *   authority, listeners up).
 * The registry plumbing, the gRPC interceptor and the listener are observability's,
 * shared with the agent; what is counted here is the server's.
 */
import { INVENTORY_KINDS, inventoryFromStore } from './inventory.js';
import type { ServerInterceptor } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { NodeAttestor } from '../attestors/node/attestor.js';
import type { AuthorityKind, AuthorityStatus, CaEvent } from '../ca/authority.js';
import type { ServerCa } from '../ca/server-ca.js';
import type { LogLevel } from '../config/log-level.js';
import type { MetricsExposition } from '../observability/http-endpoints.js';
import { createLogger } from '../observability/logger.js';
import { metricsOf, newRegistry, rpcInterceptor } from '../observability/metrics.js';
import type { FetcherMetrics } from '../federation/poller.js';
import type { ServerApiCa, ServerDatastore } from './ports.js';
import { timedDatastore, type DatastoreCallRecorder } from './timed-datastore.js';

/** The process logger (observability/logger), for the server's tests and tools. */
export function createServerLogger(level: LogLevel = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return createLogger(level, destination);
}

export { grpcCodeName } from '../observability/metrics.js';
export { HttpEndpoints, type HttpEndpointsConfig, type Readiness } from '../observability/http-endpoints.js';

export interface ServerMetricsConfig {
  /** Counted at scrape time (the datastore is the truth, not a counter kept on the side). */
  datastore?: Pick<ServerDatastore, 'countEntries' | 'countAgents' | 'listBundles'>;
  /** The server's trust domain: its own bundle is in the datastore too (shared with other servers) and is not counted as federated. */
  trustDomain?: string;
  /** Adds Node's process metrics (CPU, memory, event loop lag). Default true. */
  processMetrics?: boolean;
  /** The clock the authority expiry gauges count from (default: the system clock). */
  now?: () => Date;
}

/** The CA as the authority gauges and rotation counters read it. */
export type WatchedCa = Pick<ServerCa, 'authorityState' | 'onEvent'>;

const AUTHORITY_STATES: readonly AuthorityStatus[] = ['prepared', 'active', 'old'];
const ROTATION_STEPS = { 'authority-prepared': 'prepare', 'authority-activated': 'activate', 'authority-tainted': 'taint', 'authority-revoked': 'revoke' } as const;

/** Node attestor type names are operator-chosen plugin names: keep odd ones from becoming label values. */
function attestorLabel(type: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(type) ? type : 'other';
}

export class ServerMetrics implements MetricsExposition, DatastoreCallRecorder {
  readonly registry: Registry;
  readonly svidsSigned: Counter<'type'>;
  readonly rpcs: Counter<'method' | 'code'>;
  readonly rpcSeconds: Histogram<'method'>;
  /** Peer bundle fetches refused, by trust domain and reason (federation/refusal). */
  readonly federationRefusals: Counter<'trust_domain' | 'reason'>;
  /** When each peer's bundle was last fetched successfully (unix seconds). */
  readonly federationLastRefresh: Gauge<'trust_domain'>;
  readonly #rotations: Counter<'kind' | 'step'>;
  readonly #attestations: Counter<'attestor' | 'result'>;
  readonly #datastoreSeconds: Histogram<'operation'>;
  readonly #now: () => Date;
  #ca: WatchedCa | undefined;
  #unwatchCa: (() => void) | undefined;

  constructor(cfg: ServerMetricsConfig = {}) {
    this.registry = newRegistry({ prefix: 'mayfly_', processMetrics: cfg.processMetrics ?? true });
    const registers = [this.registry];
    this.svidsSigned = new Counter({ name: 'mayfly_svids_signed_total', help: 'SVIDs signed by the CA, by type (x509, jwt).', labelNames: ['type'], registers });
    this.rpcs = new Counter({ name: 'mayfly_rpc_total', help: 'Server API calls by method and gRPC status code.', labelNames: ['method', 'code'], registers });
    this.rpcSeconds = new Histogram({
      name: 'mayfly_rpc_duration_seconds',
      help: 'Server API call latency by method.',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.federationRefusals = new Counter({
      name: 'mayfly_federation_bundle_refusals_total',
      help: "Peer bundle fetches refused (the stored bundle was kept), by trust domain and reason.",
      labelNames: ['trust_domain', 'reason'],
      registers,
    });
    this.federationLastRefresh = new Gauge({
      name: 'mayfly_federation_bundle_last_refresh_timestamp_seconds',
      help: "When each federated trust domain's bundle was last fetched successfully from its bundle endpoint (unix seconds).",
      labelNames: ['trust_domain'],
      registers,
    });
    this.svidsSigned.inc({ type: 'x509' }, 0);
    this.svidsSigned.inc({ type: 'jwt' }, 0);
    this.#now = cfg.now ?? (() => new Date());
    const watched = (): WatchedCa | undefined => this.#ca;
    const nowMs = (): number => this.#now().getTime();
    const expiry = (kind: AuthorityKind, name: string, what: string): void => {
      new Gauge({
        name,
        help: `Seconds until the ${what}'s notAfter, by state (prepared, active, old); negative once expired, absent while the slot is empty.`,
        labelNames: ['state'],
        registers,
        collect() {
          this.reset();
          const ca = watched();
          if (ca === undefined) return;
          const st = ca.authorityState(kind);
          const at = nowMs();
          for (const state of AUTHORITY_STATES) {
            const a = st[state];
            if (a !== undefined) this.set({ state }, (a.notAfter.getTime() - at) / 1000);
          }
        },
      });
    };
    expiry('x509', 'mayfly_server_x509_ca_expiry_seconds', 'X.509 CA');
    expiry('jwt', 'mayfly_server_jwt_authority_expiry_seconds', 'JWT signing key');
    this.#rotations = new Counter({
      name: 'mayfly_server_authority_rotations_total',
      help: 'CA rotation steps by kind (x509, jwt) and step (prepare, activate, taint, revoke), automatic and by operator.',
      labelNames: ['kind', 'step'],
      registers,
    });
    for (const kind of ['x509', 'jwt'] as const) for (const step of Object.values(ROTATION_STEPS)) this.#rotations.inc({ kind, step }, 0);
    this.#attestations = new Counter({
      name: 'mayfly_server_node_attestations_total',
      help: "Node attestations by attestor and result (success, failure): the attestor's verdict on the evidence an agent sent.",
      labelNames: ['attestor', 'result'],
      registers,
    });
    this.#datastoreSeconds = new Histogram({
      name: 'mayfly_server_datastore_call_duration_seconds',
      help: 'Datastore call latency by operation (the Datastore method), failed calls included.',
      labelNames: ['operation'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    if (cfg.datastore !== undefined) this.countStored(cfg.datastore, cfg.trustDomain);
  }

  /** Gauges of what the datastore holds (entries, agents, federated bundles), read at scrape time; `trustDomain`'s own bundle is not counted. Call once. */
  countStored(ds: Pick<ServerDatastore, 'countEntries' | 'countAgents' | 'listBundles'>, trustDomain?: string): void {
    const registers = [this.registry];
    {
      new Gauge({
        name: 'mayfly_entries',
        help: 'Registration entries in the datastore.',
        registers,
        async collect() {
          this.set(await ds.countEntries());
        },
      });
      new Gauge({
        name: 'mayfly_agents',
        help: 'Attested agents in the datastore.',
        registers,
        async collect() {
          this.set(await ds.countAgents());
        },
      });
      new Gauge({
        name: 'mayfly_bundles',
        help: 'Bundles in the datastore (federated trust domains).',
        registers,
        async collect() {
          this.set((await ds.listBundles()).filter((b) => b.trustDomain !== trustDomain).length);
        },
      });
    }
  }

  /**
   * `mayfly_inventory_findings{kind}`: server/inventory's finding counts (30-day threshold),
   * computed at scrape time at most once per `cacheMs` (default 5 minutes: the report reads
   * every entry and agent, too much for every scrape). Call once.
   */
  countInventory(ds: Pick<ServerDatastore, 'listEntries' | 'listAgents' | 'listEntryUsage'>, serverId: string, cacheMs = 300_000): void {
    let cached: { at: number; counts: Map<string, number> } | undefined;
    const now = (): Date => this.#now();
    new Gauge({
      name: 'mayfly_inventory_findings',
      help: 'Inventory findings by kind (mayfly-server inventory, 30-day threshold), recomputed at most every 5 minutes.',
      labelNames: ['kind'],
      registers: [this.registry],
      async collect() {
        const at = now().getTime();
        if (cached === undefined || at - cached.at >= cacheMs || at < cached.at) {
          const r = await inventoryFromStore(ds, serverId, Math.floor(at / 1000), 30);
          const counts = new Map<string, number>(INVENTORY_KINDS.map((k) => [k, 0]));
          for (const f of [...r.entries, ...r.agents]) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
          cached = { at, counts };
        }
        for (const [kind, n] of cached.counts) this.set({ kind }, n);
      },
    });
  }

  /**
   * `mayfly_entry_certification{state}`: entries by owner certification state at the last
   * sweep (server/certification: at start and every minute); declared but without series
   * when certification is off (`source` undefined).
   */
  watchCertification(source: { readonly counts: Readonly<Record<'current' | 'due' | 'lapsed' | 'exempt', number>> } | undefined): void {
    new Gauge({
      name: 'mayfly_entry_certification',
      help: 'Entries by owner certification state (current, due: warned, lapsed: not served, exempt: break-glass) at the last sweep.',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        if (source === undefined) return;
        for (const [state, n] of Object.entries(source.counts)) this.set({ state }, n);
      },
    });
  }

  /** What the peer bundle fetcher (federation/poller) reports to. */
  fetcherMetrics(): FetcherMetrics {
    return {
      refused: (trustDomain, reason) => this.federationRefusals.inc({ trust_domain: trustDomain, reason }),
      refreshed: (trustDomain, at) => this.federationLastRefresh.set({ trust_domain: trustDomain }, Math.floor(at.getTime() / 1000)),
    };
  }

  /** Reads the authority expiry gauges from `ca` and counts its rotation steps from its events; returns the unsubscribe function. */
  watchCa(ca: WatchedCa): () => void {
    this.#unwatchCa?.();
    this.#ca = ca;
    const off = ca.onEvent((e: CaEvent) => {
      if (e.type === 'authority-prepared' || e.type === 'authority-activated' || e.type === 'authority-tainted' || e.type === 'authority-revoked') {
        this.#rotations.inc({ kind: e.kind, step: ROTATION_STEPS[e.type] });
      }
    });
    this.#unwatchCa = () => {
      off();
      this.#ca = undefined;
      this.#unwatchCa = undefined;
    };
    return this.#unwatchCa;
  }

  /** `attestor` with every verdict counted by result (a thrown error is a failure). */
  countingAttestor(attestor: NodeAttestor): NodeAttestor {
    const attestations = this.#attestations;
    const label = attestorLabel(attestor.type);
    attestations.inc({ attestor: label, result: 'success' }, 0);
    attestations.inc({ attestor: label, result: 'failure' }, 0);
    return {
      type: attestor.type,
      attest: async (payload, ctx) => {
        try {
          const out = await attestor.attest(payload, ctx);
          attestations.inc({ attestor: label, result: 'success' });
          return out;
        } catch (err) {
          attestations.inc({ attestor: label, result: 'failure' });
          throw err;
        }
      },
    };
  }

  /** `ds` with every call timed into `mayfly_server_datastore_call_duration_seconds` (server/timed-datastore). */
  timedDatastore<D extends object>(ds: D, monotonicMs?: () => number): D {
    return timedDatastore(ds, this, monotonicMs);
  }

  datastoreCallEnded(operation: string, seconds: number): void {
    this.#datastoreSeconds.observe({ operation }, seconds);
  }

  /** A grpc-js server interceptor counting every call by method and status, and timing it. */
  interceptor(): ServerInterceptor {
    return rpcInterceptor({
      rpcEnded: (method, code, seconds) => {
        this.rpcSeconds.observe({ method }, seconds);
        this.rpcs.inc({ method, code });
      },
    });
  }

  /** The CA as the server API sees it, with every signature counted. */
  countingCa(ca: ServerCa): ServerApiCa {
    const svids = this.svidsSigned;
    return {
      trustDomain: ca.trustDomain,
      signX509Svid: (req) => {
        const out = ca.signX509Svid(req);
        svids.inc({ type: 'x509' });
        return out;
      },
      x509MintAuthority: () => ca.x509MintAuthority(),
      noteX509SvidsMinted: (count) => svids.inc({ type: 'x509' }, count),
      signJwtSvid: (req) => {
        const out = ca.signJwtSvid(req);
        svids.inc({ type: 'jwt' });
        return out;
      },
      getBundle: () => ca.getBundle(),
      onEvent: (l) => ca.onEvent(l),
      taintedAuthorities: () => ca.taintedAuthorities(),
      authorityState: (kind) => ca.authorityState(kind),
      prepareAuthority: (kind) => ca.prepareAuthority(kind),
      activateAuthority: (kind, id) => ca.activateAuthority(kind, id),
      taintAuthority: (kind, id) => ca.taintAuthority(kind, id),
      revokeAuthority: (kind, id) => ca.revokeAuthority(kind, id),
      signX509Crls: (req) => ca.signX509Crls(req),
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return metricsOf(this.registry).text();
  }
}
