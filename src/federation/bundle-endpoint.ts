/**
 * @module federation/bundle-endpoint
 *
 * The trust domain's bundle endpoint (SPIFFE Trust Domain and Bundle, section 5): GET `/`
 * answers the bundle as SPIFFE bundle JSON (a JWKS with `spiffe_sequence` and
 * `spiffe_refresh_hint`), over TLS with one of the two profiles of section 5.2:
 * `https_spiffe` (an X509-SVID the server mints for itself) or `https_web` (a certificate
 * and key from disk, federation/bundle-endpoint-cert-file). The listener and its limits are
 * federation/bundle-endpoint-http's.
 *
 * Threat: leaking what is not the bundle. The document is `Bundle.toJson()` of the public
 * view: X.509 authorities as `x5c`, JWT keys' public halves, the sequence and refresh
 * hint; nothing the datastore keeps beside them (owners, expiry, taint marks) and no
 * private key can reach it, since a `Bundle` holds none. The bytes are rebuilt whenever the
 * source hands out a new bundle (each rotation makes one), so no restart is needed.
 */
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { ReadOnlyListener, type ListenerLimits, type RouteResponse, type TlsIdentityProvider } from './bundle-endpoint-http.js';

/** The bundle to serve: the trust domain's current one (a new object on every change). */
export interface BundleSource {
  bundle(): Bundle;
}

export interface BundleEndpointConfig {
  host: string;
  /** 0 picks a free port (see `port` after start). */
  port: number;
  source: BundleSource;
  /** The endpoint's TLS identity (`https_spiffe`: the server's SVID; `https_web`: files). */
  tls: TlsIdentityProvider;
  limits?: Partial<ListenerLimits>;
  /** Milliseconds, for the rate limiter (default `Date.now`). */
  now?: () => number;
  onError?: (err: unknown, what: string) => void;
}

/** The one path served. */
export const BUNDLE_ENDPOINT_PATH = '/';

export class BundleEndpoint {
  readonly #listener: ReadOnlyListener;
  readonly #source: BundleSource;
  #cached: { bundle: Bundle; response: RouteResponse } | undefined;

  constructor(cfg: BundleEndpointConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.source === undefined || cfg.tls === undefined) {
      throw new TypeError('BundleEndpoint needs { host, port, source, tls }');
    }
    this.#source = cfg.source;
    this.#listener = new ReadOnlyListener({
      host: cfg.host,
      port: cfg.port,
      tls: cfg.tls,
      route: (path) => (path === BUNDLE_ENDPOINT_PATH ? this.response() : undefined),
      ...(cfg.limits ? { limits: cfg.limits } : {}),
      ...(cfg.now ? { now: cfg.now } : {}),
      ...(cfg.onError ? { onError: cfg.onError } : {}),
    });
  }

  get port(): number {
    return this.#listener.port;
  }

  /** What GET `/` answers now (the document bytes are rebuilt only when the bundle changed). */
  response(): RouteResponse {
    const bundle = this.#source.bundle();
    if (this.#cached?.bundle !== bundle) {
      this.#cached = {
        bundle,
        response: { body: Buffer.from(bundle.toJson(), 'utf8'), contentType: 'application/json', headers: { 'cache-control': 'no-cache' } },
      };
    }
    return this.#cached.response;
  }

  start(): Promise<void> {
    return this.#listener.start();
  }

  stop(): Promise<void> {
    return this.#listener.stop();
  }
}
