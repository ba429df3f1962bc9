/**
 * @module federation/poller
 *
 * The peer bundle fetcher: for every federation relationship, fetch the peer's bundle
 * (federation/fetch), judge it (federation/accept) and store it, at the peer's
 * `spiffe_refresh_hint`, bounded; with exponential backoff and jitter while it fails;
 * `refresh(td)` fetches one now (the TrustDomain API's RefreshBundle).
 *
 * Timing (seconds; every bound is a config field):
 * - after a success, the next fetch is `spiffe_refresh_hint` (300 when the bundle has none,
 *   the SPIFFE default) clamped to [minIntervalSeconds = 10, maxIntervalSeconds = 3600]: a
 *   peer cannot make us poll it in a busy loop, nor stop us hearing of its rotation for
 *   more than an hour;
 * - after the n-th failure in a row, `min(backoffMaxSeconds = 300, backoffInitialSeconds =
 *   1 × 2^(n-1))` with equal jitter (half of it fixed, half random), so many servers
 *   retrying one peer spread out;
 * - relationships are re-read every `resyncSeconds = 30` (servers sharing a PostgreSQL
 *   datastore hear of each other's relationships) and at once on `relationshipsChanged()`.
 *
 * Threats it stops (with fetch.ts and accept.ts, which say how):
 * - a hostile or broken peer endpoint replacing a good bundle with a bad one: every refusal
 *   keeps the stored bundle, logs one line naming the peer and the reason, and counts the
 *   reason (FetcherMetrics);
 * - a peer CA rotation cutting federation: `https_spiffe` authenticates the endpoint with
 *   the bundle already stored, so a peer that publishes its next CA before it uses it (as
 *   SPIRE and Mayfly do: prepare, then activate) is followed across the rotation.
 *
 * Two servers on one datastore both poll; the write is last-writer-wins and each checks the
 * sequence against what it read, so at worst an equal bundle is written twice.
 * It stores through the small interface it declares (`PeerBundleStore`).
 */
import { parseBundle } from '../spiffe/bundle/parse.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { acceptPeerBundle } from './accept.js';
import { FederationError } from './federation-error.js';
import { DEFAULT_MAX_BODY_BYTES, fetchBundleDocument, type FetchAuth } from './fetch.js';
import { parseBundleEndpointUrl } from './profile.js';
import { BundleRefusal, type RefusalReason } from './refusal.js';

/** A relationship as the store keeps it (datastore `FederationRelationship` fits). */
export interface PeerRelationship {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly bundleEndpointProfile: 'https_web' | 'https_spiffe';
  readonly endpointSpiffeId: string;
}

/** What the poller reads and writes (a subset of the datastore). */
export interface PeerBundleStore {
  listFederationRelationships(query?: { pageSize?: number; pageToken?: string }): Promise<{ items: readonly PeerRelationship[]; nextPageToken: string }>;
  getBundle(trustDomain: string): Promise<{ readonly bundle: string; readonly sequence: number } | undefined>;
  setBundle(bundle: { trustDomain: string; bundle: string; sequence: number }): Promise<unknown>;
}

export interface FetcherMetrics {
  /** A fetch of `trustDomain`'s bundle was refused for `reason` (the stored bundle was kept). */
  refused(trustDomain: string, reason: RefusalReason): void;
  /** A fetch succeeded at `at` (the bundle was stored, or was unchanged). */
  refreshed(trustDomain: string, at: Date): void;
}

export interface FetcherLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Runs `fn` after `ms`; returns the cancel function. Default: an unref'd setTimeout. */
export type SetTimer = (fn: () => void, ms: number) => () => void;

export interface BundlePollerConfig {
  store: PeerBundleStore;
  /** The server's own trust domain: never fetched. */
  ownTrustDomain: string;
  logger: FetcherLogger;
  metrics?: FetcherMetrics;
  /** Told after a peer bundle was stored (the server publishes a change notice, so agents get it by push). */
  onBundleStored?: (trustDomain: string) => void;
  now?: () => Date;
  setTimer?: SetTimer;
  /** In [0, 1) (jitter). Default Math.random. */
  random?: () => number;
  minIntervalSeconds?: number;
  maxIntervalSeconds?: number;
  /** When the bundle has no `spiffe_refresh_hint`. */
  defaultIntervalSeconds?: number;
  backoffInitialSeconds?: number;
  backoffMaxSeconds?: number;
  resyncSeconds?: number;
  /** Roots added to the system's for `https_web` (an operator's private PKI, or tests). */
  webPkiExtraRoots?: readonly Uint8Array[];
  maxBodyBytes?: number;
  connectTimeoutMs?: number;
  totalTimeoutMs?: number;
}

interface PeerState {
  rel: PeerRelationship;
  cancel?: () => void;
  failures: number;
  running?: Promise<void>;
  /** The delay of the fetch scheduled last (ms). */
  nextDelayMs?: number;
}

const defaultSetTimer: SetTimer = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

const sameRelationship = (a: PeerRelationship, b: PeerRelationship): boolean =>
  a.bundleEndpointUrl === b.bundleEndpointUrl && a.bundleEndpointProfile === b.bundleEndpointProfile && a.endpointSpiffeId === b.endpointSpiffeId;

export class BundlePoller {
  readonly #cfg: BundlePollerConfig;
  readonly #now: () => Date;
  readonly #setTimer: SetTimer;
  readonly #peers = new Map<string, PeerState>();
  #resyncCancel: (() => void) | undefined;
  #syncing: Promise<void> | undefined;
  #stopped = false;
  #started = false;

  constructor(cfg: BundlePollerConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.store === undefined || typeof cfg.ownTrustDomain !== 'string' || cfg.logger === undefined) {
      throw new TypeError('BundlePoller needs { store, ownTrustDomain, logger }');
    }
    this.#cfg = cfg;
    this.#now = cfg.now ?? (() => new Date());
    this.#setTimer = cfg.setTimer ?? defaultSetTimer;
  }

  /** Reads the relationships and schedules a first fetch of each at once. */
  async start(): Promise<void> {
    if (this.#started) throw new TypeError('BundlePoller already started');
    this.#started = true;
    await this.#sync();
  }

  /** Cancels every scheduled fetch and waits for those under way (bounded by their timeouts). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#resyncCancel?.();
    for (const p of this.#peers.values()) p.cancel?.();
    await Promise.allSettled([...this.#peers.values()].map((p) => p.running));
    await this.#syncing?.catch(() => undefined);
  }

  /** The trust domains polled, in no particular order. */
  get trustDomains(): string[] {
    return [...this.#peers.keys()];
  }

  /** The delay (ms) of the next scheduled fetch of `trustDomain`. */
  nextDelayMs(trustDomain: string): number | undefined {
    return this.#peers.get(trustDomain)?.nextDelayMs;
  }

  relationshipsChanged(): void {
    if (this.#stopped) return;
    void this.#sync().catch((err: unknown) => this.#cfg.logger.warn({ err }, 'reading federation relationships failed; trying again later'));
  }

  /** Fetches `trustDomain`'s bundle now; rejects with the BundleRefusal when it was refused. */
  async refresh(trustDomain: string): Promise<void> {
    if (!this.#peers.has(trustDomain)) await this.#sync();
    const p = this.#peers.get(trustDomain);
    if (p === undefined) throw new FederationError('ERR_FEDERATION_INVALID', `no federation relationship with ${trustDomain}`);
    await p.running?.catch(() => undefined);
    await this.#run(p, true);
  }

  #sync(): Promise<void> {
    this.#syncing ??= this.#readRelationships().finally(() => {
      this.#syncing = undefined;
      this.#scheduleResync();
    });
    return this.#syncing;
  }

  #scheduleResync(): void {
    if (this.#stopped) return;
    this.#resyncCancel?.();
    this.#resyncCancel = this.#setTimer(() => this.relationshipsChanged(), (this.#cfg.resyncSeconds ?? 30) * 1000);
  }

  async #readRelationships(): Promise<void> {
    const seen = new Map<string, PeerRelationship>();
    let pageToken = '';
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await this.#cfg.store.listFederationRelationships({ pageSize: 1000, pageToken });
      for (const r of page.items) if (r.trustDomain !== this.#cfg.ownTrustDomain) seen.set(r.trustDomain, r);
      if (page.nextPageToken === '') break;
      pageToken = page.nextPageToken;
    }
    if (this.#stopped) return;
    for (const [td, p] of this.#peers) {
      if (!seen.has(td)) {
        p.cancel?.();
        this.#peers.delete(td);
        this.#cfg.logger.info({ trustDomain: td }, 'federation relationship removed: no longer fetching its bundle');
      }
    }
    for (const [td, rel] of seen) {
      const p = this.#peers.get(td);
      if (p === undefined) {
        const fresh: PeerState = { rel, failures: 0 };
        this.#peers.set(td, fresh);
        this.#schedule(fresh, 0);
      } else if (!sameRelationship(p.rel, rel)) {
        p.rel = rel;
        p.failures = 0;
        this.#schedule(p, 0);
      }
    }
  }

  #schedule(p: PeerState, ms: number): void {
    p.cancel?.();
    if (this.#stopped || this.#peers.get(p.rel.trustDomain) !== p) return;
    p.nextDelayMs = ms;
    p.cancel = this.#setTimer(() => {
      p.cancel = undefined;
      void this.#run(p, false).catch(() => undefined);
    }, ms);
  }

  /** One fetch of `p`; a timer's fetch is skipped while another runs. Reschedules either way. */
  #run(p: PeerState, forced: boolean): Promise<void> {
    if (p.running !== undefined && !forced) return p.running;
    const run = this.#fetchOnce(p).finally(() => {
      if (p.running === run) p.running = undefined;
    });
    p.running = run;
    return run;
  }

  async #fetchOnce(p: PeerState): Promise<void> {
    const rel = p.rel;
    const cfg = this.#cfg;
    const where = `bundle endpoint ${rel.bundleEndpointUrl} of ${rel.trustDomain}`;
    try {
      const td = TrustDomain.parse(rel.trustDomain);
      const url = parseBundleEndpointUrl(rel.bundleEndpointUrl);
      const stored = await cfg.store.getBundle(td.name);
      const maxBytes = cfg.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
      let auth: FetchAuth;
      let endpointId: SpiffeId | undefined;
      if (rel.bundleEndpointProfile === 'https_spiffe') {
        endpointId = SpiffeId.parse(rel.endpointSpiffeId);
        const trusted = endpointId.trustDomain.equals(td) ? stored : await cfg.store.getBundle(endpointId.trustDomain.name);
        let x509Authorities: readonly Buffer[] = [];
        if (trusted !== undefined) {
          try {
            x509Authorities = parseBundle(trusted.bundle, endpointId.trustDomain, { maxBytes: 4 * 1024 * 1024 }).x509Authorities;
          } catch (err) {
            throw new BundleRefusal('no_trust_bundle', `${where}: the stored bundle of ${endpointId.trustDomain.name} does not parse (${(err as Error).message}); set a good one with bundle set`);
          }
        }
        auth = { profile: 'https_spiffe', endpointSpiffeId: endpointId, x509Authorities };
      } else {
        auth = { profile: 'https_web', ...(cfg.webPkiExtraRoots !== undefined ? { extraRoots: cfg.webPkiExtraRoots } : {}) };
      }
      const fetched = await fetchBundleDocument({
        trustDomain: td,
        url,
        auth,
        now: this.#now,
        maxBodyBytes: maxBytes,
        ...(cfg.connectTimeoutMs !== undefined ? { connectTimeoutMs: cfg.connectTimeoutMs } : {}),
        ...(cfg.totalTimeoutMs !== undefined ? { totalTimeoutMs: cfg.totalTimeoutMs } : {}),
      });
      const bundle = acceptPeerBundle({
        trustDomain: td,
        body: fetched.body,
        ...(stored !== undefined ? { storedSequence: stored.sequence } : {}),
        ...(fetched.endpointChain !== undefined && endpointId !== undefined ? { endpoint: { chain: fetched.endpointChain, spiffeId: endpointId } } : {}),
        now: this.#now(),
        maxBytes,
        where,
      });
      const json = bundle.toJson();
      if (stored?.bundle !== json) {
        try {
          await cfg.store.setBundle({ trustDomain: td.name, bundle: json, sequence: bundle.sequence ?? 0 });
        } catch (err) {
          throw new BundleRefusal('store_failed', `${where}: storing its bundle failed: ${(err as Error).message}`, { cause: err });
        }
        cfg.logger.info(
          { trustDomain: td.name, sequence: bundle.sequence ?? 0, x509Authorities: bundle.x509Authorities.length, jwtAuthorities: bundle.jwtAuthorities.size },
          'federated bundle updated from its bundle endpoint',
        );
        cfg.onBundleStored?.(td.name);
      }
      cfg.metrics?.refreshed(td.name, this.#now());
      p.failures = 0;
      this.#schedule(p, this.#intervalMs(bundle.refreshHintSeconds));
    } catch (err) {
      const r = err instanceof BundleRefusal ? err : new BundleRefusal('store_failed', `${where}: ${(err as Error).message}`, { cause: err });
      cfg.logger.warn({ trustDomain: rel.trustDomain, bundleEndpointUrl: rel.bundleEndpointUrl, reason: r.reason }, `federated bundle refused, keeping the stored one: ${r.message}`);
      cfg.metrics?.refused(rel.trustDomain, r.reason);
      p.failures += 1;
      this.#schedule(p, this.#backoffMs(p.failures));
      throw r;
    }
  }

  #intervalMs(hint: number | undefined): number {
    const min = this.#cfg.minIntervalSeconds ?? 10;
    const max = this.#cfg.maxIntervalSeconds ?? 3600;
    const s = hint === undefined || hint === 0 ? (this.#cfg.defaultIntervalSeconds ?? 300) : hint;
    return Math.min(max, Math.max(min, s)) * 1000;
  }

  #backoffMs(failures: number): number {
    const initial = this.#cfg.backoffInitialSeconds ?? 1;
    const cap = this.#cfg.backoffMaxSeconds ?? 300;
    const d = Math.min(cap, initial * 2 ** Math.min(failures - 1, 30)) * 1000;
    const r = (this.#cfg.random ?? Math.random)();
    return Math.round(d / 2 + (d / 2) * r);
  }
}
