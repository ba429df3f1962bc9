/**
 * @module sdk/sources
 *
 * Long-lived sources of SVIDs and bundles for a service: each keeps one Workload API watch
 * open, holds the latest state in memory, and reconnects with backoff when the agent goes
 * away (see `client.ts`). Reads are synchronous and never touch the network, so a TLS
 * handshake can ask for the current SVID without waiting.
 *
 * Threat: serving with stale or half-updated identities. A source swaps its whole state at
 * once when a complete, checked message arrives; a malformed message is reported and the
 * last good state is kept. `getX509Svid()` refuses to hand out an expired SVID rather than
 * let peers reject it obscurely.
 */
import { EventEmitter } from 'node:events';
import { Bundle, type BundleSet } from '../spiffe/bundle/index.js';
import type { MayflyError } from '../spiffe/errors.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { WorkloadApiClient, type CallOptions, type CancelWatch, type WorkloadApiClientConfig } from './client.js';
import { WorkloadApiError } from './errors.js';
import type { JwtSvid, X509Context, X509Svid } from './model.js';

export interface SourceConfig extends WorkloadApiClientConfig {
  /** Use this client instead of making one (the source then does not close it). */
  client?: WorkloadApiClient;
  /** Clock for expiry checks. */
  now?: () => Date;
}

export interface CreateSourceOptions {
  /**
   * Give up waiting for the first update after this long (the source is closed). `create()`
   * waits `DEFAULT_CREATE_TIMEOUT_MS` (30 s) when this is not given; `0` waits for ever.
   */
  timeoutMs?: number;
}

/** How long `X509Source.create()` and its siblings wait for the first update by default. */
export const DEFAULT_CREATE_TIMEOUT_MS = 30_000;

function tdName(td: TrustDomain | SpiffeId | string): string {
  if (td instanceof TrustDomain) return td.name;
  if (td instanceof SpiffeId) return td.trustDomain.name;
  return TrustDomain.parse(td).name;
}

/** Shared plumbing: one watch, ready promise, update/error events, close. */
abstract class WatchingSource<T> extends EventEmitter {
  protected readonly client: WorkloadApiClient;
  protected readonly now: () => Date;
  readonly #ownsClient: boolean;
  #cancels: CancelWatch[] = [];
  #value: T | undefined;
  #closed = false;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (err: unknown) => void;

  constructor(config: SourceConfig) {
    super();
    this.client = config.client ?? new WorkloadApiClient(config);
    this.#ownsClient = config.client === undefined;
    this.now = config.now ?? (() => new Date());
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.#ready.catch(() => undefined); // observed through ready()
  }

  protected addWatch(cancel: CancelWatch): void {
    this.#cancels.push(cancel);
  }

  protected get current(): T | undefined {
    return this.#value;
  }

  protected publish(value: T, ready = true): void {
    if (this.#closed) return;
    this.#value = value;
    if (ready) this.#resolveReady();
    this.emit('update', value);
  }

  protected fail(err: MayflyError, willRetry: boolean): void {
    if (this.#closed) return;
    if (!willRetry) this.#rejectReady(err);
    // An 'error' event with no listener would crash the process; only emit when someone listens.
    if (this.listenerCount('error') > 0) this.emit('error', err, willRetry);
  }

  /** Resolves after the first update; rejects if the watch ends for good first or on timeout. */
  async ready(opts: CreateSourceOptions = {}): Promise<void> {
    if (opts.timeoutMs === undefined) return this.#ready;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new WorkloadApiError('ERR_WORKLOAD_API_CALL', `no answer from the Workload API at ${this.client.endpoint.address} within ${opts.timeoutMs} ms: is the agent running and is this workload registered?`)),
        opts.timeoutMs,
      );
    });
    try {
      await Promise.race([this.#ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  protected requireValue(): T {
    if (this.#closed) throw new TypeError('the source is closed');
    if (this.#value === undefined) throw new WorkloadApiError('ERR_WORKLOAD_API_CALL', 'the source has no data yet: await ready() first');
    return this.#value;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops the watch (and closes the client when the source made it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#cancels) c();
    this.#cancels = [];
    if (this.#ownsClient) this.client.close();
    this.#rejectReady(new TypeError('the source was closed'));
    this.removeAllListeners();
  }
}

async function created<S extends WatchingSource<unknown>>(source: S, opts: CreateSourceOptions): Promise<S> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CREATE_TIMEOUT_MS;
  try {
    await source.ready(timeoutMs === 0 ? {} : { timeoutMs });
    return source;
  } catch (err) {
    source.close();
    throw err;
  }
}

export interface X509SourceConfig extends SourceConfig {
  /** Chooses the SVID to serve from several (default: `svids[0]`, the agent's default). */
  picker?: (svids: readonly X509Svid[]) => X509Svid;
}

/**
 * The latest X.509 context from FetchX509SVID. Events: `update` (X509Context),
 * `error` (err, willRetry) — only emitted when listened to.
 */
export class X509Source extends WatchingSource<X509Context> {
  readonly #picker: (svids: readonly X509Svid[]) => X509Svid;

  constructor(config: X509SourceConfig = {}) {
    super(config);
    this.#picker = config.picker ?? ((svids) => svids[0] as X509Svid);
    this.addWatch(this.client.watchX509Context((ctx) => this.publish(ctx), (err, retry) => this.fail(err, retry)));
  }

  /** A source that has its first X.509 context. */
  static create(config: X509SourceConfig & CreateSourceOptions = {}): Promise<X509Source> {
    return created(new X509Source(config), config);
  }

  getX509Context(): X509Context {
    return this.requireValue();
  }

  /** The SVID to present now. Throws if none yet, or if the agent let it expire. */
  getX509Svid(): X509Svid {
    const svid = this.#picker(this.requireValue().svids);
    if (svid.expiresAt.getTime() <= this.now().getTime()) {
      throw new WorkloadApiError('ERR_WORKLOAD_API_CALL', `the X509-SVID ${svid.id} expired at ${svid.expiresAt.toISOString()} and the agent has not sent a new one`);
    }
    return svid;
  }

  getX509Bundles(): BundleSet {
    return this.requireValue().bundles;
  }

  /** The X.509 CRLs (DER) of the latest context; the mTLS helpers refuse peers they list (sdk/crl-check). */
  getX509Crls(): readonly Buffer[] {
    return this.requireValue().crl;
  }

  /** The X.509 bundle of `td`; throws when this workload does not trust that trust domain. */
  getBundleForTrustDomain(td: TrustDomain | SpiffeId | string): Bundle {
    const name = tdName(td);
    const b = this.requireValue().bundles.get(name);
    if (!b) throw new WorkloadApiError('ERR_WORKLOAD_API_CALL', `no X.509 bundle for trust domain ${name}: it is neither this workload's nor federated with it`);
    return b;
  }
}

/**
 * The latest JWT bundles from FetchJWTBundles, plus JWT-SVID fetching (each call asks the
 * agent: JWT-SVIDs are audience-specific and short-lived).
 */
export class JwtSource extends WatchingSource<BundleSet> {
  constructor(config: SourceConfig = {}) {
    super(config);
    this.addWatch(this.client.watchJwtBundles((set) => this.publish(set), (err, retry) => this.fail(err, retry)));
  }

  static create(config: SourceConfig & CreateSourceOptions = {}): Promise<JwtSource> {
    return created(new JwtSource(config), config);
  }

  fetchJwtSvid(req: { audience: string | readonly string[]; spiffeId?: string | SpiffeId }, opts?: CallOptions): Promise<JwtSvid> {
    if (this.closed) return Promise.reject(new TypeError('the source is closed'));
    return this.client.fetchJwtSvid(req, opts);
  }

  fetchJwtSvids(req: { audience: string | readonly string[]; spiffeId?: string | SpiffeId }, opts?: CallOptions): Promise<JwtSvid[]> {
    if (this.closed) return Promise.reject(new TypeError('the source is closed'));
    return this.client.fetchJwtSvids(req, opts);
  }

  getJwtBundles(): BundleSet {
    return this.requireValue();
  }

  getBundleForTrustDomain(td: TrustDomain | SpiffeId | string): Bundle {
    const name = tdName(td);
    const b = this.requireValue().get(name);
    if (!b) throw new WorkloadApiError('ERR_WORKLOAD_API_CALL', `no JWT bundle for trust domain ${name}`);
    return b;
  }
}

/**
 * Both kinds of bundle (FetchX509Bundles and FetchJWTBundles), merged per trust domain:
 * `getBundleForTrustDomain` returns one Bundle with the X.509 roots and the JWT keys.
 * Ready once both streams have answered.
 */
export class BundleSource extends WatchingSource<Map<string, Bundle>> {
  #x509: BundleSet | undefined;
  #jwt: BundleSet | undefined;

  constructor(config: SourceConfig = {}) {
    super(config);
    const fail = (err: MayflyError, retry: boolean): void => this.fail(err, retry);
    this.addWatch(this.client.watchX509Bundles((set) => this.#merge(set, undefined), fail));
    this.addWatch(this.client.watchJwtBundles((set) => this.#merge(undefined, set), fail));
  }

  static create(config: SourceConfig & CreateSourceOptions = {}): Promise<BundleSource> {
    return created(new BundleSource(config), config);
  }

  #merge(x509: BundleSet | undefined, jwt: BundleSet | undefined): void {
    if (x509) this.#x509 = x509;
    if (jwt) this.#jwt = jwt;
    const names = new Set<string>();
    for (const b of this.#x509 ?? []) names.add(b.trustDomain.name);
    for (const b of this.#jwt ?? []) names.add(b.trustDomain.name);
    const merged = new Map<string, Bundle>();
    for (const name of names) {
      const x = this.#x509?.get(name);
      const j = this.#jwt?.get(name);
      merged.set(name, new Bundle({ trustDomain: (x ?? j)!.trustDomain, x509Authorities: x?.x509Authorities ?? [], jwtAuthorities: j?.jwtAuthorities ?? [] }));
    }
    this.publish(merged, this.#x509 !== undefined && this.#jwt !== undefined);
  }

  getBundleForTrustDomain(td: TrustDomain | SpiffeId | string): Bundle {
    const name = tdName(td);
    const b = this.requireValue().get(name);
    if (!b) throw new WorkloadApiError('ERR_WORKLOAD_API_CALL', `no bundle for trust domain ${name}`);
    return b;
  }

  /** Every trust domain's merged bundle. */
  getBundles(): Bundle[] {
    return [...this.requireValue().values()];
  }
}

