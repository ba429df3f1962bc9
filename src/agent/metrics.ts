/**
 * @module agent/metrics
 *
 * The agent's Prometheus metrics (prom-client, a registry per agent, never the global one;
 * the plumbing is observability/metrics, shared with the server). Events are counted
 * through the small recorder interfaces their producers declare (`AttestationRecorder`,
 * `SvidCacheRecorder`, observability's `RpcRecorder` for the Workload API interceptor);
 * state is read at scrape time from `AgentMetricsState`, so no counter kept on the side
 * can drift from the truth. Every name is listed in docs/metrics.md.
 *
 * Events are counted in plain maps; prom-client is loaded and the registry built only by
 * `prometheus()`, which the agent calls at start when a metrics listener is configured,
 * and `text()` calls on first use. An agent nobody scrapes never loads prom-client nor
 * samples process metrics (issue 18: RSS). The counters read the maps at scrape time.
 */
import type { ServerInterceptor } from '@grpc/grpc-js';
import type { Counter, Gauge, Registry } from 'prom-client';
import type { MetricsExposition } from '../observability/http-endpoints.js';
import { rpcInterceptor } from '../observability/rpc-interceptor.js';
import type { AttestationRecorder } from './attestation.js';
import type { SvidCacheRecorder } from './cache.js';
import type { DeliveryLogRecorder } from './delivery-log.js';

/** What the gauges read at scrape time (the agent implements it). */
export interface AgentMetricsState {
  /** X509-SVIDs held for workloads. */
  x509SvidsCached(): number;
  /** True while the authorised-entry stream to the server is open. */
  serverConnected(): boolean;
  /** The server endpoint (`ip:port`) the stream is open on, else the one tried next; undefined before the first try. */
  serverAddress(): string | undefined;
  /** Seconds since the agent last knew it was in sync with the server (0 while the stream is open); undefined before it ever was. */
  secondsSinceSync(): number | undefined;
  /** Seconds since the trust domain bundle the agent holds was received; undefined before the first. */
  bundleAgeSeconds(): number | undefined;
  /** Seconds until the agent SVID's notAfter (negative once expired); undefined without one. */
  agentSvidSecondsLeft(): number | undefined;
  /** Delivery records buffered and not yet acknowledged by the server (agent/delivery-log); undefined when not recording. */
  deliveryRecordsBuffered?(): number | undefined;
}

export interface AgentMetricsConfig {
  state: AgentMetricsState;
  /** Adds Node's process metrics (CPU, memory, event loop lag) as `mayfly_agent_process_…`. Default true. */
  processMetrics?: boolean;
  /** Milliseconds for the Workload API call timer (default `performance.now`). */
  monotonicMs?: () => number;
}

/** prom-client's text exposition format (Registry.PROMETHEUS_CONTENT_TYPE). */
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type GaugeClass = typeof Gauge;
type CounterClass = typeof Counter;

/** Counts by label set, kept without prom-client. */
class LabelledCount<L extends string> {
  readonly #counts = new Map<string, { labels: Record<L, string>; n: number }>();

  inc(labels: Record<L, string>, n = 1): void {
    const key = JSON.stringify(labels);
    const seen = this.#counts.get(key);
    if (seen === undefined) this.#counts.set(key, { labels, n });
    else seen.n += n;
  }

  entries(): IterableIterator<{ labels: Record<L, string>; n: number }> {
    return this.#counts.values();
  }
}

/** Gauges that have no value yet are left out of the exposition rather than reported as 0. */
function gauge(G: GaugeClass, registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new G({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      const v = read();
      if (v !== undefined) this.set(v);
    },
  });
}

/** A counter whose value is read from `counts` at scrape time. */
function counter<L extends string>(C: CounterClass, registry: Registry, name: string, help: string, labelNames: readonly L[], counts: () => Iterable<{ labels: Record<L, string>; n: number }>): void {
  new C<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const { labels, n } of counts()) {
        if (labelNames.length === 0) this.inc(n);
        else this.inc(labels as Partial<Record<L, string | number>>, n);
      }
    },
  });
}

export class AgentMetrics implements MetricsExposition, AttestationRecorder, SvidCacheRecorder, DeliveryLogRecorder {
  readonly #state: AgentMetricsState;
  readonly #processMetrics: boolean;
  readonly #attestations = new LabelledCount<'attestor' | 'outcome'>();
  #rotated = 0;
  readonly #calls = new LabelledCount<'method' | 'code'>();
  readonly #deliveries = new LabelledCount<'outcome'>();
  readonly #monotonicMs: (() => number) | undefined;
  #registry: Promise<Registry> | undefined;

  constructor(cfg: AgentMetricsConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.state === undefined) throw new TypeError('AgentMetrics needs { state }');
    this.#state = cfg.state;
    this.#processMetrics = cfg.processMetrics ?? true;
    this.#monotonicMs = cfg.monotonicMs;
  }

  /** The Prometheus registry, built (and prom-client loaded) at the first call. */
  prometheus(): Promise<Registry> {
    this.#registry ??= this.#build();
    return this.#registry;
  }

  async #build(): Promise<Registry> {
    const [{ Counter: C, Gauge: G }, { newRegistry }] = await Promise.all([import('prom-client'), import('../observability/metrics.js')]);
    const registry = newRegistry({ prefix: 'mayfly_agent_', processMetrics: this.#processMetrics });
    counter(
      C,
      registry,
      'mayfly_agent_node_attestations_total',
      'Node attestations (Agent.AttestAgent) by attestor (join_token, k8s_psat, x509pop) and outcome (success, failure).',
      ['attestor', 'outcome'],
      () => this.#attestations.entries(),
    );
    counter(C, registry, 'mayfly_agent_x509_svids_rotated_total', 'Workload X509-SVIDs replaced by a newer one for the same entry.', [], () => [{ labels: {}, n: this.#rotated }]);
    counter(
      C,
      registry,
      'mayfly_agent_workload_api_calls_total',
      'Workload API (and grpc.health.v1) calls by method and gRPC status code; a stream is counted when it ends.',
      ['method', 'code'],
      () => this.#calls.entries(),
    );
    counter(
      C,
      registry,
      'mayfly_agent_delivery_records_total',
      'Delivery records (which caller received which SVID) by outcome: sent (in the server ledger), dropped (buffer full), refused (by the server), lost_at_restart (buffered when the previous process ended; a lower bound after a crash).',
      ['outcome'],
      () => this.#deliveries.entries(),
    );
    const s = this.#state;
    gauge(G, registry, 'mayfly_agent_delivery_records_buffered', 'Delivery records buffered and not yet acknowledged by the server.', () => s.deliveryRecordsBuffered?.());
    gauge(G, registry, 'mayfly_agent_x509_svids_cached', 'Workload X509-SVIDs the agent holds.', () => s.x509SvidsCached());
    gauge(G, registry, 'mayfly_agent_server_connected', '1 while the authorised-entry stream to the server is open, else 0.', () => (s.serverConnected() ? 1 : 0));
    new G({
      name: 'mayfly_agent_server',
      help: 'Always 1, labelled with the server endpoint (ip:port) the agent streams its entries from, or tries next; absent before the first try.',
      labelNames: ['address'],
      registers: [registry],
      collect() {
        this.reset();
        const address = s.serverAddress();
        if (address !== undefined) this.set({ address }, 1);
      },
    });
    gauge(
      G,
      registry,
      'mayfly_agent_seconds_since_last_sync',
      'Seconds since the agent last knew it was in sync with the server (0 while the entry stream is open); absent before the first sync.',
      () => s.secondsSinceSync(),
    );
    gauge(G, registry, 'mayfly_agent_trust_bundle_age_seconds', 'Seconds since the trust domain bundle the agent holds was received (it changes when the CA rotates).', () => s.bundleAgeSeconds());
    gauge(G, registry, 'mayfly_agent_svid_expiry_seconds', "Seconds until the agent's own SVID expires (negative once expired).", () => s.agentSvidSecondsLeft());
    return registry;
  }

  nodeAttestation(attestor: string, outcome: 'success' | 'failure'): void {
    this.#attestations.inc({ attestor, outcome });
  }

  deliveryRecords(outcome: 'sent' | 'dropped' | 'refused' | 'lost_at_restart', n: number): void {
    if (n > 0) this.#deliveries.inc({ outcome }, n);
  }

  x509SvidRotated(): void {
    this.#rotated++;
  }

  /** The Workload API endpoint's interceptor: every call counted by method and status code. */
  workloadApiInterceptor(): ServerInterceptor {
    // '/SpiffeWorkloadAPI/FetchX509SVID' → 'SpiffeWorkloadAPI/FetchX509SVID' → method 'FetchX509SVID'.
    const recorder = { rpcEnded: (method: string, code: string) => this.#calls.inc({ method: method.replace(/^SpiffeWorkloadAPI\//, ''), code }) };
    return this.#monotonicMs === undefined ? rpcInterceptor(recorder) : rpcInterceptor(recorder, this.#monotonicMs);
  }

  get contentType(): string {
    return PROMETHEUS_CONTENT_TYPE;
  }

  /** The Prometheus text exposition (builds the registry at the first call). */
  async text(): Promise<string> {
    return (await this.prometheus()).metrics();
  }
}
