/**
 * @module agent/cache
 *
 * The agent's SVID cache: it holds the authorised entries the server pushed, signs ahead an
 * X509-SVID for each (key generated here, EC P-256; CSRs to the server in batches), renews
 * each at half its lifetime ± 10 %, caches JWT-SVIDs per (SPIFFE ID, audience set), and
 * answers the Workload API endpoint (`WorkloadIdentities`).
 *
 * Threats it stops:
 * - a workload receiving an identity it is not entitled to: an identity is served only for
 *   an entry whose selectors are all among the caller's (subset match, SPIRE semantics),
 *   and only with the certificate minted for that entry, whose URI SAN must equal the
 *   entry's SPIFFE ID and whose chain must verify against the current bundle before the
 *   cache keeps it (a buggy or hostile answer for another ID is dropped);
 * - serving stale material: an SVID is never served past its NotAfter; entries that
 *   disappear from the server's push take their identities (and JWT-SVIDs) with them; an
 *   SVID whose chain no longer verifies against a new bundle (its authority removed after a
 *   taint or revocation) is re-issued at once. The server API does not mark tainted
 *   authorities in the pushed bundle, so taint is only seen once the authority leaves it.
 * - the Workload API depending on the server: everything is served from memory; only a
 *   first JWT-SVID for a (SPIFFE ID, audience) pair waits for the server.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { attestWorkload, type WorkloadAttestor } from '../attestors/workload/attestor.js';
import type { RegistrationEntry } from '../registration/entry.js';
import { entryMatchesSelectors } from '../registration/selector.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { BundleSet } from '../spiffe/bundle/set.js';
import { MayflyError } from '../spiffe/errors.js';
import type { TrustDomain } from '../spiffe/id.js';
import { DEFAULT_KEY_TYPE, exportPkcs8Der, generateKeyPair, type KeyType } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import type {
  BundleMaterial,
  IssuedJwtSvid,
  JwtSvidRequest,
  PeerCredentials,
  Selector,
  WorkloadIdentities,
  WorkloadUpdate,
  X509Identity,
} from '../workloadapi/identities.js';
import { Backoff, renewalTime, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import type { AuthorizedUpdate, IssuedJwtSvidWire, NewX509SvidResult } from './server-client.js';

/** The server calls the cache makes (the agent routes them to its current client). */
export interface SvidIssuer {
  newX509Svids(batch: readonly { entryId: string; csr: Buffer }[]): Promise<NewX509SvidResult[]>;
  newJwtSvid(entryId: string, audience: readonly string[]): Promise<IssuedJwtSvidWire>;
}

export interface SvidCacheConfig {
  trustDomain: TrustDomain;
  issuer: SvidIssuer;
  workloadAttestors: readonly WorkloadAttestor[];
  scheduler: Scheduler;
  /** Uniform [0, 1): renewal jitter and backoff (tests pin it). */
  random?: () => number;
  logger?: AgentLogger;
  /** CSRs per BatchNewX509SVID call (default 500, the server's limit). */
  maxBatch?: number;
  /** Key type of workload SVIDs (default EC P-256). */
  keyType?: KeyType;
  /** Largest number of cached JWT-SVIDs (default 10,000); expired ones go first. */
  maxJwtSvids?: number;
}

/** One X509-SVID held for one entry. */
export interface CachedX509Svid {
  readonly entryId: string;
  readonly spiffeId: string;
  /** Sorted DNS names it was requested with (a changed entry needs a new SVID). */
  readonly dnsKey: string;
  readonly certChain: readonly Buffer[];
  readonly privateKeyPkcs8: Buffer;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly renewAt: Date;
  /** Its chain no longer verifies against the current bundle: re-issue now. */
  stale: boolean;
}

interface CachedJwt {
  readonly spiffeId: string;
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

interface Subscriber {
  readonly selectors: readonly Selector[];
  readonly onUpdate: (u: WorkloadUpdate) => void;
}

interface Material {
  readonly bundle: Bundle;
  readonly material: BundleMaterial;
}

/** Per-entry failure retry: the server refused this one item. */
const ENTRY_RETRY_MS = 30_000;

function materialOf(b: Bundle): Material {
  return { bundle: b, material: { x509Authorities: b.x509AuthoritiesDer(), jwks: b.jwksForWorkloadApi() } };
}

function compareEntries(a: RegistrationEntry, b: RegistrationEntry): number {
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0;
}

function dnsKeyOf(e: RegistrationEntry): string {
  return [...e.dnsNames].sort().join(',');
}

/** Cache key of a JWT-SVID: the SPIFFE ID and the sorted, de-duplicated audience set. */
export function jwtCacheKey(spiffeId: string, audience: readonly string[]): string {
  return JSON.stringify([spiffeId, [...new Set(audience)].sort()]);
}

export class SvidCache implements WorkloadIdentities {
  readonly #cfg: SvidCacheConfig;
  readonly #log: AgentLogger;
  readonly #random: () => number;
  readonly #sched: Scheduler;
  readonly #maxBatch: number;
  readonly #maxJwt: number;
  #entries: RegistrationEntry[] = [];
  #entryById = new Map<string, RegistrationEntry>();
  readonly #svids = new Map<string, CachedX509Svid>();
  /** entryId → when to try again after the server refused that item. */
  readonly #failed = new Map<string, number>();
  #bundle: Material | undefined;
  #federated = new Map<string, Material>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #jwt = new Map<string, CachedJwt>();
  readonly #jwtInflight = new Map<string, Promise<CachedJwt>>();
  #inflight: Promise<void> | undefined;
  #again = false;
  #serverRetryAt = 0;
  readonly #backoff: Backoff;
  #cancelTimer: (() => void) | undefined;
  #closed = false;
  #sequence = -1;
  /**
   * Order in which this agent first saw each entry. `createdAt` has one-second resolution,
   * so entries created in the same second are ordered by arrival (then by ID), which keeps
   * `svids[0]` from changing when a newer entry arrives.
   */
  readonly #firstSeen = new Map<string, number>();
  #seenCounter = 0;

  constructor(cfg: SvidCacheConfig) {
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#random = cfg.random ?? Math.random;
    this.#sched = cfg.scheduler;
    this.#maxBatch = cfg.maxBatch ?? 500;
    this.#maxJwt = cfg.maxJwtSvids ?? 10_000;
    this.#backoff = new Backoff({ random: this.#random });
  }

  /** True once the first authorised-entry update has been applied. */
  get ready(): boolean {
    return this.#bundle !== undefined;
  }

  /** The server trust domain's current bundle, if any. */
  get bundle(): Bundle | undefined {
    return this.#bundle?.bundle;
  }

  /** The trust domain bundle and the federated ones (for JWT-SVID validation). */
  bundles(): BundleSet {
    const set = new BundleSet();
    for (const m of this.#federated.values()) set.set(m.bundle);
    if (this.#bundle !== undefined) set.set(this.#bundle.bundle);
    return set;
  }

  /** The X509-SVID held for an entry (tests, diagnostics). */
  svidFor(entryId: string): CachedX509Svid | undefined {
    return this.#svids.get(entryId);
  }

  get entryCount(): number {
    return this.#entries.length;
  }

  /** Resolves when no issuance is in flight (tests). */
  async settled(): Promise<void> {
    while (this.#inflight !== undefined) await this.#inflight;
  }

  /** Applies the server's full authorised state. */
  applyUpdate(u: AuthorizedUpdate): void {
    if (this.#closed) return;
    if (!u.bundle.trustDomain.equals(this.#cfg.trustDomain)) {
      this.#log.warn({ trustDomain: u.bundle.trustDomain.name }, 'ignoring authorised-entry update: its bundle is for another trust domain');
      return;
    }
    if (u.sequence <= this.#sequence) this.#log.debug({ sequence: u.sequence }, 'authorised-entry stream restarted');
    this.#sequence = u.sequence;
    const now = this.#sched.now();
    const nowSec = Math.floor(now.getTime() / 1000);
    const live = u.entries.filter((e) => e.expiresAt === 0 || e.expiresAt > nowSec);
    for (const e of [...live].sort(compareEntries)) if (!this.#firstSeen.has(e.entryId)) this.#firstSeen.set(e.entryId, ++this.#seenCounter);
    const seen = (e: RegistrationEntry): number => this.#firstSeen.get(e.entryId) ?? 0;
    const entries = live.sort((a, b) => (a.createdAt !== b.createdAt ? a.createdAt - b.createdAt : seen(a) - seen(b)));
    const byId = new Map(entries.map((e) => [e.entryId, e]));
    for (const id of [...this.#firstSeen.keys()]) if (!byId.has(id)) this.#firstSeen.delete(id);
    for (const id of [...this.#svids.keys()]) if (!byId.has(id)) this.#svids.delete(id);
    for (const id of [...this.#failed.keys()]) if (!byId.has(id)) this.#failed.delete(id);
    this.#entries = entries;
    this.#entryById = byId;
    const ids = new Set(entries.map((e) => e.spiffeId));
    for (const [k, v] of this.#jwt) if (!ids.has(v.spiffeId)) this.#jwt.delete(k);

    const bundleChanged = this.#bundle === undefined || !this.#bundle.bundle.equals(u.bundle);
    if (bundleChanged) {
      this.#bundle = materialOf(u.bundle);
      // An SVID whose chain no longer reaches the bundle (authority removed) is re-issued now.
      for (const s of this.#svids.values()) {
        if (!this.#verifies(s.certChain, now)) {
          s.stale = true;
          this.#log.info({ entryId: s.entryId, spiffeId: s.spiffeId }, 'X509-SVID no longer chains to the bundle; re-issuing');
        }
      }
    }
    const fed = new Map<string, Material>();
    for (const b of u.federatedBundles) {
      if (b.trustDomain.equals(this.#cfg.trustDomain)) continue;
      const old = this.#federated.get(b.trustDomain.name);
      fed.set(b.trustDomain.name, old !== undefined && old.bundle.equals(b) ? old : materialOf(b));
    }
    this.#federated = fed;
    this.#notifyAll();
    this.#kick();
  }

  #verifies(chain: readonly Buffer[], now: Date): boolean {
    const b = this.#bundle?.bundle;
    if (b === undefined) return false;
    try {
      verifyX509Svid(chain, { trustDomain: this.#cfg.trustDomain, x509Authorities: b.x509Authorities }, { now });
      return true;
    } catch {
      return false;
    }
  }

  #due(e: RegistrationEntry, nowMs: number): boolean {
    const retry = this.#failed.get(e.entryId);
    if (retry !== undefined && retry > nowMs) return false;
    const s = this.#svids.get(e.entryId);
    if (s === undefined) return true;
    return s.stale || s.spiffeId !== e.spiffeId || s.dnsKey !== dnsKeyOf(e) || nowMs >= s.renewAt.getTime() || nowMs >= s.notAfter.getTime();
  }

  /** Starts an issuance pass, or asks the running one to go again. */
  #kick(): void {
    if (this.#closed) return;
    if (this.#inflight !== undefined) {
      this.#again = true;
      return;
    }
    this.#inflight = (async () => {
      do {
        this.#again = false;
        await this.#issuePass();
      } while (this.#again && !this.#closed);
    })()
      .catch((err: unknown) => this.#log.error({ err }, 'X509-SVID issuance failed unexpectedly'))
      .finally(() => {
        this.#inflight = undefined;
        this.#reschedule();
      });
  }

  async #issuePass(): Promise<void> {
    const nowMs = this.#sched.now().getTime();
    if (this.#serverRetryAt > nowMs) return;
    const due = this.#entries.filter((e) => this.#due(e, nowMs));
    if (due.length === 0) return;
    for (let i = 0; i < due.length && !this.#closed; i += this.#maxBatch) {
      const chunk = due.slice(i, i + this.#maxBatch);
      const keys = new Map<string, KeyObject>();
      const batch = chunk.map((e) => {
        const kp = generateKeyPair(this.#cfg.keyType ?? DEFAULT_KEY_TYPE);
        keys.set(e.entryId, kp.privateKey);
        return { entryId: e.entryId, csr: createCsr({ privateKey: kp.privateKey }) };
      });
      let results: NewX509SvidResult[];
      try {
        results = await this.#cfg.issuer.newX509Svids(batch);
      } catch (err) {
        const delay = this.#backoff.next();
        this.#serverRetryAt = this.#sched.now().getTime() + delay;
        this.#log.warn({ err, entries: chunk.length, retryInMs: delay }, 'cannot get X509-SVIDs from the server; serving cached SVIDs until they expire');
        return;
      }
      this.#backoff.reset();
      this.#serverRetryAt = 0;
      const now = this.#sched.now();
      for (const r of results) {
        const key = keys.get(r.entryId);
        const entry = this.#entryById.get(r.entryId);
        if (key === undefined || entry === undefined) continue; // not ours, or removed meanwhile
        if (!r.ok) {
          this.#failed.set(r.entryId, now.getTime() + ENTRY_RETRY_MS);
          this.#log.warn({ entryId: r.entryId, code: r.code, message: r.message }, 'server refused an X509-SVID for entry');
          continue;
        }
        const cached = this.#accept(entry, r.svid.certChain, key, now);
        if (cached === undefined) {
          this.#failed.set(r.entryId, now.getTime() + ENTRY_RETRY_MS);
          continue;
        }
        this.#failed.delete(r.entryId);
        this.#svids.set(entry.entryId, cached);
      }
      this.#notifyAll();
    }
  }

  /** Checks an SVID the server returned for `entry` before keeping it. */
  #accept(entry: RegistrationEntry, chain: readonly Buffer[], key: KeyObject, now: Date): CachedX509Svid | undefined {
    const reject = (why: string): undefined => {
      this.#log.error({ entryId: entry.entryId, spiffeId: entry.spiffeId }, `discarding X509-SVID from the server: ${why}`);
      return undefined;
    };
    if (chain.length === 0) return reject('empty certificate chain');
    let leaf;
    try {
      leaf = parseCertificate(chain[0] as Buffer);
    } catch (err) {
      return reject(`leaf cannot be parsed (${(err as Error).message})`);
    }
    if (leaf.uriSans.length !== 1 || leaf.uriSans[0] !== entry.spiffeId) return reject(`its URI SAN ${JSON.stringify(leaf.uriSans)} is not the entry's SPIFFE ID`);
    const pub = createPublicKey(key).export({ type: 'spki', format: 'der' });
    if (!pub.equals(leaf.spki)) return reject('it does not certify the key this agent generated');
    if (!this.#verifies(chain, now)) return reject('it does not verify against the trust bundle');
    return {
      entryId: entry.entryId,
      spiffeId: entry.spiffeId,
      dnsKey: dnsKeyOf(entry),
      certChain: chain.map((c) => Buffer.from(c)),
      privateKeyPkcs8: exportPkcs8Der(key),
      serialHex: leaf.serialHex,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      renewAt: renewalTime(leaf.notBefore, leaf.notAfter, this.#random),
      stale: false,
    };
  }

  /** Arms one timer for the next renewal, expiry or retry. */
  #reschedule(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    const nowMs = this.#sched.now().getTime();
    let next = Infinity;
    const consider = (t: number): void => {
      if (t > nowMs && t < next) next = t;
    };
    for (const s of this.#svids.values()) {
      consider(s.renewAt.getTime());
      consider(s.notAfter.getTime());
    }
    for (const t of this.#failed.values()) consider(t);
    consider(this.#serverRetryAt);
    if (next === Infinity) return;
    this.#cancelTimer = this.#sched.at(new Date(next), () => {
      this.#cancelTimer = undefined;
      this.#onTimer();
    });
  }

  #onTimer(): void {
    if (this.#closed) return;
    const nowMs = this.#sched.now().getTime();
    let expired = false;
    for (const s of this.#svids.values()) if (s.notAfter.getTime() <= nowMs) expired = true;
    if (expired) {
      for (const s of this.#svids.values()) {
        if (s.notAfter.getTime() <= nowMs) this.#log.warn({ entryId: s.entryId, spiffeId: s.spiffeId, notAfter: s.notAfter.toISOString() }, 'X509-SVID expired before it could be renewed; no longer served');
      }
      this.#notifyAll();
    }
    this.#kick();
  }

  // ------------------------------------------------------------ WorkloadIdentities

  async attest(caller: PeerCredentials): Promise<Selector[]> {
    if (!this.ready) throw new MayflyError('ERR_AGENT_NOT_READY', 'the agent has not received its authorised entries from the server yet');
    return attestWorkload(this.#cfg.workloadAttestors, caller.pid);
  }

  subscribe(selectors: readonly Selector[], onUpdate: (update: WorkloadUpdate) => void): () => void {
    if (!this.ready) throw new MayflyError('ERR_AGENT_NOT_READY', 'the agent has not received its authorised entries from the server yet');
    const sub: Subscriber = { selectors: [...selectors], onUpdate };
    this.#subscribers.add(sub);
    this.#notify(sub);
    return () => {
      this.#subscribers.delete(sub);
    };
  }

  /** Number of live Workload API subscriptions (tests, metrics). */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  #matching(selectors: readonly Selector[]): RegistrationEntry[] {
    const nowSec = Math.floor(this.#sched.now().getTime() / 1000);
    return this.#entries.filter((e) => (e.expiresAt === 0 || e.expiresAt > nowSec) && entryMatchesSelectors(e.selectors, selectors));
  }

  /**
   * The state for `selectors`, or undefined while one of its entries still awaits its first
   * X509-SVID (sending a partial set would make `svids[0]` change under the workload, and
   * an empty one would end its stream with PERMISSION_DENIED).
   */
  updateFor(selectors: readonly Selector[]): WorkloadUpdate | undefined {
    const bundle = this.#bundle;
    if (bundle === undefined) return undefined;
    const nowMs = this.#sched.now().getTime();
    const identities: X509Identity[] = [];
    const hints = new Set<string>();
    const federated = new Map<string, BundleMaterial>();
    for (const e of this.#matching(selectors)) {
      const s = this.#svids.get(e.entryId);
      if (s === undefined || s.spiffeId !== e.spiffeId) {
        if (!this.#failed.has(e.entryId)) return undefined;
        continue;
      }
      for (const td of e.federatesWith) {
        const m = this.#federated.get(td);
        if (m !== undefined) federated.set(`spiffe://${td}`, m.material);
      }
      if (s.notAfter.getTime() <= nowMs) continue;
      // Hints must be unique within a response: the first entry (oldest) keeps a hint.
      if (e.hint !== '') {
        if (hints.has(e.hint)) continue;
        hints.add(e.hint);
      }
      const id: X509Identity = { spiffeId: s.spiffeId, certificates: s.certChain, privateKeyPkcs8: s.privateKeyPkcs8, ...(e.hint !== '' ? { hint: e.hint } : {}) };
      identities.push(id);
    }
    return {
      identities,
      bundle: { ...bundle.material, trustDomain: this.#cfg.trustDomain.idString },
      federatedBundles: federated,
    };
  }

  #notify(sub: Subscriber): void {
    const u = this.updateFor(sub.selectors);
    if (u === undefined) return;
    try {
      sub.onUpdate(u);
    } catch (err) {
      this.#log.warn({ err }, 'Workload API subscriber failed');
    }
  }

  #notifyAll(): void {
    for (const sub of [...this.#subscribers]) this.#notify(sub);
  }

  async fetchJwtSvid(selectors: readonly Selector[], request: JwtSvidRequest): Promise<IssuedJwtSvid[]> {
    if (!this.ready) throw new MayflyError('ERR_AGENT_NOT_READY', 'the agent has not received its authorised entries from the server yet');
    const audience = [...new Set(request.audience)].sort();
    if (audience.length === 0) throw new TypeError('fetchJwtSvid needs at least one audience');
    const seen = new Set<string>();
    const picked: RegistrationEntry[] = [];
    for (const e of this.#matching(selectors)) {
      if (request.spiffeId !== undefined && e.spiffeId !== request.spiffeId) continue;
      if (seen.has(e.spiffeId)) continue;
      seen.add(e.spiffeId);
      picked.push(e);
    }
    const out = await Promise.all(picked.map(async (e) => ({ e, jwt: await this.#jwtFor(e, audience) })));
    return out.map(({ e, jwt }) => ({ spiffeId: jwt.spiffeId, token: jwt.token, ...(e.hint !== '' ? { hint: e.hint } : {}) }));
  }

  async #jwtFor(e: RegistrationEntry, audience: readonly string[]): Promise<CachedJwt> {
    const key = jwtCacheKey(e.spiffeId, audience);
    const nowSec = this.#sched.now().getTime() / 1000;
    const cached = this.#jwt.get(key);
    if (cached !== undefined && nowSec < cached.issuedAt + (cached.expiresAt - cached.issuedAt) / 2) return cached;
    let pending = this.#jwtInflight.get(key);
    if (pending === undefined) {
      pending = (async () => {
        const w = await this.#cfg.issuer.newJwtSvid(e.entryId, audience);
        if (w.spiffeId !== e.spiffeId) throw new MayflyError('ERR_AGENT_SERVER_CALL', `server minted a JWT-SVID for ${w.spiffeId}, not for ${e.spiffeId}`);
        const j: CachedJwt = { spiffeId: w.spiffeId, token: w.token, issuedAt: w.issuedAt, expiresAt: w.expiresAt };
        if (this.#entryById.get(e.entryId)?.spiffeId === e.spiffeId) this.#storeJwt(key, j);
        return j;
      })().finally(() => this.#jwtInflight.delete(key));
      this.#jwtInflight.set(key, pending);
    }
    try {
      return await pending;
    } catch (err) {
      // Past half-life but still valid: keep serving it while the server is away.
      if (cached !== undefined && this.#sched.now().getTime() / 1000 < cached.expiresAt) {
        this.#log.warn({ err, spiffeId: e.spiffeId }, 'cannot re-mint JWT-SVID; serving the cached one until it expires');
        return cached;
      }
      throw err;
    }
  }

  #storeJwt(key: string, j: CachedJwt): void {
    this.#jwt.delete(key);
    this.#jwt.set(key, j);
    if (this.#jwt.size <= this.#maxJwt) return;
    const nowSec = this.#sched.now().getTime() / 1000;
    for (const [k, v] of this.#jwt) if (v.expiresAt <= nowSec) this.#jwt.delete(k);
    // Still too many: drop the least recently minted (Map keeps insertion order).
    for (const k of this.#jwt.keys()) {
      if (this.#jwt.size <= this.#maxJwt) break;
      this.#jwt.delete(k);
    }
  }

  /** Number of cached JWT-SVIDs (tests). */
  get jwtCacheSize(): number {
    return this.#jwt.size;
  }

  /** Stops timers and ends every subscription's updates. */
  close(): void {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#subscribers.clear();
  }
}
