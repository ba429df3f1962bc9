/**
 * @module agent/cache
 *
 * The agent's SVID cache: it holds the authorised entries the server pushed and an
 * X509-SVID signed ahead for each, caches JWT-SVIDs per (SPIFFE ID, audience set), and
 * answers the Workload API endpoint (`WorkloadIdentities`; subscribers, the per-selector-set
 * views and the notification fan-out are in workload-views.ts). When to ask the server for
 * X509-SVIDs (key generated here, EC P-256; CSRs in batches; renewal at half the lifetime
 * ± 10 %) is rotation.ts; this module keeps what comes back.
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
 *   revocation) is re-issued at once; so is one whose chain involves an authority the
 *   server names as tainted (taint.ts), without waiting for half-life, and JWT-SVIDs
 *   signed with a tainted key are dropped so the next fetch re-mints them.
 * - the Workload API depending on the server: everything is served from memory; only a
 *   first JWT-SVID for a (SPIFFE ID, audience) pair waits for the server.
 * - one entitled workload exhausting the agent's memory with JWT-SVIDs for ever new
 *   audience sets: the JWT cache is bounded in bytes and per SPIFFE ID (jwt-cache.ts).
 */
import type { KeyObject } from 'node:crypto';
import { attestWorkload, type WorkloadAttestor } from '../attestors/workload/attestor.js';
import type { RegistrationEntry } from '../registration/entry.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { BundleSet } from '../spiffe/bundle/set.js';
import { MayflyError } from '../spiffe/errors.js';
import type { TrustDomain } from '../spiffe/id.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import type {
  IssuedJwtSvid,
  JwtSvidRequest,
  PeerCredentials,
  Selector,
  WorkloadIdentities,
  WorkloadUpdate,
} from '../workloadapi/identities.js';
import type { Scheduler } from './clock.js';
import { JwtSvidCache, type JwtSvidCacheStats } from './jwt-cache.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import { X509SvidRotation, type X509SvidIssuer, type X509SvidRotationConfig } from './rotation.js';
import type { AuthorizedUpdate, IssuedJwtSvidWire } from './server-client.js';
import { acceptX509Svid, type CachedX509Svid } from './x509-accept.js';
import { isChainTainted, isJwtTainted, NO_TAINTED_AUTHORITIES, taintedAuthoritiesOf, type TaintedAuthorities } from './taint.js';
import { WorkloadViews, type ServedBundle } from './workload-views.js';
import { TemplateInstances } from './template-instances.js';
import type { NewX509SvidRequest, TemplateInstanceRequest } from './server-client.js';
import { isChainRevoked, NO_REVOCATIONS, revokedSerialsOf, type RevokedSerials } from './revocation.js';

export { jwtCacheKey } from './jwt-cache.js';
export type { CachedX509Svid } from './x509-accept.js';

/** The server calls the cache makes (the agent routes them to its current client). */
export interface SvidIssuer extends X509SvidIssuer {
  /** `template`: for an entry-template instance, the ID and selector values (template-instances.ts). */
  newJwtSvid(entryId: string, audience: readonly string[], template?: TemplateInstanceRequest): Promise<IssuedJwtSvidWire>;
}

/** What the cache reports as it works (the agent's metrics implement it; agent/metrics). */
export interface SvidCacheRecorder {
  /** An X509-SVID was replaced by a newer one for the same entry (renewal, taint, bundle change). */
  x509SvidRotated(): void;
}

/** `maxBatch`, `maxConcurrentBatches` and `keyType` shape the issuance passes (rotation.ts). */
export interface SvidCacheConfig extends Pick<X509SvidRotationConfig, 'maxBatch' | 'maxConcurrentBatches' | 'keyType'> {
  trustDomain: TrustDomain;
  issuer: SvidIssuer;
  workloadAttestors: readonly WorkloadAttestor[];
  scheduler: Scheduler;
  /** Uniform [0, 1): renewal jitter and backoff (tests pin it). */
  random?: () => number;
  logger?: AgentLogger;
  /** Largest number of cached JWT-SVIDs (default 10,000); expired ones go first. */
  maxJwtSvids?: number;
  /** Largest estimated memory of the cached JWT-SVIDs, bytes (default 16 MiB; jwt-cache.ts). */
  maxJwtSvidBytes?: number;
  /** Largest number of audience sets cached per SPIFFE ID (default 64). */
  maxJwtSvidsPerIdentity?: number;
  recorder?: SvidCacheRecorder;
}

/** A bundle the cache holds: the `Bundle` and its Workload API form (what workload-views serves). */
interface CachedBundle extends ServedBundle {
  readonly bundle: Bundle;
}

function cachedBundleOf(b: Bundle): CachedBundle {
  return { bundle: b, material: { x509Authorities: b.x509AuthoritiesDer(), jwks: b.jwksForWorkloadApi() } };
}

function compareEntries(a: RegistrationEntry, b: RegistrationEntry): number {
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0;
}

export class SvidCache implements WorkloadIdentities {
  readonly #cfg: SvidCacheConfig;
  readonly #log: AgentLogger;
  readonly #random: () => number;
  readonly #sched: Scheduler;
  #tainted: TaintedAuthorities = NO_TAINTED_AUTHORITIES;
  /** The revoked serials the last update's CRLs list (revocation.ts; issue 10). */
  #revoked: RevokedSerials = NO_REVOCATIONS;
  #entries: RegistrationEntry[] = [];
  /** The update's non-template entries; `#entries` adds the template instances to them. */
  #base: RegistrationEntry[] = [];
  /** Entry templates and the instances callers' selectors made of them (template-instances.ts). */
  readonly #templates: TemplateInstances;
  #entryById = new Map<string, RegistrationEntry>();
  readonly #svids = new Map<string, CachedX509Svid>();
  /** The trust domain's own bundle (the agent's server's). */
  #trustDomainBundle: CachedBundle | undefined;
  #federated = new Map<string, CachedBundle>();
  /** Subscribers, per-selector-set views and the notification fan-out: workload-views.ts. */
  readonly #workload: WorkloadViews;
  /** JWT-SVIDs per (SPIFFE ID, audience set): jwt-cache.ts. */
  readonly #jwt: JwtSvidCache;
  /** Issuance passes and the renewal timer: rotation.ts. */
  readonly #rotation: X509SvidRotation;
  #closed = false;
  #sequence = -1;
  /** When the trust domain bundle last changed (as this agent saw it). */
  #bundleSince: Date | undefined;
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
    this.#templates = new TemplateInstances({ logger: this.#log });
    this.#jwt = new JwtSvidCache({
      mint: (entryId, audience) => {
        const t = this.#templates.request(entryId);
        return t === undefined ? this.#cfg.issuer.newJwtSvid(entryId, audience) : this.#cfg.issuer.newJwtSvid(t.templateId, audience, t);
      },
      isCurrent: (e) => this.#entryById.get(e.entryId)?.spiffeId === e.spiffeId,
      now: () => this.#sched.now(),
      log: this.#log,
      maxSize: cfg.maxJwtSvids,
      maxBytes: cfg.maxJwtSvidBytes,
      maxPerIdentity: cfg.maxJwtSvidsPerIdentity,
    });
    this.#workload = new WorkloadViews({
      source: {
        entries: () => this.#entries,
        // A revoked SVID is never served: the view waits for its replacement (issued at once).
        svid: (entryId) => {
          const s = this.#svids.get(entryId);
          return s !== undefined && isChainRevoked(s.certChain, this.#revoked) ? undefined : s;
        },
        failed: (entryId) => this.#rotation.hasFailed(entryId),
        crls: () => this.#revoked.crls,
        refusals: (selectors) => this.#templates.refusals(selectors),
        bundle: () => this.#trustDomainBundle,
        federated: () => this.#federated,
      },
      trustDomain: cfg.trustDomain,
      now: () => this.#sched.now(),
      logger: this.#log,
    });
    this.#rotation = new X509SvidRotation({
      subject: {
        entries: () => this.#entries,
        entry: (entryId) => this.#entryById.get(entryId),
        svid: (entryId) => this.#svids.get(entryId),
        svids: () => this.#svids.values(),
        keep: (entry, chain, key, now) => this.#keep(entry, chain, key, now),
        issued: () => {
          this.#workload.invalidate();
          this.#workload.notifyAll();
        },
        timerFired: () => this.#timerFired(),
      },
      issuer: { newX509Svids: (batch) => this.#newX509Svids(batch) },
      scheduler: cfg.scheduler,
      random: this.#random,
      logger: this.#log,
      maxBatch: cfg.maxBatch,
      maxConcurrentBatches: cfg.maxConcurrentBatches,
      keyType: cfg.keyType,
    });
  }

  /** True once the first authorised-entry update has been applied. */
  get ready(): boolean {
    return this.#trustDomainBundle !== undefined;
  }

  /** The server trust domain's current bundle, if any. */
  get bundle(): Bundle | undefined {
    return this.#trustDomainBundle?.bundle;
  }

  /** The trust domain bundle and the federated ones (for JWT-SVID validation). */
  bundles(): BundleSet {
    const set = new BundleSet();
    for (const m of this.#federated.values()) set.set(m.bundle);
    if (this.#trustDomainBundle !== undefined) set.set(this.#trustDomainBundle.bundle);
    return set;
  }

  /** When the trust domain's bundle the agent holds was first received (it changes when the server's CA rotates). */
  get bundleUpdatedAt(): Date | undefined {
    return this.#bundleSince;
  }

  /** Number of X509-SVIDs held (metrics). */
  get x509SvidCount(): number {
    return this.#svids.size;
  }

  /** The X509-SVID held for an entry (tests, diagnostics). */
  svidFor(entryId: string): CachedX509Svid | undefined {
    return this.#svids.get(entryId);
  }

  get entryCount(): number {
    return this.#entries.length;
  }

  /** True when no issuance is in flight and no notification pass is under way. */
  get idle(): boolean {
    return this.#rotation.inflight === undefined && !this.#workload.notifying;
  }

  /** Resolves when no issuance is in flight and every subscriber has been notified (tests). */
  async settled(): Promise<void> {
    for (;;) {
      const inflight = this.#rotation.inflight;
      if (inflight !== undefined) {
        await inflight;
        continue;
      }
      const drained = this.#workload.drained();
      if (drained === undefined) return;
      await drained;
    }
  }

  /** Applies the server's full authorised state. */
  applyUpdate(u: AuthorizedUpdate): void {
    if (this.#closed) return;
    this.#workload.invalidate();
    if (!u.bundle.trustDomain.equals(this.#cfg.trustDomain)) {
      this.#log.warn({ trustDomain: u.bundle.trustDomain.name }, 'ignoring authorised-entry update: its bundle is for another trust domain');
      return;
    }
    if (u.sequence <= this.#sequence) this.#log.debug({ sequence: u.sequence }, 'authorised-entry stream restarted');
    this.#sequence = u.sequence;
    const now = this.#sched.now();
    const nowSec = Math.floor(now.getTime() / 1000);
    const live = u.entries.filter((e) => e.expiresAt === 0 || e.expiresAt > nowSec);
    this.#base = this.#templates.setEntries(live);
    this.#setEntries(this.#ordered());

    const bundleChanged = this.#trustDomainBundle === undefined || !this.#trustDomainBundle.bundle.equals(u.bundle);
    if (bundleChanged) {
      this.#trustDomainBundle = cachedBundleOf(u.bundle);
      this.#bundleSince = now;
      // An SVID whose chain no longer reaches the bundle (authority removed) is re-issued now.
      for (const s of this.#svids.values()) {
        if (!this.#verifies(s.certChain, now)) {
          s.stale = true;
          this.#log.info({ entryId: s.entryId, spiffeId: s.spiffeId }, 'X509-SVID no longer chains to the bundle; re-issuing');
        }
      }
    }
    const fed = new Map<string, CachedBundle>();
    for (const b of u.federatedBundles) {
      if (b.trustDomain.equals(this.#cfg.trustDomain)) continue;
      const old = this.#federated.get(b.trustDomain.name);
      fed.set(b.trustDomain.name, old !== undefined && old.bundle.equals(b) ? old : cachedBundleOf(b));
    }
    this.#federated = fed;
    this.#applyTaint(taintedAuthoritiesOf(u));
    this.#applyRevocations(revokedSerialsOf(u.x509Crls, (m) => this.#log.warn({}, m)));
    this.#workload.publish();
    this.#rotation.kick();
  }

  /**
   * Stops serving every workload identity at once (the server banned this agent): entries,
   * X509-SVIDs and cached JWT-SVIDs are dropped, open Workload API streams end with
   * PERMISSION_DENIED. The bundles stay (they are public). The next update from the server
   * (after an operator evicts the agent and it attests again) fills the cache anew.
   */
  withdrawAll(reason: string): void {
    if (this.#closed || this.#entries.length === 0) return;
    this.#log.warn({ entries: this.#entries.length, reason }, 'no longer serving any workload identity');
    this.#workload.invalidate();
    this.#base = this.#templates.setEntries([]);
    this.#setEntries([]);
    this.#workload.publish();
  }

  /** The update's entries and the template instances, in serving order (oldest first; same second: first seen). */
  #ordered(): RegistrationEntry[] {
    const all = [...this.#base, ...this.#templates.entries()];
    for (const e of [...all].sort(compareEntries)) if (!this.#firstSeen.has(e.entryId)) this.#firstSeen.set(e.entryId, ++this.#seenCounter);
    const seen = (e: RegistrationEntry): number => this.#firstSeen.get(e.entryId) ?? 0;
    return all.sort((a, b) => (a.createdAt !== b.createdAt ? a.createdAt - b.createdAt : seen(a) - seen(b)));
  }

  /** Instantiates the templates `selectors` match (a Workload API caller's); a new instance is signed at once. */
  #resolveTemplates(selectors: readonly Selector[]): void {
    if (!this.#templates.resolve(selectors)) return;
    this.#workload.invalidate();
    this.#setEntries(this.#ordered());
    this.#rotation.kick();
  }

  /** BatchNewX509SVID with template instances named as the server wants them (template entry ID, ID, selector values). */
  async #newX509Svids(batch: readonly NewX509SvidRequest[]): ReturnType<SvidIssuer['newX509Svids']> {
    const sent = batch.map((b) => {
      const t = this.#templates.request(b.entryId);
      return t === undefined ? b : { entryId: t.templateId, csr: b.csr, spiffeId: t.spiffeId, templateSelectors: t.templateSelectors };
    });
    const results = await this.#cfg.issuer.newX509Svids(sent);
    return results.map((r, i) => ({ ...r, entryId: (batch[i] as NewX509SvidRequest).entryId }));
  }

  /** Makes `entries` the cache's entries: what they no longer name (SVIDs, JWT-SVIDs, rotation, first-seen order) goes. */
  #setEntries(entries: RegistrationEntry[]): void {
    const byId = new Map(entries.map((e) => [e.entryId, e]));
    for (const id of [...this.#firstSeen.keys()]) if (!byId.has(id)) this.#firstSeen.delete(id);
    for (const id of [...this.#svids.keys()]) if (!byId.has(id)) this.#svids.delete(id);
    this.#rotation.retain(byId);
    this.#entries = entries;
    this.#entryById = byId;
    this.#jwt.retain(new Set(entries.map((e) => e.spiffeId)));
  }

  /** The tainted authorities the last update named. */
  get taintedAuthorities(): TaintedAuthorities {
    return this.#tainted;
  }

  /**
   * Marks every X509-SVID whose chain involves a tainted authority for re-issue now (the
   * pass that follows sends them in batches) and drops JWT-SVIDs signed with a tainted key.
   * Runs on every update: the server signs with its active authority, which cannot be
   * tainted, so a re-issued SVID is not marked again.
   */
  #applyTaint(tainted: TaintedAuthorities): void {
    this.#tainted = tainted;
    if (tainted.x509.size > 0) {
      let n = 0;
      for (const s of this.#svids.values()) {
        if (s.stale || !isChainTainted(s.certChain, tainted)) continue;
        s.stale = true;
        n++;
      }
      if (n > 0) this.#log.info({ svids: n, authorities: [...tainted.x509] }, 'X509-SVIDs signed by a tainted authority; re-issuing now');
    }
    if (tainted.jwt.size > 0) {
      const dropped = this.#jwt.dropWhere((j) => isJwtTainted(j.token, tainted));
      if (dropped > 0) this.#log.info({ jwtSvids: dropped, kids: [...tainted.jwt] }, 'dropped JWT-SVIDs signed with a tainted key; the next fetch re-mints them');
    }
  }

  /**
   * Marks every X509-SVID a CRL lists for re-issue now (issue 10): the pass that follows
   * gets a freshly keyed one (rotation makes a new key per issuance); until it arrives the
   * revoked one is not served. A re-issued SVID has a new serial, so it is not marked again.
   */
  #applyRevocations(revoked: RevokedSerials): void {
    this.#revoked = revoked;
    if (revoked.count === 0) return;
    for (const s of this.#svids.values()) {
      if (s.stale || !isChainRevoked(s.certChain, revoked)) continue;
      s.stale = true;
      this.#log.warn({ entryId: s.entryId, spiffeId: s.spiffeId, serial: s.serialHex }, 'X509-SVID revoked by the server; re-issuing it now with a new key');
    }
  }

  /** The revoked serials the last update's CRLs list (tests, diagnostics). */
  get revokedSerials(): RevokedSerials {
    return this.#revoked;
  }

  /** Entry IDs whose cached X509-SVID chains to a tainted authority (tests, diagnostics). */
  taintedSvids(tainted: TaintedAuthorities = this.#tainted): string[] {
    return [...this.#svids.values()].filter((s) => isChainTainted(s.certChain, tainted)).map((s) => s.entryId);
  }

  #verifies(chain: readonly Buffer[], now: Date): boolean {
    const b = this.#trustDomainBundle?.bundle;
    if (b === undefined) return false;
    try {
      verifyX509Svid(chain, { trustDomain: this.#cfg.trustDomain, x509Authorities: b.x509Authorities }, { now });
      return true;
    } catch {
      return false;
    }
  }

  /** Checks an SVID the server returned for `entry` (x509-accept.ts) and keeps it; false when discarded. */
  #keep(entry: RegistrationEntry, chain: readonly Buffer[], key: KeyObject, now: Date): boolean {
    const r = acceptX509Svid(entry, chain, key, { verifies: (c) => this.#verifies(c, now), random: this.#random });
    if ('rejected' in r) {
      this.#log.error({ entryId: entry.entryId, spiffeId: entry.spiffeId }, `discarding X509-SVID from the server: ${r.rejected}`);
      return false;
    }
    const rotated = this.#svids.has(entry.entryId);
    this.#svids.set(entry.entryId, r);
    if (rotated) this.#cfg.recorder?.x509SvidRotated();
    return true;
  }

  /** Rotation's timer fired: views are recomputed, and SVIDs that expired unrenewed leave them. */
  #timerFired(): void {
    this.#workload.invalidate();
    const nowMs = this.#sched.now().getTime();
    let expired = false;
    for (const s of this.#svids.values()) if (s.notAfter.getTime() <= nowMs) expired = true;
    if (expired) {
      for (const s of this.#svids.values()) {
        if (s.notAfter.getTime() <= nowMs) this.#log.warn({ entryId: s.entryId, spiffeId: s.spiffeId, notAfter: s.notAfter.toISOString() }, 'X509-SVID expired before it could be renewed; no longer served');
      }
      this.#workload.notifyAll();
    }
  }

  // ------------------------------------------------------------ WorkloadIdentities

  async attest(caller: PeerCredentials): Promise<Selector[]> {
    if (!this.ready) throw new MayflyError('ERR_AGENT_NOT_READY', 'the agent has not received its authorised entries from the server yet');
    const selectors = await attestWorkload(this.#cfg.workloadAttestors, caller);
    if (this.#log.isLevelEnabled?.('debug') ?? false) this.#logAttested(caller, selectors);
    return selectors;
  }

  /**
   * The first line an operator reads when troubleshooting a workload: who called, what each
   * workload attestor found (a selector's type is its attestor's name), which entries match.
   */
  #logAttested(caller: PeerCredentials, selectors: readonly Selector[]): void {
    const byAttestor: Record<string, string[]> = {};
    for (const a of this.#cfg.workloadAttestors) byAttestor[a.name] = [];
    for (const s of selectors) (byAttestor[s.type] ??= []).push(s.value);
    const matched = this.#workload.matching(selectors).map((e) => ({ entryId: e.entryId, spiffeId: e.spiffeId }));
    this.#log.debug({ caller: { pid: caller.pid, uid: caller.uid, gid: caller.gid }, selectors: byAttestor, matchedEntries: matched }, matched.length === 0 ? 'workload attested; no entry matches its selectors' : 'workload attested');
  }

  subscribe(selectors: readonly Selector[], onUpdate: (update: WorkloadUpdate) => void): () => void {
    if (!this.ready) throw new MayflyError('ERR_AGENT_NOT_READY', 'the agent has not received its authorised entries from the server yet');
    this.#resolveTemplates(selectors);
    return this.#workload.subscribe(selectors, onUpdate);
  }

  /** Number of live Workload API subscriptions (tests, metrics). */
  get subscriberCount(): number {
    return this.#workload.subscriberCount;
  }

  /**
   * The state for `selectors`, or undefined while one of its entries still awaits its first
   * X509-SVID (sending a partial set would make `svids[0]` change under the workload, and
   * an empty one would end its stream with PERMISSION_DENIED).
   */
  updateFor(selectors: readonly Selector[]): WorkloadUpdate | undefined {
    if (this.ready) this.#resolveTemplates(selectors);
    return this.#workload.updateFor(selectors);
  }

  async fetchJwtSvid(selectors: readonly Selector[], request: JwtSvidRequest): Promise<IssuedJwtSvid[]> {
    if (!this.ready) throw new MayflyError('ERR_AGENT_NOT_READY', 'the agent has not received its authorised entries from the server yet');
    const audience = [...new Set(request.audience)].sort();
    if (audience.length === 0) throw new TypeError('fetchJwtSvid needs at least one audience');
    this.#resolveTemplates(selectors);
    const seen = new Set<string>();
    const picked: RegistrationEntry[] = [];
    for (const e of this.#workload.matching(selectors)) {
      if (request.spiffeId !== undefined && e.spiffeId !== request.spiffeId) continue;
      if (seen.has(e.spiffeId)) continue;
      seen.add(e.spiffeId);
      picked.push(e);
    }
    const out = await Promise.all(picked.map(async (e) => ({ e, jwt: await this.#jwt.get(e, audience) })));
    return out.map(({ e, jwt }) => ({ spiffeId: jwt.spiffeId, token: jwt.token, ...(e.hint !== '' ? { hint: e.hint } : {}) }));
  }

  /** Why the entry templates `selectors` match yield no identity (the Workload API error names them). */
  refusals(selectors: readonly Selector[]): readonly string[] {
    return this.#templates.refusals(selectors);
  }

  /** Number of entry templates the server pushed (tests, metrics). */
  get templateEntryCount(): number {
    return this.#templates.templateCount;
  }

  /** Number of entry-template instances held (tests, metrics). */
  get templateInstanceCount(): number {
    return this.#templates.size;
  }

  /** Number of cached JWT-SVIDs (tests). */
  get jwtCacheSize(): number {
    return this.#jwt.size;
  }

  /** The JWT-SVID cache's entries, estimated bytes and bounds (tests, metrics). */
  get jwtCacheStats(): JwtSvidCacheStats {
    return this.#jwt.stats();
  }

  /** Stops timers and ends every subscription's updates. */
  close(): void {
    this.#closed = true;
    this.#workload.close();
    this.#rotation.close();
  }
}
