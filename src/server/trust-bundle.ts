/**
 * @module server/trust-bundle
 *
 * The trust domain's bundle as this server serves it when several servers share one
 * datastore (SPIRE's HA model): each server keeps its own CA, publishes that CA's X.509
 * authorities and JWT keys into the datastore's bundle of its trust domain
 * (`Datastore.mergeBundle`: SPIRE's AppendBundle, plus removal of what it revoked and
 * pruning of what expired), and serves its own CA's bundle ∪ the stored one. So a workload
 * of an agent attached to one server trusts SVIDs another server minted, and an agent
 * attested through one server is accepted by every other.
 *
 * When it acts:
 * - every CA `bundle-updated` event (prepare, activate, taint, revoke, expiry): the served
 *   bundle is recomputed at once from the CA (so a revoke stops being served before the
 *   datastore write lands), then the CA's authorities are merged into the datastore;
 * - every `bundles` notice on the change hub (other servers' writes arrive there through
 *   PostgreSQL LISTEN/NOTIFY): the stored bundle is re-read;
 * - a failed publish is retried after `retryMs`.
 * Each change of the served bundle raises its sequence (never below the CA's own) and is
 * reported to `onChange` (the TLS trust roots) and announced on the hub as `ca`.
 *
 * Threats it stops:
 * - a revoked authority lingering: what this server's CA dropped is removed from the stored
 *   bundle, and left out of the served one even while a stale stored copy still holds it;
 * - a revoked authority outliving a crash: with an `owner` (the server's stable identity,
 *   `loadBundleOwnerId`: a random ID kept in its data directory), every publish, the first after a start included, states the CA's
 *   complete set under that owner, and the datastore removes in the same write whatever the
 *   owner published before and no longer has (`BundleMerge.owner`). So an authority revoked
 *   by the CA just before the process died, whose removal never landed, goes with the first
 *   publish after the restart, though nothing in this process saw it dropped. Without an
 *   owner only what it saw dropped while running is removed (named in `remove`);
 * - a stale snapshot winning: a stored bundle read or written earlier (lower sequence) never
 *   replaces a newer one, so a slow read cannot bring back a revoked authority;
 * - a stored bundle that does not parse: it is logged and ignored; the server keeps serving
 *   at least its own CA's bundle, which is what it signs with.
 * SVID minting still verifies against the CA's own bundle (src/ca): only trust is merged.
 *
 * A single server on its own (LevelDB) datastore serves exactly its CA's bundle, with the
 * CA's sequence.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { ensurePrivateDir, readPrivateFile, writeFileAtomic } from '../securefs/index.js';
import type { BundleAuthority, BundleAuthorityRef, Datastore, StoredBundle } from '../datastore/datastore.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { MayflyError } from '../spiffe/errors.js';
import { parseBundle } from '../spiffe/bundle/parse.js';
import { exportSpkiDer } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import type { ChangeHub } from './hub.js';
import { SILENT_LOGGER, type ServedTrustBundle, type ServerApiCa, type ServerLogger } from './ports.js';

export interface TrustBundleConfig {
  ca: Pick<ServerApiCa, 'trustDomain' | 'getBundle' | 'onEvent' | 'authorityState' | 'taintedAuthorities'>;
  datastore: Pick<Datastore, 'getBundle' | 'mergeBundle'>;
  hub: ChangeHub;
  logger?: ServerLogger;
  now?: () => Date;
  /** Called synchronously with every new served bundle. */
  onChange?: (bundle: Bundle) => void;
  /** Delay before retrying a failed publish or read (ms, default 5000). */
  retryMs?: number;
  /**
   * This server's identity as a publisher, stable across its restarts and distinct per
   * server (see `BundleMerge.owner`). Default: none (only what it sees dropped is removed).
   */
  owner?: string;
}

const MAX_STORED_BYTES = 4 * 1024 * 1024;

/** The file in a server's data directory holding its bundle owner ID. */
export const BUNDLE_OWNER_FILE = 'bundle-owner-id';

/**
 * This server's bundle owner ID (see `TrustBundleConfig.owner`): read from
 * `<dataDir>/bundle-owner-id`, or created there once (128 random bits, hex; 0600, written
 * atomically, so a crash leaves either no file or the whole ID). It lives beside the CA
 * journal and keys because it names the authorities they hold: a data directory wiped
 * with its CA state starts a new owner, whose predecessor's keys expire and are pruned.
 * An unreadable, loosely permitted or malformed file is an error, not silently replaced
 * (a new ID would orphan what the old one published).
 */
export function loadBundleOwnerId(dataDir: string): string {
  ensurePrivateDir(dataDir);
  const path = join(dataDir, BUNDLE_OWNER_FILE);
  const existing = readPrivateFile(path);
  if (existing !== undefined) {
    const id = existing.toString('utf8').trim();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new MayflyError('ERR_CONFIG_INVALID', `${path} does not hold a bundle owner ID (32 hex digits); remove it to create a new one`);
    return id;
  }
  const id = randomBytes(16).toString('hex');
  writeFileAtomic(path, `${id}\n`, { mode: 0o600 });
  return id;
}

interface StoredView {
  sequence: number;
  x509: Map<string, Buffer>;
  jwt: Map<string, KeyObject>;
  tainted: { x509: Set<string>; jwt: Set<string> };
}

const x509Id = (der: Buffer): string => `x509:${der.toString('base64')}`;
const jwtId = (kid: string): string => `jwt:${kid}`;

export class TrustBundle implements ServedTrustBundle {
  readonly #cfg: TrustBundleConfig;
  readonly #log: ServerLogger;
  readonly #now: () => Date;
  #stored: StoredView | undefined;
  /** Identities of the CA's authorities as last seen. */
  #own = new Set<string>();
  /** Identities the CA published and then dropped (revoked, expired): removed from the stored bundle, never served. */
  readonly #dropped = new Set<string>();
  #served: Bundle | undefined;
  #tainted: { x509: string[]; jwt: string[] } = { x509: [], jwt: [] };
  #fingerprint = '';
  #sequence = 0;
  #publishWanted = false;
  #readWanted = false;
  #pump: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(cfg: TrustBundleConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.ca === undefined || cfg.datastore === undefined || cfg.hub === undefined) {
      throw new TypeError('TrustBundle needs { ca, datastore, hub }');
    }
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_LOGGER;
    this.#now = cfg.now ?? (() => new Date());
  }

  /** Serves the CA's bundle at once, then publishes it and reads the stored one (a failure is logged and retried). */
  async start(): Promise<void> {
    this.#noteOwn();
    this.#recompute();
    this.#unsubscribe.push(
      this.#cfg.ca.onEvent((e) => {
        if (e.type !== 'bundle-updated') return;
        this.#noteOwn();
        this.#recompute();
        this.#request('publish');
      }),
      this.#cfg.hub.subscribe((t) => {
        if (t.kind === 'bundles') this.#request('read');
      }),
    );
    this.#request('publish');
    await this.settled();
  }

  /** The bundle of the trust domain this server serves: its CA's bundle ∪ the stored one. */
  bundle(): Bundle {
    if (this.#served === undefined) throw new TypeError('TrustBundle not started');
    return this.#served;
  }

  /** Authorities tainted by this server's operator or, through the stored bundle, another server's. */
  taintedAuthorities(): { x509: string[]; jwt: string[] } {
    return this.#tainted;
  }

  /** Resolves once the publishes and reads requested so far have run (for tests and start). */
  async settled(): Promise<void> {
    while (this.#pump !== undefined) await this.#pump;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const u of this.#unsubscribe.splice(0)) u();
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.settled();
  }

  // ------------------------------------------------------------------ datastore side

  #request(what: 'publish' | 'read'): void {
    if (this.#stopped) return;
    if (what === 'publish') this.#publishWanted = true;
    else this.#readWanted = true;
    this.#pump ??= this.#run().finally(() => {
      this.#pump = undefined;
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped && (this.#publishWanted || this.#readWanted)) {
      const publish = this.#publishWanted;
      this.#publishWanted = false;
      this.#readWanted = false;
      try {
        if (publish) await this.#publish();
        else this.#accept(await this.#cfg.datastore.getBundle(this.#cfg.ca.trustDomain.name));
      } catch (err) {
        this.#log.error({ err, trustDomain: this.#cfg.ca.trustDomain.name }, publish ? 'publishing the CA authorities to the datastore bundle failed; will retry' : 'reading the datastore bundle failed; will retry');
        this.#scheduleRetry(publish ? 'publish' : 'read');
      }
    }
  }

  #scheduleRetry(what: 'publish' | 'read'): void {
    if (this.#stopped || this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#request(what);
    }, this.#cfg.retryMs ?? 5000);
    this.#retry.unref();
  }

  async #publish(): Promise<void> {
    const ca = this.#cfg.ca;
    const own = ca.getBundle();
    const x509Infos = ca.authorityState('x509').all;
    const jwtInfos = ca.authorityState('jwt').all;
    const add: BundleAuthority[] = [];
    const keys = own.toJwks().keys;
    for (const jwk of keys) {
      if (jwk.use === 'x509-svid') {
        const der = Buffer.from(jwk.x5c![0]!, 'base64');
        const info = x509Infos.find((i) => i.certificate !== undefined && i.certificate.equals(der));
        add.push({ jwk, ...(info?.tainted ? { tainted: true } : {}) });
      } else {
        const info = jwtInfos.find((i) => i.id === jwk.kid);
        add.push({ jwk, ...(info ? { notAfter: Math.floor(info.notAfter.getTime() / 1000) } : {}), ...(info?.tainted ? { tainted: true } : {}) });
      }
    }
    const dropped = [...this.#dropped];
    // With an owner, `add` is the complete set and the store removes what the owner no longer
    // publishes (what it saw dropped and what it dropped before a crash alike). Named removes
    // would also take away a key another server still publishes (a shared upstream root).
    const owner = this.#cfg.owner;
    const remove: BundleAuthorityRef[] =
      owner !== undefined ? [] : dropped.map((id) => (id.startsWith('x509:') ? { x509: id.slice(5) } : { jwtKid: id.slice(4) }));
    const res = await this.#cfg.datastore.mergeBundle({
      trustDomain: ca.trustDomain.name,
      ...(owner !== undefined ? { owner } : {}),
      add,
      remove,
      pruneExpiredBefore: Math.floor(this.#now().getTime() / 1000),
      ...(own.refreshHintSeconds !== undefined ? { refreshHintSeconds: own.refreshHintSeconds } : {}),
      ...(own.sequence !== undefined ? { minSequence: own.sequence } : {}),
    });
    // Removed from the store now: no need to name them again (unless the CA brings one back).
    for (const id of dropped) if (!this.#own.has(id)) this.#dropped.delete(id);
    this.#accept(res.bundle);
  }

  /** Takes a stored bundle read or written just now, unless a newer one is already in hand. */
  #accept(stored: StoredBundle | undefined): void {
    if (stored === undefined || this.#stopped) return;
    if (this.#stored !== undefined && stored.sequence <= this.#stored.sequence) return;
    const td = this.#cfg.ca.trustDomain;
    let view: StoredView;
    try {
      const b = parseBundle(stored.bundle, td, { maxBytes: MAX_STORED_BYTES });
      const doc = JSON.parse(stored.bundle) as { keys: { use?: string; kid?: string; x5c?: string[]; mayfly_tainted?: unknown }[] };
      const tainted = { x509: new Set<string>(), jwt: new Set<string>() };
      for (const k of doc.keys) {
        if (k.mayfly_tainted !== true) continue;
        if (k.use === 'jwt-svid' && typeof k.kid === 'string') tainted.jwt.add(k.kid);
        if (k.use === 'x509-svid' && typeof k.x5c?.[0] === 'string') tainted.x509.add(x509Id(Buffer.from(k.x5c[0], 'base64')));
      }
      view = { sequence: stored.sequence, x509: new Map(b.x509Authorities.map((d) => [x509Id(d), d])), jwt: new Map(b.jwtAuthorities), tainted };
    } catch (err) {
      this.#log.error({ err, trustDomain: td.name }, 'the datastore bundle of this trust domain does not parse; serving this server\'s CA bundle without it');
      return;
    }
    this.#stored = view;
    this.#recompute();
  }

  // ------------------------------------------------------------------ served side

  /** Records the CA's current authorities; those it no longer has are dropped from what is served and stored. */
  #noteOwn(): void {
    const own = this.#cfg.ca.getBundle();
    const now = new Set<string>([...own.x509Authorities.map(x509Id), ...[...own.jwtAuthorities.keys()].map(jwtId)]);
    for (const id of this.#own) if (!now.has(id)) this.#dropped.add(id);
    for (const id of now) this.#dropped.delete(id);
    this.#own = now;
  }

  #recompute(): void {
    const ca = this.#cfg.ca;
    const own = ca.getBundle();
    const x509 = new Map<string, Buffer>(own.x509Authorities.map((d) => [x509Id(d), d]));
    const jwt = new Map<string, KeyObject>(own.jwtAuthorities);
    const ownTaints = ca.taintedAuthorities();
    const taintedX509 = new Set(ownTaints.x509);
    const taintedJwt = new Set(ownTaints.jwt);
    const s = this.#stored;
    if (s !== undefined) {
      for (const [id, der] of s.x509) {
        if (this.#dropped.has(id) || x509.has(id)) continue;
        x509.set(id, der);
        if (s.tainted.x509.has(id)) {
          // Agents name X.509 authorities by the CA certificate's Subject Key Identifier.
          const ski = parseCertificate(der).subjectKeyId;
          if (ski !== undefined) taintedX509.add(Buffer.from(ski).toString('hex'));
        }
      }
      for (const [kid, key] of s.jwt) {
        if (this.#dropped.has(jwtId(kid)) || jwt.has(kid)) continue;
        jwt.set(kid, key);
        if (s.tainted.jwt.has(kid)) taintedJwt.add(kid);
      }
    }
    const tainted = { x509: [...taintedX509].sort(), jwt: [...taintedJwt].sort() };
    const h = createHash('sha256');
    for (const id of [...x509.keys()].sort()) h.update(`${id}\n`);
    for (const kid of [...jwt.keys()].sort()) h.update(`jwt:${kid}:${exportSpkiDer(jwt.get(kid) as KeyObject).toString('base64')}\n`);
    h.update(`tainted:${tainted.x509.join(',')}|${tainted.jwt.join(',')}\nhint:${own.refreshHintSeconds ?? ''}`);
    const fingerprint = h.digest('hex');
    if (this.#served !== undefined && fingerprint === this.#fingerprint) return;
    const first = this.#served === undefined;
    this.#sequence = Math.max(first ? 0 : this.#sequence + 1, own.sequence ?? 0);
    this.#fingerprint = fingerprint;
    this.#tainted = tainted;
    this.#served = new Bundle({
      trustDomain: ca.trustDomain,
      x509Authorities: [...x509.values()],
      jwtAuthorities: jwt,
      sequence: this.#sequence,
      ...(own.refreshHintSeconds !== undefined ? { refreshHintSeconds: own.refreshHintSeconds } : {}),
    });
    if (first) return;
    try {
      this.#cfg.onChange?.(this.#served);
    } catch (err) {
      this.#log.error({ err }, 'served bundle change listener failed');
    }
    this.#cfg.hub.publish({ kind: 'ca' });
  }
}
