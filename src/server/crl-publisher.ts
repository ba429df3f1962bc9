/**
 * @module server/crl-publisher
 *
 * The server's X.509 CRLs (issue 10): one per X.509 authority of its CA (ca/crl), listing
 * the revoked serials the datastore keeps, re-issued on every revocation, whenever the CA's
 * authorities change, when the revoked set in the datastore changed (another server of the
 * trust domain revoked; checked every `pollMs`), and before `nextUpdate` (at half the CRL's
 * lifetime). A change is announced on the hub (`{ kind: 'crl' }`), so every authorised-
 * entry stream pushes the new CRLs to its agent at once.
 *
 * Threats stopped:
 * - a revoked SVID accepted because relying parties hold an outdated CRL: `nextUpdate`
 *   says when a CRL goes stale, and a fresh one is published at half that time;
 * - a CRL that grows without bound: entries of expired SVIDs are pruned from the datastore
 *   and never listed (an expired SVID is refused by its NotAfter anyway), so a CRL holds at
 *   most the SVIDs revoked within one SVID lifetime;
 * - a relying party fooled by a reused number: `cRLNumber` is the issue time in
 *   milliseconds, and at least one more than the last number this process used, so it
 *   increases across restarts without storage (as long as the clock does not go back by
 *   more than the server was down).
 */
import { createHash } from 'node:crypto';
import type { CrlReason } from '../spiffe/x509/crl.js';
import type { ChangeHub } from './hub.js';
import type { ServerApiCa, ServerDatastore, ServerLogger } from './ports.js';
import { SILENT_LOGGER } from './ports.js';

export const DEFAULT_CRL_LIFETIME_SECONDS = 3600;
export const DEFAULT_CRL_POLL_MS = 10_000;

export interface CrlPublisherConfig {
  ca: Pick<ServerApiCa, 'signX509Crls' | 'onEvent' | 'authorityState'>;
  datastore: Pick<ServerDatastore, 'listRevokedX509Svids' | 'pruneX509Svids'>;
  hub: ChangeHub;
  logger?: ServerLogger;
  now?: () => Date;
  /** nextUpdate - thisUpdate (seconds, default 1 h); re-issued at half. */
  lifetimeSeconds?: number;
  /** How often the datastore's revoked set is checked for changes by others (ms, default 10 s). */
  pollMs?: number;
}

export interface PublishedCrl {
  readonly authorityId: string;
  readonly der: Buffer;
  readonly entryCount: number;
}

export class CrlPublisher {
  readonly #cfg: CrlPublisherConfig;
  readonly #now: () => Date;
  readonly #log: ServerLogger;
  readonly #lifetime: number;
  #crls: readonly PublishedCrl[] = [];
  #fingerprint = '';
  #reissueAt = 0;
  #lastNumber = 0n;
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(cfg: CrlPublisherConfig) {
    if (cfg === null || typeof cfg !== 'object') throw new TypeError('CrlPublisher needs a config object');
    this.#cfg = cfg;
    this.#now = cfg.now ?? (() => new Date());
    this.#log = cfg.logger ?? SILENT_LOGGER;
    this.#lifetime = cfg.lifetimeSeconds ?? DEFAULT_CRL_LIFETIME_SECONDS;
    if (!Number.isInteger(this.#lifetime) || this.#lifetime < 2) throw new TypeError('lifetimeSeconds must be an integer of at least 2');
  }

  /** The current CRLs (DER), one per X.509 authority. */
  current(): readonly Buffer[] {
    return this.#crls.map((c) => c.der);
  }

  /** The current CRLs with their authorities. */
  published(): readonly PublishedCrl[] {
    return this.#crls;
  }

  /** Publishes the first CRLs, then follows CA changes and polls the datastore. */
  async start(): Promise<void> {
    await this.refresh();
    this.#unsubscribe = this.#cfg.ca.onEvent((e) => {
      if (e.type === 'bundle-updated') return;
      this.refresh().catch((err: unknown) => this.#log.error({ err }, 'CRL re-issue after a CA change failed; will retry'));
    });
    this.#timer = setInterval(() => {
      this.refresh().catch((err: unknown) => this.#log.error({ err }, 'CRL refresh failed; will retry'));
    }, this.#cfg.pollMs ?? DEFAULT_CRL_POLL_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /**
   * Prunes expired records, reads the revoked serials and re-signs the CRLs when that set
   * (or the CA's authorities) changed, or when half the lifetime has passed, or when
   * `force`. Calls run one at a time. Resolves once the new CRLs are published.
   */
  refresh(opts: { force?: boolean } = {}): Promise<void> {
    const run = this.#queue.then(() => this.#refresh(opts.force === true));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #refresh(force: boolean): Promise<void> {
    const now = this.#now();
    const nowSec = Math.floor(now.getTime() / 1000);
    await this.#cfg.datastore.pruneX509Svids(nowSec);
    const revoked = (await this.#cfg.datastore.listRevokedX509Svids()).filter((r) => r.notAfter >= nowSec);
    const h = createHash('sha256');
    for (const r of revoked) h.update(`${r.serialHex}:${r.authorityId}:${r.revokedAt}:${r.reason}\n`);
    const setKey = h.digest('hex');
    // The authorities are part of the key: an activated or expired authority needs its own CRL.
    const authorities = this.#cfg.ca
      .authorityState('x509')
      .all.filter((a) => a.status !== 'prepared' && a.notAfter.getTime() > now.getTime())
      .map((a) => a.id)
      .sort();
    const key = setKey + ':' + authorities.join(',');
    if (!force && key === this.#fingerprint && now.getTime() < this.#reissueAt) return;
    const number = BigInt(now.getTime()) > this.#lastNumber ? BigInt(now.getTime()) : this.#lastNumber + 1n;
    const crls = this.#sign(revoked, now, number);
    this.#lastNumber = number;
    this.#fingerprint = key;
    this.#reissueAt = now.getTime() + (this.#lifetime * 1000) / 2;
    this.#crls = crls;
    this.#log.info({ crls: crls.length, revoked: revoked.length, crlNumber: number.toString() }, 'X.509 CRLs issued');
    this.#cfg.hub.publish({ kind: 'crl' });
  }

  #sign(revoked: Awaited<ReturnType<ServerDatastore['listRevokedX509Svids']>>, now: Date, crlNumber: bigint): PublishedCrl[] {
    const entries = revoked.map((r) => ({ serialHex: r.serialHex, authorityId: r.authorityId, revokedAt: new Date(r.revokedAt * 1000), reason: r.reason as CrlReason }));
    return this.#cfg.ca
      .signX509Crls({ entries, crlNumber, thisUpdate: new Date(Math.floor(now.getTime() / 1000) * 1000), nextUpdate: new Date(Math.floor(now.getTime() / 1000) * 1000 + this.#lifetime * 1000) })
      .map((c) => ({ authorityId: c.authorityId, der: c.der, entryCount: c.entryCount }));
  }
}
