/**
 * @module agent/workload-views
 *
 * The workload-facing side of the agent's SVID cache (cache.ts): Workload API subscribers,
 * the state each selector set is entitled to ("views"), and the fan-out of changes to them.
 *
 * Why views are shared: what a workload is entitled to depends only on its selectors, so the
 * `WorkloadUpdate` for a selector set is computed once and the very same object is handed
 * to every caller and subscriber with those selectors until the cache's state changes or
 * time alone would change it (the first NotAfter or entry expiry it holds). The Workload API
 * endpoint builds and encodes that object's message once, so a new call whose selectors
 * were seen before costs no work that grows with the entries.
 *
 * Why the fan-out is batched: every notice carries the full state for every open stream,
 * which is costly with many. Updates that change nothing workloads see (a taint, a sequence
 * bump, a stream reopened) notify no one, and a real change notifies `NOTIFY_BATCH`
 * subscribers per turn of the event loop: HTTP/2 sends after each turn, so the first
 * streams' messages are already on their way while the rest are still written, instead of
 * all waiting for the last write.
 *
 * Threat it stops: a workload receiving an identity it is not entitled to. A view serves
 * only entries whose selectors are all among the caller's (subset match, SPIRE semantics),
 * each only with the SVID minted for that entry, never past its NotAfter or the entry's
 * expiry.
 */
import { createHash } from 'node:crypto';
import type { RegistrationEntry } from '../registration/entry.js';
import { entryMatchesSelectors } from '../registration/selector.js';
import type { TrustDomain } from '../spiffe/id.js';
import type { BundleMaterial, Selector, WorkloadUpdate, X509Identity } from '../workloadapi/identities.js';
import type { AgentLogger } from './logger.js';
import type { CachedX509Svid } from './x509-accept.js';

/** A bundle as workloads are served it. */
export interface ServedBundle {
  readonly material: BundleMaterial;
}

/** What the views read from the SVID cache (always its current state). */
export interface WorkloadViewSource {
  /** Live authorised entries, in the order their SVIDs are served (`svids[0]` first). */
  entries(): readonly RegistrationEntry[];
  /** The X509-SVID held for an entry. */
  svid(entryId: string): Pick<CachedX509Svid, 'spiffeId' | 'certChain' | 'privateKeyPkcs8' | 'notAfter'> | undefined;
  /** True when the server refused this entry's SVID (it is not waited for). */
  failed(entryId: string): boolean;
  /** The trust domain's bundle; undefined before the first update. */
  bundle(): ServedBundle | undefined;
  /** Federated bundles by trust domain name. */
  federated(): ReadonlyMap<string, ServedBundle>;
  /** The server's X.509 CRLs (DER), served in the `crl` fields (issue 10). */
  crls?(): readonly Buffer[];
  /** Why entry templates the caller matches yield it no identity (template-instances.ts). */
  refusals?(selectors: readonly Selector[]): readonly string[];
}

export interface WorkloadViewsConfig {
  source: WorkloadViewSource;
  trustDomain: TrustDomain;
  now: () => Date;
  logger: AgentLogger;
}

interface Subscriber {
  readonly selectors: readonly Selector[];
  /** selectorSetKey(selectors): subscribers with equal keys are entitled to the same. */
  readonly key: string;
  readonly onUpdate: (u: WorkloadUpdate) => void;
}

interface View {
  readonly update: WorkloadUpdate | undefined;
  readonly validUntil: number;
}

/**
 * Subscribers notified per turn of the event loop. With many Workload API streams, the
 * messages of the first ones are already on their way (HTTP/2 sends after each turn) while
 * the rest are still written, instead of all waiting for the last write.
 */
const NOTIFY_BATCH = 64;
/** Selector sets whose computed state is kept between changes (see `#views`). */
const MAX_VIEWS = 4096;

/**
 * A digest of what Workload API callers see of an update besides their SVIDs: the entries
 * as served and the bundle material (not the bundle's sequence). An update that leaves it
 * unchanged (a taint, a sequence bump, a stream reopened) notifies no subscriber: each
 * notice encodes the full state for every open stream, which is costly with many.
 */
function viewKeyOf(entries: readonly RegistrationEntry[], bundle: ServedBundle, fed: ReadonlyMap<string, ServedBundle>, crls: readonly Buffer[] = []): string {
  const h = createHash('sha256');
  // A new CRL is news for every workload: it is in both Workload API responses.
  for (const c of crls) h.update(createHash('sha256').update(c).digest());
  h.update(JSON.stringify(entries.map((e) => [e.entryId, e.spiffeId, e.selectors, e.hint, e.federatesWith, e.expiresAt])));
  for (const [name, m] of [['', bundle] as const, ...[...fed].sort((a, b) => (a[0] < b[0] ? -1 : 1))]) {
    h.update(`\n${name}\n`).update(m.material.x509Authorities).update('\n').update(m.material.jwks);
  }
  return h.digest('hex');
}

/** A canonical key for a set of selectors (order and duplicates do not matter). */
function selectorSetKey(selectors: readonly Selector[]): string {
  return JSON.stringify([...new Set(selectors.map((s) => JSON.stringify([s.type, s.value])))].sort());
}

export class WorkloadViews {
  readonly #src: WorkloadViewSource;
  readonly #trustDomain: TrustDomain;
  readonly #now: () => Date;
  readonly #log: AgentLogger;
  #closed = false;
  /** viewKeyOf the last state announced (`publish`). */
  #viewKey = '';
  readonly #subscribers = new Set<Subscriber>();
  /**
   * `updateFor` results per selector set (selectorSetKey), kept until the cache's state
   * changes (`invalidate`) or time alone would change them (`validUntil`, ms: the first
   * NotAfter or entry expiry among what they hold). A new Workload API call whose selectors
   * were seen before then gets the very same `WorkloadUpdate` object, whose message the
   * endpoint has already built and encoded: no per-call work that grows with the entries.
   */
  readonly #views = new Map<string, View>();
  /** The notification pass in progress (`notifyAll`): subscribers still to notify, in order. */
  #notifyQueue: Subscriber[] = [];
  #notifyPos = 0;
  #notifyTurn: NodeJS.Immediate | undefined;
  readonly #notifyDrained = new Set<() => void>();

  constructor(cfg: WorkloadViewsConfig) {
    this.#src = cfg.source;
    this.#trustDomain = cfg.trustDomain;
    this.#now = cfg.now;
    this.#log = cfg.logger;
  }

  /** Adds a subscriber and gives it the current state at once (if complete). */
  subscribe(selectors: readonly Selector[], onUpdate: (update: WorkloadUpdate) => void): () => void {
    const sub: Subscriber = { selectors: [...selectors], key: selectorSetKey(selectors), onUpdate };
    this.#subscribers.add(sub);
    this.#notify(sub);
    return () => {
      this.#subscribers.delete(sub);
    };
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** The live entries whose selectors are all among `selectors`, in serving order. */
  matching(selectors: readonly Selector[], nowMs = this.#now().getTime()): RegistrationEntry[] {
    const nowSec = Math.floor(nowMs / 1000);
    return this.#src.entries().filter((e) => (e.expiresAt === 0 || e.expiresAt > nowSec) && entryMatchesSelectors(e.selectors, selectors));
  }

  /**
   * The state for `selectors`, or undefined while one of its entries still awaits its first
   * X509-SVID (sending a partial set would make `svids[0]` change under the workload, and
   * an empty one would end its stream with PERMISSION_DENIED).
   */
  updateFor(selectors: readonly Selector[]): WorkloadUpdate | undefined {
    return this.#viewFor(selectorSetKey(selectors), selectors);
  }

  /** Forgets every computed view: call on any change of entries, SVIDs, failures or bundles. */
  invalidate(): void {
    this.#views.clear();
  }

  /**
   * Notifies every subscriber if what workloads see besides their SVIDs (entries as served,
   * bundle material) differs from the last state published; call after a full update.
   */
  publish(): void {
    const bundle = this.#src.bundle();
    if (bundle === undefined) return;
    const viewKey = viewKeyOf(this.#src.entries(), bundle, this.#src.federated(), this.#src.crls?.() ?? []);
    if (viewKey !== this.#viewKey) {
      this.#viewKey = viewKey;
      this.notifyAll();
    }
  }

  /**
   * Notifies every subscriber, `NOTIFY_BATCH` per turn of the event loop (the first batch at
   * once). Subscribers with the same selector set share one `WorkloadUpdate` object (what
   * they are entitled to depends only on their selectors), so the Workload API encodes it
   * once for all of them. Each subscriber gets the state current when its turn comes; a
   * change during a pass starts a new pass over every subscriber (every message is the full
   * state, and the endpoint skips one identical to the last it sent).
   */
  notifyAll(): void {
    this.#notifyQueue = [...this.#subscribers];
    this.#notifyPos = 0;
    this.#drainNotifications();
  }

  /** True while a notification pass waits for its next turn. */
  get notifying(): boolean {
    return this.#notifyTurn !== undefined;
  }

  /** Resolves when the notification pass in progress ends; undefined when there is none. */
  drained(): Promise<void> | undefined {
    if (this.#notifyTurn === undefined) return undefined;
    return new Promise<void>((r) => this.#notifyDrained.add(r));
  }

  /** Ends the notification pass in progress and every subscription's updates. */
  close(): void {
    this.#closed = true;
    this.invalidate();
    if (this.#notifyTurn !== undefined) clearImmediate(this.#notifyTurn);
    this.#notifyTurn = undefined;
    this.#notifyQueue = [];
    for (const r of [...this.#notifyDrained]) r();
    this.#notifyDrained.clear();
    this.#subscribers.clear();
  }

  #viewFor(key: string, selectors: readonly Selector[]): WorkloadUpdate | undefined {
    const nowMs = this.#now().getTime();
    const kept = this.#views.get(key);
    if (kept !== undefined && nowMs < kept.validUntil) return kept.update;
    const view = this.#compute(selectors, nowMs);
    if (this.#views.size >= MAX_VIEWS) this.#views.clear();
    this.#views.set(key, view);
    return view.update;
  }

  #compute(selectors: readonly Selector[], nowMs: number): View {
    const bundle = this.#src.bundle();
    if (bundle === undefined) return { update: undefined, validUntil: -Infinity };
    let validUntil = Infinity;
    const identities: X509Identity[] = [];
    const hints = new Set<string>();
    const federated = new Map<string, BundleMaterial>();
    const fed = this.#src.federated();
    for (const e of this.matching(selectors, nowMs)) {
      const s = this.#src.svid(e.entryId);
      if (s === undefined || s.spiffeId !== e.spiffeId) {
        if (!this.#src.failed(e.entryId)) return { update: undefined, validUntil };
        continue;
      }
      // What is served changes by time alone when this entry expires or this SVID does.
      if (e.expiresAt !== 0) validUntil = Math.min(validUntil, e.expiresAt * 1000);
      for (const td of e.federatesWith) {
        const m = fed.get(td);
        if (m !== undefined) federated.set(`spiffe://${td}`, m.material);
      }
      if (s.notAfter.getTime() <= nowMs) continue;
      validUntil = Math.min(validUntil, s.notAfter.getTime());
      // Hints must be unique within a response: the first entry (oldest) keeps a hint.
      if (e.hint !== '') {
        if (hints.has(e.hint)) continue;
        hints.add(e.hint);
      }
      const id: X509Identity = { spiffeId: s.spiffeId, certificates: s.certChain, privateKeyPkcs8: s.privateKeyPkcs8, ...(e.hint !== '' ? { hint: e.hint } : {}) };
      identities.push(id);
    }
    const refusals = this.#src.refusals?.(selectors) ?? [];
    return {
      update: {
        identities,
        bundle: { ...bundle.material, trustDomain: this.#trustDomain.idString },
        federatedBundles: federated,
        crl: this.#src.crls?.() ?? [],
        ...(refusals.length > 0 ? { refusals } : {}),
      },
      validUntil,
    };
  }

  #notify(sub: Subscriber): void {
    const u = this.#viewFor(sub.key, sub.selectors);
    if (u === undefined) return;
    try {
      sub.onUpdate(u);
    } catch (err) {
      this.#log.warn({ err }, 'Workload API subscriber failed');
    }
  }

  #drainNotifications(): void {
    const queue = this.#notifyQueue;
    const end = Math.min(queue.length, this.#notifyPos + NOTIFY_BATCH);
    while (this.#notifyPos < end) {
      const sub = queue[this.#notifyPos++] as Subscriber;
      if (this.#subscribers.has(sub)) this.#notify(sub);
    }
    if (this.#notifyPos < queue.length && !this.#closed) {
      this.#notifyTurn ??= setImmediate(() => {
        this.#notifyTurn = undefined;
        this.#drainNotifications();
      });
      return;
    }
    this.#notifyQueue = [];
    this.#notifyPos = 0;
    for (const r of [...this.#notifyDrained]) r();
    this.#notifyDrained.clear();
  }
}
