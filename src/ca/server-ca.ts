/**
 * @module ca/server-ca
 *
 * The server's CA: X.509 and JWT authorities with SPIRE's rotation semantics, the journal
 * that makes them survive restarts, operator controls (prepare / activate / taint /
 * revoke), and the mint paths for X.509-SVIDs and JWT-SVIDs.
 *
 * Rotation (driven by `tick()` and an injected clock, no timers inside): the next
 * authority is prepared — and published in the bundle — at 1/2 of the active one's life,
 * activated at 5/6, and the previous one stays trusted until it expires or is revoked. So
 * agents learn a new root long before anything is signed by it, and SVIDs signed by the
 * previous authority keep verifying until they expire (they never outlive their CA).
 *
 * Threats stopped:
 * - minting a broken or mis-chained SVID: every X.509-SVID is path-validated against the
 *   current bundle before it is returned (as SPIRE does), so a CA/bundle mismatch fails
 *   loudly at the server instead of at every relying party;
 * - an identity outside the trust domain: SPIFFE IDs of other trust domains are refused;
 * - an SVID outliving its CA: TTLs are capped at the signing authority's NotAfter;
 * - operator actions that would cause an outage or lock agents out (revoking the signing
 *   authority, or one agents were not told to leave): refused by `authority-admin.ts`.
 *
 * The parts: `authority-slots.ts` (the slot state machine: rotation timing and operator
 * rules), `authority-admin.ts` (the operator controls), `mint.ts` (the mint paths),
 * `slot-journal.ts` (slots to and from the journal). This class owns the configuration,
 * serialises every state change, keeps the bundle and its sequence, saves the journal and
 * emits events.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { JwtSvidSigner } from '../spiffe/jwt/index.js';
import { TrustDomain } from '../spiffe/id.js';
import { DEFAULT_KEY_TYPE, exportSpkiDer, isKeyType, type KeyType } from '../spiffe/keys.js';
import { Bundle } from '../spiffe/bundle/index.js';
import { parseCertificate } from '../spiffe/x509/index.js';
import { SILENT_LOGGER, type AuthorityInfo, type AuthorityKind, type AuthorityState, type CaEvent, type CaLogger } from './authority.js';
import { AuthorityAdmin } from './authority-admin.js';
import { AuthoritySlots } from './authority-slots.js';
import { fail, positive } from './ca-error.js';
import { decodeJournal, encodeJournal, type JournalData } from './journal.js';
import type { CaJournalStore } from './journal-store.js';
import type { KeyManager } from './key-manager.js';
import {
  memberId, mintJwtSvid, mintX509Svid, x509MintAuthorityOf, type SignedJwtSvid, type SignedX509Svid, type SignJwtSvidRequest, type SignX509SvidRequest,
  type X509MintAuthority,
} from './mint.js';
import { journalOf, slotsFromJournal } from './slot-journal.js';
import { signAuthorityCrls, type SignedX509Crl, type SignX509CrlsRequest } from './crl.js';
import type { UpstreamAuthority } from './upstream.js';

export { CaError } from './ca-error.js';
export type { CrlInputEntry, SignedX509Crl, SignX509CrlsRequest } from './crl.js';
export type { CsrMintItem, CsrMintOutcome, SignedJwtSvid, SignedX509Svid, SignJwtSvidRequest, SignX509SvidRequest, X509MintAuthority } from './mint.js';

export const DEFAULT_CA_TTL_SECONDS = 24 * 3600;
export const DEFAULT_X509_SVID_TTL_SECONDS = 3600;
export const DEFAULT_JWT_SVID_TTL_SECONDS = 300;
export const DEFAULT_BUNDLE_REFRESH_HINT_SECONDS = 300;
export const DEFAULT_TICK_INTERVAL_MS = 10_000;

export interface ServerCaConfig {
  trustDomain: TrustDomain | string;
  keyManager: KeyManager;
  journal: CaJournalStore;
  now?: () => Date;
  /** Lifetime of each X.509 CA and JWT signing key. Default 24 h. */
  caTtlSeconds?: number;
  /** Lifetime of JWT signing keys; defaults to caTtlSeconds (as SPIRE). */
  jwtKeyTtlSeconds?: number;
  /** Default X.509-SVID lifetime. Default 1 h. */
  x509SvidTtlSeconds?: number;
  /** Default JWT-SVID lifetime. Default 5 min. */
  jwtSvidTtlSeconds?: number;
  caKeyType?: KeyType;
  jwtKeyType?: KeyType;
  caSubject?: { commonName?: string; organization?: string; country?: string };
  /** Add a critical URI name constraint limiting the CA to this trust domain. Default false. */
  caNameConstraints?: boolean;
  /** The operator's CA: Mayfly's CA becomes an intermediate under it (see upstream.ts). */
  upstream?: UpstreamAuthority;
  bundleRefreshHintSeconds?: number;
  /** `iss` of every JWT-SVID minted (SPIRE's `jwt_issuer`); none when unset. */
  jwtIssuer?: string;
  logger?: CaLogger;
}

export class ServerCa {
  readonly trustDomain: TrustDomain;
  readonly #keys: KeyManager;
  readonly #journal: CaJournalStore;
  readonly #now: () => Date;
  readonly #log: CaLogger;
  readonly #upstream: UpstreamAuthority | undefined;
  readonly #upstreamId: string | undefined;
  readonly caTtlSeconds: number;
  readonly jwtKeyTtlSeconds: number;
  readonly x509SvidTtlSeconds: number;
  readonly jwtSvidTtlSeconds: number;
  readonly caKeyType: KeyType;
  readonly jwtKeyType: KeyType;
  readonly #refreshHint: number;
  readonly #jwtIssuer: string | undefined;

  readonly #slots: AuthoritySlots;
  /** prepare / activate / taint / revoke: authority-admin.ts. */
  readonly #admin: AuthorityAdmin;
  #sequence = 0;
  #bundle: Bundle | undefined;
  #bundleFingerprint = '';
  #ready = false;
  /** Serialises every state change (tick, operator actions): one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<(e: CaEvent) => void>();
  #timer: NodeJS.Timeout | undefined;
  /** The last `x509MintAuthority` snapshot and what it was taken from. */
  #mintAuthority: { slot: object; bundle: Bundle; authority: X509MintAuthority } | undefined;

  constructor(config: ServerCaConfig) {
    if (config === null || typeof config !== 'object') throw new TypeError('ServerCa needs a config object');
    this.trustDomain = config.trustDomain instanceof TrustDomain ? config.trustDomain : TrustDomain.parse(config.trustDomain);
    if (!config.keyManager) throw new TypeError('ServerCa needs a keyManager');
    if (!config.journal) throw new TypeError('ServerCa needs a journal store');
    this.#keys = config.keyManager;
    this.#journal = config.journal;
    this.#now = config.now ?? (() => new Date());
    this.#log = config.logger ?? SILENT_LOGGER;
    this.caTtlSeconds = positive(config.caTtlSeconds, DEFAULT_CA_TTL_SECONDS, 'caTtlSeconds');
    this.jwtKeyTtlSeconds = positive(config.jwtKeyTtlSeconds, this.caTtlSeconds, 'jwtKeyTtlSeconds');
    this.x509SvidTtlSeconds = positive(config.x509SvidTtlSeconds, DEFAULT_X509_SVID_TTL_SECONDS, 'x509SvidTtlSeconds');
    this.jwtSvidTtlSeconds = positive(config.jwtSvidTtlSeconds, DEFAULT_JWT_SVID_TTL_SECONDS, 'jwtSvidTtlSeconds');
    this.#refreshHint = positive(config.bundleRefreshHintSeconds, DEFAULT_BUNDLE_REFRESH_HINT_SECONDS, 'bundleRefreshHintSeconds');
    if (config.jwtIssuer !== undefined && (typeof config.jwtIssuer !== 'string' || config.jwtIssuer === '')) throw new TypeError('jwtIssuer must be a non-empty string');
    this.#jwtIssuer = config.jwtIssuer;
    this.caKeyType = config.caKeyType ?? DEFAULT_KEY_TYPE;
    this.jwtKeyType = config.jwtKeyType ?? DEFAULT_KEY_TYPE;
    if (!isKeyType(this.caKeyType)) throw new TypeError(`caKeyType ${String(this.caKeyType)} is not one of ec-p256, ec-p384, rsa-2048`);
    if (!isKeyType(this.jwtKeyType)) throw new TypeError(`jwtKeyType ${String(this.jwtKeyType)} is not one of ec-p256, ec-p384, rsa-2048`);
    this.#upstream = config.upstream;
    if (this.#upstream) {
      const up = parseCertificate(this.#upstream.certificate);
      this.#upstreamId = (up.subjectKeyId ?? Buffer.alloc(0)).toString('hex') || up.serialHex;
    }
    this.#slots = new AuthoritySlots({
      trustDomain: this.trustDomain,
      keys: this.#keys,
      log: this.#log,
      emit: (e) => this.#emit(e),
      caTtlSeconds: this.caTtlSeconds,
      jwtKeyTtlSeconds: this.jwtKeyTtlSeconds,
      caKeyType: this.caKeyType,
      jwtKeyType: this.jwtKeyType,
      caSubject: config.caSubject,
      nameConstraints: config.caNameConstraints ?? false,
      upstream: this.#upstream,
      upstreamId: this.#upstreamId,
    });
    this.#admin = new AuthorityAdmin({
      slots: this.#slots,
      keys: this.#keys,
      log: this.#log,
      now: () => this.#now(),
      emit: (e) => this.#emit(e),
      commit: () => this.#commit(),
    });
    if (this.x509SvidTtlSeconds * 6 > this.caTtlSeconds) {
      // Not fatal (SPIRE warns too): SVIDs get capped at the CA's NotAfter near rotation.
      this.#log.warn({ caTtlSeconds: this.caTtlSeconds, x509SvidTtlSeconds: this.x509SvidTtlSeconds }, 'X.509-SVID TTL is more than 1/6 of the CA TTL; SVIDs minted late in a CA\'s life will be shortened');
    }
  }

  // ------------------------------------------------------------------ lifecycle

  /** Loads the journal and keys, drops what cannot be used, creates what is missing. */
  async init(): Promise<void> {
    await this.#serial(async () => {
      if (this.#ready) return;
      const bytes = await this.#journal.load();
      if (bytes !== undefined) await this.#restore(decodeJournal(bytes));
      await this.#slots.rotate(this.#now());
      await this.#slots.deleteOrphanKeys();
      this.#ready = true;
      await this.#commit();
    });
  }

  /**
   * Runs rotation once for the current time: prune expired authorities, prepare at 1/2,
   * activate at 5/6. Safe to call as often as you like; the server calls it periodically.
   */
  async tick(): Promise<void> {
    this.#assertReady();
    await this.#serial(async () => {
      const changed = await this.#slots.rotate(this.#now());
      if (changed) await this.#commit();
    });
  }

  /** Schedules `tick()` every `intervalMs` (default 10 s); timers are unref'd. */
  start(intervalMs: number = DEFAULT_TICK_INTERVAL_MS): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.tick().catch((err: unknown) => this.#log.error({ err }, 'CA rotation tick failed; will retry at the next tick'));
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Subscribes to CA events; returns the unsubscribe function. */
  onEvent(listener: (e: CaEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ------------------------------------------------------------------ bundle

  /** The trust domain's current bundle (roots or upstream roots, JWT keys, sequence). */
  getBundle(): Bundle {
    this.#assertReady();
    return this.#bundle as Bundle;
  }

  get sequence(): number {
    return this.#sequence;
  }

  /** Authorities operators have tainted: agents must re-issue anything signed by them. */
  taintedAuthorities(): { x509: string[]; jwt: string[] } {
    return { x509: this.#slots.x509.filter((s) => s.tainted).map((s) => s.id), jwt: this.#slots.jwt.filter((s) => s.tainted).map((s) => s.id) };
  }

  // ------------------------------------------------------------------ minting (mint.ts)

  /** Mints an X.509-SVID with the active X.509 authority, verified against the bundle before it is returned. */
  signX509Svid(req: SignX509SvidRequest): SignedX509Svid {
    this.#assertReady();
    const id = memberId(this.trustDomain, req.spiffeId);
    const now = this.#now();
    const slot = this.#slots.active('x509', 'X.509', now);
    return mintX509Svid(slot, id, req, { now, defaultTtlSeconds: this.x509SvidTtlSeconds, bundle: this.#bundle as Bundle, upstream: this.#upstream });
  }

  /**
   * The X.509 authority active now and the current bundle, as one snapshot for batch
   * minting elsewhere (`mintX509SvidsFromCsrs`, possibly on a worker thread), with the time
   * it was taken. Taken once per request, so a batch is signed by the authority that was
   * active when it arrived even if rotation happens meanwhile; the same object is returned
   * until the active authority or the bundle changes (workers cache per object).
   */
  x509MintAuthority(): { authority: X509MintAuthority; now: Date } {
    this.#assertReady();
    const now = this.#now();
    const slot = this.#slots.active('x509', 'X.509', now);
    const bundle = this.#bundle as Bundle;
    const c = this.#mintAuthority;
    if (c !== undefined && c.slot === slot && c.bundle === bundle) return { authority: c.authority, now };
    const authority = x509MintAuthorityOf(slot, { trustDomain: this.trustDomain, bundle, upstream: this.#upstream, defaultTtlSeconds: this.x509SvidTtlSeconds });
    this.#mintAuthority = { slot, bundle, authority };
    return { authority, now };
  }

  /** An agent's X.509-SVID: the same mint path, for `spiffe://<td>/spire/agent/...`-style IDs. */
  signAgentSvid(req: SignX509SvidRequest): SignedX509Svid {
    return this.signX509Svid(req);
  }

  /** Mints a JWT-SVID with the active JWT key; `exp` is capped at the key's NotAfter. */
  signJwtSvid(req: SignJwtSvidRequest): SignedJwtSvid {
    this.#assertReady();
    const id = memberId(this.trustDomain, req.spiffeId);
    const now = this.#now();
    const slot = this.#slots.active('jwt', 'JWT', now);
    return mintJwtSvid(slot, id, req, { now, defaultTtlSeconds: this.jwtSvidTtlSeconds, ...(this.#jwtIssuer !== undefined ? { issuer: this.#jwtIssuer } : {}) });
  }

  /**
   * The active JWT key as a signer for delegated tokens (delegation/exchange): kid, JWS
   * algorithm and private key. In-process only; it never leaves the server.
   */
  jwtSigningKey(): { kid: string; alg: string; privateKey: KeyObject } {
    this.#assertReady();
    const slot = this.#slots.active('jwt', 'JWT', this.#now());
    const signer = (slot.signer ??= new JwtSvidSigner({ privateKey: slot.key.privateKey, kid: slot.id }));
    return { kid: slot.id, alg: signer.algorithm, privateKey: slot.key.privateKey };
  }

  /**
   * One signed X.509 CRL per X.509 authority that signs or signed SVIDs (active and old),
   * each listing the given entries of that authority (ca/crl.ts). Issue 10.
   */
  signX509Crls(req: SignX509CrlsRequest): SignedX509Crl[] {
    this.#assertReady();
    return signAuthorityCrls(this.#slots.x509, req);
  }

  // ------------------------------------------------------------------ operator controls (authority-admin.ts)

  /** `localauthority x509|jwt show`: active, prepared and old authorities. */
  authorityState(kind: AuthorityKind): AuthorityState {
    return this.#slots.state(kind);
  }

  /** `localauthority ... prepare`: a new prepared authority, published in the bundle, not signing. */
  async prepareAuthority(kind: AuthorityKind): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(() => this.#admin.prepare(kind));
  }

  /** `localauthority ... activate`: the prepared authority (`authorityId`, when given) becomes active, the active one old. */
  async activateAuthority(kind: AuthorityKind, authorityId?: string): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(() => this.#admin.activate(kind, authorityId));
  }

  /** `localauthority ... taint`: an old authority agents must move away from. */
  async taintAuthority(kind: AuthorityKind, authorityId: string): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(() => this.#admin.taint(kind, authorityId));
  }

  /** `localauthority ... revoke`: a tainted old authority leaves the bundle and its key is deleted. */
  async revokeAuthority(kind: AuthorityKind, authorityId: string): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(() => this.#admin.revoke(kind, authorityId));
  }

  // ------------------------------------------------------------------ internals: state

  /** Rebuilds the bundle, bumps the sequence if its content changed, saves the journal, then deletes retired keys. */
  async #commit(): Promise<void> {
    this.#refreshBundle();
    await this.#save();
    const deletes = this.#slots.takePendingKeyDeletes();
    for (const id of deletes) {
      try {
        await this.#keys.deleteKey(id);
      } catch (err) {
        this.#log.warn({ err, keyId: id }, 'could not delete a retired CA key');
      }
    }
  }

  /** X.509 roots: the upstream roots, plus every still-trusted self-signed Mayfly CA. */
  #refreshBundle(): void {
    const x509Slots = this.#slots.x509;
    const jwtSlots = this.#slots.jwt;
    const roots: Buffer[] = [...(this.#upstream?.roots ?? [])];
    for (const s of x509Slots) if (s.upstreamAuthorityId === undefined) roots.push(s.certificate as Buffer);
    const jwt = new Map<string, KeyObject>(jwtSlots.map((s) => [s.id, s.publicKey]));
    // Taints count as changes so that agents watching the sequence notice them.
    const h = createHash('sha256');
    for (const r of roots.map((c) => createHash('sha256').update(c).digest('hex')).sort()) h.update('x509:' + r + '\n');
    for (const s of [...jwtSlots].sort((a, b) => (a.id < b.id ? -1 : 1))) h.update('jwt:' + s.id + ':' + exportSpkiDer(s.publicKey).toString('base64') + '\n');
    for (const s of [...x509Slots, ...jwtSlots]) if (s.tainted) h.update('tainted:' + s.kind + ':' + s.id + '\n');
    const fingerprint = h.digest('hex');
    if (this.#bundle !== undefined && fingerprint === this.#bundleFingerprint) return;
    const changed = fingerprint !== this.#bundleFingerprint;
    if (changed) this.#sequence++;
    this.#bundleFingerprint = fingerprint;
    this.#bundle = new Bundle({ trustDomain: this.trustDomain, x509Authorities: roots, jwtAuthorities: jwt, sequence: this.#sequence, refreshHintSeconds: this.#refreshHint });
    if (this.#ready && changed) this.#emit({ type: 'bundle-updated', sequence: this.#sequence });
  }

  async #save(): Promise<void> {
    const data: JournalData = journalOf({
      trustDomain: this.trustDomain.name,
      sequence: this.#sequence,
      bundleDigest: this.#bundleFingerprint,
      x509: this.#slots.x509,
      jwt: this.#slots.jwt,
    });
    await this.#journal.save(encodeJournal(data));
  }

  async #restore(j: JournalData): Promise<void> {
    if (j.trustDomain !== this.trustDomain.name) {
      fail('ERR_CA_CONFIG', `the CA journal belongs to trust domain ${j.trustDomain}, but the server is configured for ${this.trustDomain.name}; use the matching data directory`);
    }
    this.#sequence = j.sequence;
    this.#slots.adopt(await slotsFromJournal(j, { keys: this.#keys, log: this.#log, upstreamId: this.#upstreamId }));
    // The bundle as last saved: #refreshBundle bumps the sequence only if it now differs.
    this.#bundleFingerprint = j.bundleDigest;
  }

  // ------------------------------------------------------------------ internals: helpers

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #assertReady(): void {
    if (!this.#ready) fail('ERR_CA_NOT_READY', 'the CA is not initialised; await ca.init() first');
  }

  #emit(e: CaEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch (err) {
        this.#log.error({ err, event: e.type }, 'CA event listener threw');
      }
    }
  }
}
