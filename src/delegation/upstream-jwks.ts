/**
 * @module delegation/upstream-jwks
 *
 * The upstream user-token issuer's keys found by OIDC discovery (OpenID Connect Discovery
 * 1.0 §4, RFC 8414 §3): the discovery document is fetched over HTTPS, its `issuer` must be
 * exactly the pinned issuer (§4.3) and its `jwks_uri` an https URL; the JWKS behind it is
 * kept, refreshed every `refreshIntervalMs`, and refetched on demand when a token names a
 * `kid` we do not hold (a key rotation at the issuer), at most once per
 * `minRefetchIntervalMs` however many such tokens arrive. A failed refresh keeps the last
 * good JWKS; while none was ever fetched (the issuer down at start) `current()` is
 * undefined, the exchange answers `temporarily_unavailable` (HTTP 503), and fetches are
 * retried with a capped backoff. The server's start never waits on the issuer for long
 * (`ready()` settles after the first attempt, success or not).
 *
 * Threats: keys injected by whoever can answer for another issuer (issuer pinned in the
 * document, https only, redirects refused: delegation/https-get); an attacker forcing
 * fetch storms with made-up `kid`s (one fetch in flight, rate-limited, and only for tokens
 * that already name the pinned issuer and a pinned algorithm); a hostile issuer exhausting
 * memory or time (bounded body, timeout); a JWKS with no usable key replacing a good one
 * (refused, the old one kept).
 */
import type { JSONWebKeySet } from 'jose';
import { FetchRefusal, httpsGetJson } from './https-get.js';

export const DEFAULT_REFRESH_INTERVAL_MS = 5 * 60_000;
export const DEFAULT_MIN_REFETCH_INTERVAL_MS = 30_000;
const FIRST_RETRY_MS = 1_000;

export interface UpstreamJwksLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export type SetTimer = (fn: () => void, ms: number) => { cancel(): void };

export interface DiscoveredJwksConfig {
  /** The discovery document's URL (https). */
  discoveryUrl: URL;
  /** The pinned issuer: the document's `issuer` must equal it. */
  issuer: string;
  /** PEM roots trusted instead of the system roots. */
  ca?: string;
  refreshIntervalMs?: number;
  minRefetchIntervalMs?: number;
  maxResponseBytes?: number;
  timeoutMs?: number;
  logger?: UpstreamJwksLogger;
  now?: () => number;
  setTimer?: SetTimer;
}

const realTimer: SetTimer = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
};

/** Checks a discovery document against the pinned issuer; returns the JWKS URL. */
export function jwksUriOf(doc: Record<string, unknown>, issuer: string, where: string): URL {
  if (doc.issuer !== issuer) throw new FetchRefusal(`${where}: the discovery document's issuer ${JSON.stringify(doc.issuer)} is not the pinned ${JSON.stringify(issuer)} (OIDC Discovery §4.3)`);
  const raw = doc.jwks_uri;
  if (typeof raw !== 'string') throw new FetchRefusal(`${where}: the discovery document has no jwks_uri`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new FetchRefusal(`${where}: jwks_uri ${JSON.stringify(raw.slice(0, 200))} is not a URL`);
  }
  if (u.protocol !== 'https:') throw new FetchRefusal(`${where}: jwks_uri ${u.href} is not https; keys are fetched over https only`);
  return u;
}

function checkJwks(doc: Record<string, unknown>, where: string): JSONWebKeySet {
  const keys = doc.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))) {
    throw new FetchRefusal(`${where}: not a JWKS (expected {"keys": [ … ]} with at least one key)`);
  }
  return doc as unknown as JSONWebKeySet;
}

export class DiscoveredJwks {
  readonly #cfg: DiscoveredJwksConfig;
  readonly #now: () => number;
  readonly #setTimer: SetTimer;
  readonly #refreshMs: number;
  readonly #minRefetchMs: number;
  #jwks: JSONWebKeySet | undefined;
  #inFlight: Promise<void> | undefined;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #timer: { cancel(): void } | undefined;
  #failures = 0;
  #stopped = false;
  #first: Promise<void> | undefined;
  readonly #abort = new AbortController();

  constructor(cfg: DiscoveredJwksConfig) {
    if (cfg.discoveryUrl.protocol !== 'https:') throw new TypeError(`discovery URL ${cfg.discoveryUrl.href} is not https`);
    this.#cfg = cfg;
    this.#now = cfg.now ?? Date.now;
    this.#setTimer = cfg.setTimer ?? realTimer;
    this.#refreshMs = cfg.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
    this.#minRefetchMs = Math.min(cfg.minRefetchIntervalMs ?? DEFAULT_MIN_REFETCH_INTERVAL_MS, this.#refreshMs);
  }

  /** The last good JWKS, or undefined while none was fetched. */
  current(): JSONWebKeySet | undefined {
    return this.#jwks;
  }

  /** Starts fetching (once); the promise settles after the first attempt, never rejects. */
  ready(): Promise<void> {
    this.#first ??= this.#fetch();
    return this.#first;
  }

  /**
   * Refetches now, unless a fetch is in flight (its promise is returned) or the last one
   * began less than `minRefetchIntervalMs` ago (resolves at once). Never rejects.
   */
  refresh(): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    if (this.#stopped || this.#now() - this.#lastAttempt < this.#minRefetchMs) return Promise.resolve();
    return this.#fetch();
  }

  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #fetch(): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    this.#lastAttempt = this.#now();
    this.#timer?.cancel();
    this.#timer = undefined;
    const p = this.#fetchOnce().then(
      (jwks) => {
        const rotated = this.#jwks !== undefined && JSON.stringify(this.#jwks) !== JSON.stringify(jwks);
        if (this.#jwks === undefined || rotated) {
          this.#cfg.logger?.info({ issuer: this.#cfg.issuer, kids: jwks.keys.map((k) => k.kid ?? null) }, `delegation upstream: ${rotated ? 'new' : 'fetched'} JWKS of ${this.#cfg.issuer}`);
        }
        if (this.#jwks === undefined || rotated) this.#jwks = jwks;
        this.#failures = 0;
        this.#schedule(this.#refreshMs);
      },
      (err: unknown) => {
        if (this.#stopped) return;
        this.#failures++;
        const keep = this.#jwks !== undefined;
        this.#cfg.logger?.warn(
          { issuer: this.#cfg.issuer, discovery_url: this.#cfg.discoveryUrl.href, failures: this.#failures, error: (err as Error).message },
          `delegation upstream: cannot fetch the keys of ${this.#cfg.issuer}: ${(err as Error).message}${keep ? ' (keeping the last good JWKS)' : ' (token exchanges answer temporarily_unavailable until keys are fetched)'}`,
        );
        this.#schedule(keep ? this.#refreshMs : Math.min(FIRST_RETRY_MS * 2 ** (this.#failures - 1), this.#refreshMs));
      },
    );
    this.#inFlight = p.finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    this.#timer = this.#setTimer(() => {
      this.#timer = undefined;
      void this.#fetch();
    }, ms);
  }

  async #fetchOnce(): Promise<JSONWebKeySet> {
    const o = { ...(this.#cfg.ca !== undefined ? { ca: this.#cfg.ca } : {}), maxBytes: this.#cfg.maxResponseBytes, timeoutMs: this.#cfg.timeoutMs, signal: this.#abort.signal };
    const where = this.#cfg.discoveryUrl.href;
    const doc = await httpsGetJson(this.#cfg.discoveryUrl, o);
    const jwksUri = jwksUriOf(doc, this.#cfg.issuer, where);
    return checkJwks(await httpsGetJson(jwksUri, o), jwksUri.href);
  }
}
