/**
 * @module observability/http-endpoints
 *
 * The small HTTP listener both binaries serve `/metrics`, `/live` and `/ready` on (and
 * SPIRE's `health_checks` listener, with its own paths). What is ready is the caller's
 * business: it gives a readiness function (the server: datastore, CA, listeners; the
 * agent: a valid agent SVID and a Workload API that serves).
 *
 * Threat: the listener leaking or being abused. It serves only GET/HEAD of fixed paths,
 * reads no request body, times slow requests out, and callers bind it to 127.0.0.1 unless
 * told otherwise.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';

export interface Readiness {
  ready: boolean;
  /** Each check by name: true when it passes. */
  checks: Record<string, boolean>;
}

/** What `/metrics` serves: a Prometheus text exposition (a prom-client `Registry` fits through `metricsOf`). */
export interface MetricsExposition {
  readonly contentType: string;
  text(): Promise<string>;
}

export interface HttpEndpointsConfig {
  host: string;
  /** 0 picks a free port (see `port` after start). */
  port: number;
  /** Serve /metrics from this; omitted = no /metrics route. */
  metrics?: MetricsExposition;
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
    if (typeof cfg.ready !== 'function') throw new TypeError('HttpEndpoints needs a ready() function');
    this.#cfg = cfg;
  }

  /** The port bound (after `start`). */
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
    const metrics = this.#cfg.metrics;
    if (path === '/metrics' && metrics !== undefined) {
      const body = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType }).end(body);
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
