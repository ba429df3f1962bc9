/**
 * @module server/observability
 *
 * What an operator watches a running server with:
 * - structured logs: `pino`, one JSON object per line on stderr;
 * - Prometheus metrics (`prom-client`, a registry per server, never the global one):
 *   SVIDs signed by type, RPCs by method and status code, RPC latency, and the number of
 *   entries, agents and federated bundles read from the datastore at scrape time;
 * - an HTTP listener for `/metrics`, `/live` and `/ready` (readiness is a function the
 *   caller gives: datastore open, CA with an active authority, listeners up).
 *
 * Threat: the metrics listener leaking or being abused. It serves only GET of fixed
 * paths, no request body is read, and it binds 127.0.0.1 unless told otherwise.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { ResponderBuilder, ServerInterceptingCall, status as GrpcStatus, type ServerInterceptingCallInterface, type ServerInterceptor } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerCa } from '../ca/server-ca.js';
import type { LogLevel } from '../config/log-level.js';
import { createLogger } from '../observability/logger.js';
import type { ServerApiCa, ServerDatastore } from './ports.js';

/** The process logger (observability/logger), for the server's tests and tools. */
export function createServerLogger(level: LogLevel = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return createLogger(level, destination);
}

const CODE_NAMES = new Map<number, string>(Object.entries(GrpcStatus).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k]));

/** `OK`, `INVALID_ARGUMENT`, ... for a gRPC status number. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES.get(code) ?? String(code);
}

export interface ServerMetricsConfig {
  /** Counted at scrape time (the datastore is the truth, not a counter kept on the side). */
  datastore?: Pick<ServerDatastore, 'countEntries' | 'countAgents' | 'listBundles'>;
  /** The server's trust domain: its own bundle is in the datastore too (shared with other servers) and is not counted as federated. */
  trustDomain?: string;
  /** Adds Node's process metrics (CPU, memory, event loop lag). Default true. */
  processMetrics?: boolean;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly svidsSigned: Counter<'type'>;
  readonly rpcs: Counter<'method' | 'code'>;
  readonly rpcSeconds: Histogram<'method'>;

  constructor(cfg: ServerMetricsConfig = {}) {
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
    if (cfg.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'mayfly_' });
  }

  /** A grpc-js server interceptor counting every call by method and status, and timing it. */
  interceptor(): ServerInterceptor {
    return (descriptor, call: ServerInterceptingCallInterface) => {
      // '/mayfly.server.v1.Entry/ListEntries' → 'Entry/ListEntries'
      const method = descriptor.path.replace(/^\/(?:[^/]*\.)?([^./]+\/[^/]+)$/, '$1');
      const end = this.rpcSeconds.startTimer({ method });
      const responder = new ResponderBuilder()
        .withSendStatus((st, next) => {
          end();
          this.rpcs.inc({ method, code: grpcCodeName(st.code) });
          next(st);
        })
        .build();
      return new ServerInterceptingCall(call, responder);
    };
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
    };
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}

export interface Readiness {
  ready: boolean;
  /** Each check by name: true when it passes. */
  checks: Record<string, boolean>;
}

export interface HttpEndpointsConfig {
  host: string;
  /** 0 picks a free port (see `port` after start). */
  port: number;
  /** Serve /metrics from this; omitted = no /metrics route. */
  metrics?: ServerMetrics;
  livePath?: string;
  readyPath?: string;
  ready: () => Promise<Readiness> | Readiness;
  live?: () => boolean;
}

/** A small HTTP listener for `/metrics`, `/live` and `/ready`. */
export class HttpEndpoints {
  readonly #cfg: HttpEndpointsConfig;
  #server: HttpServer | undefined;
  #port = 0;

  constructor(cfg: HttpEndpointsConfig) {
    if (typeof cfg !== 'object' || cfg === null) throw new TypeError('HttpEndpoints needs a config object');
    this.#cfg = cfg;
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(this.#cfg.port, this.#cfg.host, () => {
        server.off('error', fail);
        ok();
      });
    });
    const addr = server.address();
    this.#port = typeof addr === 'object' && addr !== null ? addr.port : this.#cfg.port;
    this.#server = server;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics' && this.#cfg.metrics !== undefined) {
      const body = await this.#cfg.metrics.text();
      res.writeHead(200, { 'content-type': this.#cfg.metrics.registry.contentType }).end(body);
      return;
    }
    if (path === (this.#cfg.livePath ?? '/live')) {
      const live = this.#cfg.live?.() ?? true;
      res.writeHead(live ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ live })}\n`);
      return;
    }
    if (path === (this.#cfg.readyPath ?? '/ready')) {
      const r = await this.#cfg.ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s === undefined) return;
    await new Promise<void>((done) => {
      s.close(() => done());
      s.closeAllConnections();
    });
  }
}
