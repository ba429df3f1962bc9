/**
 * @module federation/bundle-endpoint-http
 *
 * The hardened listener under the bundle endpoint (SPIFFE Trust Domain and Bundle, section
 * 5): HTTPS (or plain HTTP, only where the operator puts a TLS-terminating proxy in front),
 * GET of a few fixed paths, each answered with bytes its route gives. The server also
 * composes OIDC discovery (src/oidc) on this listener, with that room's routes.
 *
 * Threats it stops, all from anonymous clients on a public address:
 * - using the endpoint for anything but reading: only GET; another method is 405 with
 *   `Allow: GET`, an unknown path 404, a request with a body 413 (and the connection closed);
 * - exhausting it: a token bucket per client address (429 with `Retry-After`,
 *   federation/bundle-endpoint-rate), a bound on open connections, small header limits;
 * - slowloris: TLS handshakes, request headers, whole requests and idle keep-alive
 *   connections are each timed out;
 * - serving a stale identity: the TLS certificate comes from a provider and is replaced in
 *   place (`setSecureContext`) whenever it changes, so rotation needs no restart.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { RateLimiter, type RateLimit } from './bundle-endpoint-rate.js';

/** A certificate chain (leaf first) and its private key, PEM. */
export interface TlsIdentity {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Where the listener's TLS identity comes from (an X509-SVID the server mints, or files on disk). */
export interface TlsIdentityProvider {
  /** The identity to serve now; undefined until there is one. */
  current(): TlsIdentity | undefined;
  /** Told of every new identity; returns the unsubscribe. */
  onChange(listener: (identity: TlsIdentity) => void): () => void;
}

/** What a route answers a GET with. */
export interface RouteResponse {
  readonly body: Buffer;
  readonly contentType: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ListenerLimits {
  readonly rate: RateLimit;
  /** Most open connections (further ones are closed at once). */
  readonly maxConnections: number;
  /** Time for a client to send its request headers (ms). */
  readonly headersTimeoutMs: number;
  /** Time for a whole request (ms). */
  readonly requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this (ms). */
  readonly keepAliveTimeoutMs: number;
  /** Time for a TLS handshake, and the longest silence on any connection (ms). */
  readonly handshakeTimeoutMs: number;
  /** Largest request head accepted (bytes); a larger one is answered 431. */
  readonly maxHeaderBytes: number;
  /** Grace period for requests in flight at stop (ms). */
  readonly drainMs: number;
}

export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  rate: { perSecond: 20, burst: 40 },
  maxConnections: 256,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  handshakeTimeoutMs: 10_000,
  maxHeaderBytes: 8 * 1024,
  drainMs: 5_000,
};

export interface ReadOnlyListenerConfig {
  host: string;
  /** 0 picks a free port (see `port` after start). */
  port: number;
  /** The TLS identity; omitted = plain HTTP (only behind a TLS-terminating proxy). */
  tls?: TlsIdentityProvider;
  /** The answer for a GET of `path` (exact, no query), or undefined (404). */
  route: (path: string) => RouteResponse | undefined;
  limits?: Partial<ListenerLimits>;
  /** Milliseconds (injected clock for the rate limiter; default `Date.now`). */
  now?: () => number;
  /** Told of refusals worth a log line (TLS identity problems, route failures). */
  onError?: (err: unknown, what: string) => void;
}

/** A listener that serves GET of fixed paths and nothing else (see module doc). */
export class ReadOnlyListener {
  readonly #cfg: ReadOnlyListenerConfig;
  readonly #limits: ListenerLimits;
  readonly #rate: RateLimiter;
  #server: HttpServer | HttpsServer | undefined;
  #unsubscribe: (() => void) | undefined;
  #port = 0;
  /** Every TCP connection, TLS handshakes in progress included (Node's HTTP layer tracks only parsed ones). */
  readonly #sockets = new Set<Socket>();
  /** The response headers of each route answer, built once (routes hand out the same object until their bytes change). */
  readonly #headers = new WeakMap<RouteResponse, Record<string, string>>();

  constructor(cfg: ReadOnlyListenerConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.route !== 'function') throw new TypeError('ReadOnlyListener needs { host, port, route }');
    if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) throw new TypeError('port must be an integer from 0 to 65535');
    this.#cfg = cfg;
    this.#limits = { ...DEFAULT_LISTENER_LIMITS, ...cfg.limits };
    this.#rate = new RateLimiter({ ...this.#limits.rate, ...(cfg.now ? { now: cfg.now } : {}) });
  }

  /** The port bound (after `start`). */
  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    if (this.#server !== undefined) throw new TypeError('listener already started');
    const l = this.#limits;
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    const common = {
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: Math.max(l.requestTimeoutMs, l.headersTimeoutMs),
      keepAliveTimeout: l.keepAliveTimeoutMs,
      // How often Node checks the two timeouts above (its default, 30 s, lets a slow client linger).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(l.headersTimeoutMs / 4))),
    };
    let server: HttpServer | HttpsServer;
    const tls = this.#cfg.tls;
    if (tls !== undefined) {
      const id = tls.current();
      if (id === undefined) throw new TypeError('the TLS identity provider has no identity yet');
      const https = createHttpsServer({ ...common, cert: id.certPem, key: id.keyPem, handshakeTimeout: l.handshakeTimeoutMs, minVersion: 'TLSv1.2' }, handler);
      server = https;
      this.#unsubscribe = tls.onChange((next) => {
        try {
          https.setSecureContext({ cert: next.certPem, key: next.keyPem, minVersion: 'TLSv1.2' });
        } catch (err) {
          this.#cfg.onError?.(err, 'the new TLS identity does not load; still serving the previous one');
        }
      });
    } else {
      server = createHttpServer(common, handler);
    }
    server.maxConnections = l.maxConnections;
    // Any connection silent this long is closed: a TCP client that never starts its TLS
    // handshake too (the HTTP layer's own socket timeout replaces TLS's handshake timer).
    server.timeout = l.handshakeTimeoutMs;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Only an HTTP parse error or timeout gets an answer; a TLS error (a handshake timeout
      // among them) arrives before there is a channel to answer on.
      const http = typeof err.code === 'string' && (err.code.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT');
      if (!http || !socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#cfg.port, this.#cfg.host, () => {
        server.off('error', reject);
        const addr = server.address();
        this.#port = typeof addr === 'object' && addr !== null ? addr.port : this.#cfg.port;
        resolve();
      });
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const base = { 'x-content-type-options': 'nosniff' };
    const refuse = (status: number, text: string, extra: Record<string, string> = {}, close = false): void => {
      const body = `${text}\n`;
      res.writeHead(status, { ...base, 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), ...extra, ...(close ? { connection: 'close' } : {}) });
      res.end(body);
      if (close) req.socket.destroySoon();
    };
    const wait = this.#rate.take(req.socket.remoteAddress ?? 'unknown');
    if (wait > 0) return refuse(429, 'too many requests', { 'retry-after': String(wait) }, true);
    if (req.method !== 'GET') return refuse(405, 'method not allowed: only GET', { allow: 'GET' }, true);
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      return refuse(413, 'a request body is not accepted', {}, true);
    }
    const path = req.url ?? '';
    let r: RouteResponse | undefined;
    try {
      r = this.#cfg.route(path);
    } catch (err) {
      this.#cfg.onError?.(err, `answering GET ${path.slice(0, 100)} failed`);
      return refuse(503, 'not available', {}, true);
    }
    if (r === undefined) return refuse(404, 'not found');
    let headers = this.#headers.get(r);
    if (headers === undefined) {
      headers = { ...base, ...r.headers, 'content-type': r.contentType, 'content-length': String(r.body.length) };
      this.#headers.set(r, headers);
    }
    res.writeHead(200, headers);
    res.end(r.body);
  }

  /** Stops accepting, lets requests in flight finish (up to `drainMs`), then closes every connection. Idempotent. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        server.closeAllConnections();
        for (const s of this.#sockets) s.destroy();
        resolve();
      }, this.#limits.drainMs);
    });
    await Promise.race([closed, forced]);
    clearTimeout(timer);
    server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}
