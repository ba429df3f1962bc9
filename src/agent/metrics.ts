/**
 * @module agent/metrics
 *
 * The agent's Prometheus metrics (prom-client, a registry per agent, never the global one;
 * the plumbing is observability/metrics, shared with the server). Events are counted
 * through the small recorder interfaces their producers declare (`AttestationRecorder`,
 * `SvidCacheRecorder`, observability's `RpcRecorder` for the Workload API interceptor);
 * state is read at scrape time from `AgentMetricsState`, so no counter kept on the side
 * can drift from the truth. Every name is listed in docs/metrics.md.
 */
import type { ServerInterceptor } from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MetricsExposition } from '../observability/http-endpoints.js';
import { newRegistry, rpcInterceptor } from '../observability/metrics.js';
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

/** Gauges that have no value yet are left out of the exposition rather than reported as 0. */
function gauge(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Gauge({
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

export class AgentMetrics implements MetricsExposition, AttestationRecorder, SvidCacheRecorder, DeliveryLogRecorder {
  readonly registry: Registry;
  readonly #attestations: Counter<'attestor' | 'outcome'>;
  readonly #rotated: Counter;
  readonly #calls: Counter<'method' | 'code'>;
  readonly #deliveries: Counter<'outcome'>;
  readonly #monotonicMs: (() => number) | undefined;

  constructor(cfg: AgentMetricsConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.state === undefined) throw new TypeError('AgentMetrics needs { state }');
    this.registry = newRegistry({ prefix: 'mayfly_agent_', processMetrics: cfg.processMetrics ?? true });
    this.#monotonicMs = cfg.monotonicMs;
    const registers = [this.registry];
    this.#attestations = new Counter({
      name: 'mayfly_agent_node_attestations_total',
      help: 'Node attestations (Agent.AttestAgent) by attestor (join_token, k8s_psat) and outcome (success, failure).',
      labelNames: ['attestor', 'outcome'],
      registers,
    });
    this.#rotated = new Counter({ name: 'mayfly_agent_x509_svids_rotated_total', help: 'Workload X509-SVIDs replaced by a newer one for the same entry.', registers });
    this.#calls = new Counter({
      name: 'mayfly_agent_workload_api_calls_total',
      help: 'Workload API (and grpc.health.v1) calls by method and gRPC status code; a stream is counted when it ends.',
      labelNames: ['method', 'code'],
      registers,
    });
    this.#deliveries = new Counter({
      name: 'mayfly_agent_delivery_records_total',
      help: 'Delivery records (which caller received which SVID) by outcome: sent (in the server ledger), dropped (buffer full), refused (by the server), lost_at_restart (buffered when the previous process ended; a lower bound after a crash).',
      labelNames: ['outcome'],
      registers,
    });
    const s = cfg.state;
    gauge(this.registry, 'mayfly_agent_delivery_records_buffered', 'Delivery records buffered and not yet acknowledged by the server.', () => s.deliveryRecordsBuffered?.());
    gauge(this.registry, 'mayfly_agent_x509_svids_cached', 'Workload X509-SVIDs the agent holds.', () => s.x509SvidsCached());
    gauge(this.registry, 'mayfly_agent_server_connected', '1 while the authorised-entry stream to the server is open, else 0.', () => (s.serverConnected() ? 1 : 0));
    new Gauge({
      name: 'mayfly_agent_server',
      help: 'Always 1, labelled with the server endpoint (ip:port) the agent streams its entries from, or tries next; absent before the first try.',
      labelNames: ['address'],
      registers,
      collect() {
        this.reset();
        const address = s.serverAddress();
        if (address !== undefined) this.set({ address }, 1);
      },
    });
    gauge(
      this.registry,
      'mayfly_agent_seconds_since_last_sync',
      'Seconds since the agent last knew it was in sync with the server (0 while the entry stream is open); absent before the first sync.',
      () => s.secondsSinceSync(),
    );
    gauge(this.registry, 'mayfly_agent_trust_bundle_age_seconds', 'Seconds since the trust domain bundle the agent holds was received (it changes when the CA rotates).', () => s.bundleAgeSeconds());
    gauge(this.registry, 'mayfly_agent_svid_expiry_seconds', "Seconds until the agent's own SVID expires (negative once expired).", () => s.agentSvidSecondsLeft());
  }

  nodeAttestation(attestor: string, outcome: 'success' | 'failure'): void {
    this.#attestations.inc({ attestor, outcome });
  }

  deliveryRecords(outcome: 'sent' | 'dropped' | 'refused' | 'lost_at_restart', n: number): void {
    if (n > 0) this.#deliveries.inc({ outcome }, n);
  }

  x509SvidRotated(): void {
    this.#rotated.inc();
  }

  /** The Workload API endpoint's interceptor: every call counted by method and status code. */
  workloadApiInterceptor(): ServerInterceptor {
    // '/SpiffeWorkloadAPI/FetchX509SVID' → 'SpiffeWorkloadAPI/FetchX509SVID' → method 'FetchX509SVID'.
    const recorder = { rpcEnded: (method: string, code: string) => this.#calls.inc({ method: method.replace(/^SpiffeWorkloadAPI\//, ''), code }) };
    return this.#monotonicMs === undefined ? rpcInterceptor(recorder) : rpcInterceptor(recorder, this.#monotonicMs);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
