/**
 * @module server/observability
 *
 * What an operator watches a running server with:
 * - structured logs: `pino`, one JSON object per line on stderr;
 * - Prometheus metrics (`prom-client`, a registry per server, never the global one):
 *   SVIDs signed by type, RPCs by method and status code, RPC latency, and the number of
 *   entries, agents and federated bundles read from the datastore at scrape time;
 * - served over the shared HTTP listener (observability/http-endpoints) with `/live` and
 *   `/ready` (server/runner gives the readiness: datastore open, CA with an active
 *   authority, listeners up).
 * The registry plumbing, the gRPC interceptor and the listener are observability's,
 * shared with the agent; what is counted here is the server's.
 */
import type { ServerInterceptor } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ServerCa } from '../ca/server-ca.js';
import type { LogLevel } from '../config/log-level.js';
import type { MetricsExposition } from '../observability/http-endpoints.js';
import { createLogger } from '../observability/logger.js';
import { metricsOf, newRegistry, rpcInterceptor } from '../observability/metrics.js';
import type { ServerApiCa, ServerDatastore } from './ports.js';

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
}

export class ServerMetrics implements MetricsExposition {
  readonly registry: Registry;
  readonly svidsSigned: Counter<'type'>;
  readonly rpcs: Counter<'method' | 'code'>;
  readonly rpcSeconds: Histogram<'method'>;

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
    this.svidsSigned.inc({ type: 'x509' }, 0);
    this.svidsSigned.inc({ type: 'jwt' }, 0);
    const ds = cfg.datastore;
    if (ds !== undefined) {
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
          this.set((await ds.listBundles()).filter((b) => b.trustDomain !== cfg.trustDomain).length);
        },
      });
    }
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
