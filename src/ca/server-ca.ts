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
 * - revoking the authority that is signing right now (an outage), or one that agents have
 *   not been told to move away from: revoke needs an old, tainted authority.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { MayflyError, SpiffeIdError } from '../spiffe/errors.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { DEFAULT_KEY_TYPE, exportSpkiDer, importSpki, isKeyType, type KeyPair, type KeyType } from '../spiffe/keys.js';
import { Bundle } from '../spiffe/bundle/index.js';
import { JwtSvidSigner } from '../spiffe/jwt/index.js';
import { createCaCertificate, parseCertificate, verifyX509Svid, X509SvidMinter } from '../spiffe/x509/index.js';
import { SILENT_LOGGER, type AuthorityInfo, type AuthorityKind, type AuthorityState, type AuthorityStatus, type CaEvent, type CaLogger } from './authority.js';
import { decodeJournal, encodeJournal, JOURNAL_VERSION, type JournalData } from './journal.js';
import type { CaJournalStore } from './journal-store.js';
import type { KeyManager } from './key-manager.js';
import type { UpstreamAuthority } from './upstream.js';

export class CaError extends MayflyError {}

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
  logger?: CaLogger;
}

export interface SignX509SvidRequest {
  spiffeId: SpiffeId | string;
  /** The SVID's public key as SPKI DER (e.g. from a CSR); preferred: no key export. */
  publicKeySpki?: Uint8Array;
  publicKey?: KeyObject;
  ttlSeconds?: number;
  dnsNames?: readonly string[];
  subject?: { commonName?: string; organization?: string; country?: string };
}

export interface SignedX509Svid {
  /** Leaf first, then intermediates (Mayfly's CA when under an upstream, then upstream intermediates); never a root. */
  certificates: Buffer[];
  expiresAt: Date;
  /** The X.509 authority (hex SKI) that signed the leaf. */
  authorityId: string;
}

export interface SignJwtSvidRequest {
  spiffeId: SpiffeId | string;
  audience: readonly string[];
  ttlSeconds?: number;
}

export interface SignedJwtSvid {
  token: string;
  expiresAt: Date;
  /** `kid` of the signing key. */
  authorityId: string;
}

/** Internal, mutable form of an authority plus the objects the hot paths need. */
interface Slot {
  kind: AuthorityKind;
  id: string;
  keyId: string;
  certificate?: Buffer;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  status: AuthorityStatus;
  tainted: boolean;
  upstreamAuthorityId?: string;
  createdSeq: number;
  key: KeyPair;
  minter?: X509SvidMinter;
  signer?: JwtSvidSigner;
}

const KEY_PREFIX: Record<AuthorityKind, string> = { x509: 'x509-ca-', jwt: 'jwt-key-' };

function positive(v: number | undefined, def: number, what: string): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`${what} must be a positive integer number of seconds`);
  return v;
}

function fail(code: 'ERR_CA_AUTHORITY_NOT_FOUND' | 'ERR_CA_AUTHORITY_STATE' | 'ERR_CA_NOT_READY' | 'ERR_CA_CONFIG', message: string): never {
  throw new CaError(code, message);
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
  readonly #caSubject: ServerCaConfig['caSubject'];
  readonly #nameConstraints: boolean;
  readonly #refreshHint: number;

  #x509: Slot[] = [];
  #jwt: Slot[] = [];
  #sequence = 0;
  #bundle: Bundle | undefined;
  #bundleFingerprint = '';
  #ready = false;
  #createdCounter = 0;
  /** Serialises every state change (tick, operator actions): one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<(e: CaEvent) => void>();
  #timer: NodeJS.Timeout | undefined;

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
    this.caKeyType = config.caKeyType ?? DEFAULT_KEY_TYPE;
    this.jwtKeyType = config.jwtKeyType ?? DEFAULT_KEY_TYPE;
    if (!isKeyType(this.caKeyType)) throw new TypeError(`caKeyType ${String(this.caKeyType)} is not one of ec-p256, ec-p384, rsa-2048`);
    if (!isKeyType(this.jwtKeyType)) throw new TypeError(`jwtKeyType ${String(this.jwtKeyType)} is not one of ec-p256, ec-p384, rsa-2048`);
    this.#caSubject = config.caSubject;
    this.#nameConstraints = config.caNameConstraints ?? false;
    this.#upstream = config.upstream;
    if (this.#upstream) {
      const up = parseCertificate(this.#upstream.certificate);
      this.#upstreamId = (up.subjectKeyId ?? Buffer.alloc(0)).toString('hex') || up.serialHex;
    }
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
      await this.#rotate(this.#now());
      await this.#deleteOrphanKeys();
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
      const changed = await this.#rotate(this.#now());
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
    return { x509: this.#x509.filter((s) => s.tainted).map((s) => s.id), jwt: this.#jwt.filter((s) => s.tainted).map((s) => s.id) };
  }

  // ------------------------------------------------------------------ minting

  /** Mints an X.509-SVID with the active X.509 authority, verified against the bundle before it is returned. */
  signX509Svid(req: SignX509SvidRequest): SignedX509Svid {
    this.#assertReady();
    const id = this.#memberId(req.spiffeId);
    const now = this.#now();
    const slot = this.#activeSlot(this.#x509, 'X.509', now);
    const ttl = req.ttlSeconds === undefined ? this.x509SvidTtlSeconds : positive(req.ttlSeconds, 0, 'ttlSeconds');
    if (req.publicKeySpki === undefined && req.publicKey === undefined) throw new TypeError('signX509Svid needs publicKeySpki or publicKey');
    const minter = (slot.minter ??= new X509SvidMinter({ caCertificate: slot.certificate as Buffer, caPrivateKey: slot.key.privateKey }));
    const leaf = minter.mint({
      spiffeId: id,
      ...(req.publicKeySpki !== undefined ? { publicKeySpki: req.publicKeySpki } : { publicKey: req.publicKey as KeyObject }),
      ttlSeconds: ttl,
      ...(req.dnsNames !== undefined ? { dnsNames: req.dnsNames } : {}),
      ...(req.subject !== undefined ? { subject: req.subject } : {}),
      now,
    });
    const certificates = [leaf, ...this.#intermediatesFor(slot)];
    // SPIRE's rule: never hand out an SVID that does not verify against our own bundle.
    verifyX509Svid(certificates, this.#bundle as Bundle, { now });
    // Same arithmetic as the minter (whole seconds, capped at the CA's NotAfter).
    const notAfterMs = Math.min(now.getTime() + ttl * 1000, slot.notAfter.getTime());
    return { certificates, expiresAt: new Date(notAfterMs - (notAfterMs % 1000)), authorityId: slot.id };
  }

  /** An agent's X.509-SVID: the same mint path, for `spiffe://<td>/spire/agent/...`-style IDs. */
  signAgentSvid(req: SignX509SvidRequest): SignedX509Svid {
    return this.signX509Svid(req);
  }

  /** Mints a JWT-SVID with the active JWT key; `exp` is capped at the key's NotAfter. */
  signJwtSvid(req: SignJwtSvidRequest): SignedJwtSvid {
    this.#assertReady();
    const id = this.#memberId(req.spiffeId);
    const now = this.#now();
    const slot = this.#activeSlot(this.#jwt, 'JWT', now);
    const wanted = req.ttlSeconds === undefined ? this.jwtSvidTtlSeconds : positive(req.ttlSeconds, 0, 'ttlSeconds');
    const left = Math.floor((slot.notAfter.getTime() - now.getTime()) / 1000);
    const ttl = Math.min(wanted, left);
    if (ttl <= 0) fail('ERR_CA_NOT_READY', 'the active JWT key expires within a second; rotation is behind (is tick() running?)');
    const signer = (slot.signer ??= new JwtSvidSigner({ privateKey: slot.key.privateKey, kid: slot.id }));
    const token = signer.mint({ spiffeId: id, audience: req.audience, ttlSeconds: ttl, now });
    return { token, expiresAt: new Date((Math.floor(now.getTime() / 1000) + ttl) * 1000), authorityId: slot.id };
  }

  // ------------------------------------------------------------------ operator controls

  /** `localauthority x509|jwt show`: active, prepared and old authorities. */
  authorityState(kind: AuthorityKind): AuthorityState {
    const slots = this.#slots(kind);
    const snap = slots.map((s) => this.#info(s)).sort((a, b) => b.notBefore.getTime() - a.notBefore.getTime());
    const state: { active?: AuthorityInfo; prepared?: AuthorityInfo; old?: AuthorityInfo; all: AuthorityInfo[] } = { all: snap };
    const active = snap.find((a) => a.status === 'active');
    const prepared = snap.find((a) => a.status === 'prepared');
    const old = [...slots].filter((s) => s.status === 'old').sort((a, b) => b.createdSeq - a.createdSeq)[0];
    if (active) state.active = active;
    if (prepared) state.prepared = prepared;
    if (old) state.old = this.#info(old);
    return state;
  }

  /**
   * `localauthority ... prepare`: makes a new prepared authority now (published in the
   * bundle, not signing). An existing prepared authority is replaced, as in SPIRE; it has
   * signed nothing, so dropping it is safe.
   */
  async prepareAuthority(kind: AuthorityKind): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(async () => {
      const now = this.#now();
      if (!this.#slots(kind).some((s) => s.status === 'active' && now < s.notAfter)) {
        fail('ERR_CA_NOT_READY', `there is no active ${kind} authority yet; the server is still initialising`);
      }
      const slot = await this.#prepare(kind, now);
      await this.#commit();
      return this.#info(slot);
    });
  }

  /**
   * `localauthority ... activate`: the prepared authority becomes active and the active one
   * becomes old. When `authorityId` is given it must be the prepared one (SPIRE's check
   * that the operator activates what they think they activate).
   */
  async activateAuthority(kind: AuthorityKind, authorityId?: string): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(async () => {
      const slots = this.#slots(kind);
      const prepared = slots.find((s) => s.status === 'prepared');
      if (authorityId !== undefined) {
        const target = this.#find(kind, authorityId);
        if (target.status !== 'prepared') {
          fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is ${target.status}; only the prepared authority can be activated (run prepare first)`);
        }
      }
      if (!prepared) fail('ERR_CA_AUTHORITY_STATE', `there is no prepared ${kind} authority to activate; run "localauthority ${kind} prepare" first`);
      this.#activate(kind, prepared);
      await this.#commit();
      return this.#info(prepared);
    });
  }

  /**
   * `localauthority ... taint`: marks an old authority as no longer to be relied on. Agents
   * see it in `taintedAuthorities()` / the `authority-tainted` event and re-issue every SVID
   * it signed. Only old authorities (never active or prepared) can be tainted, once; with
   * an upstream authority the local X.509 authority is not in the bundle, so it cannot be.
   */
  async taintAuthority(kind: AuthorityKind, authorityId: string): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(async () => {
      const slot = this.#checkOld(kind, authorityId, 'taint');
      if (slot.tainted) fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is already tainted; revoke it once agents have re-issued their SVIDs`);
      slot.tainted = true;
      this.#log.warn({ kind, authorityId }, 'authority tainted: agents will re-issue SVIDs signed by it');
      this.#emit({ type: 'authority-tainted', kind, authorityId });
      await this.#commit();
      return this.#info(slot);
    });
  }

  /**
   * `localauthority ... revoke`: drops a tainted old authority from the bundle and deletes
   * its key. Anything still signed by it stops verifying, which is why it must be tainted
   * first (SPIRE: "it is not possible to revoke an untainted root CA").
   */
  async revokeAuthority(kind: AuthorityKind, authorityId: string): Promise<AuthorityInfo> {
    this.#assertReady();
    return this.#serial(async () => {
      const slot = this.#checkOld(kind, authorityId, 'revoke');
      if (!slot.tainted) fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is not tainted; taint it first so agents move away from it, then revoke`);
      const info = this.#info(slot);
      this.#remove(kind, slot);
      this.#log.warn({ kind, authorityId }, 'authority revoked and removed from the bundle');
      this.#emit({ type: 'authority-revoked', kind, authorityId });
      await this.#commit();
      await this.#keys.deleteKey(slot.keyId);
      return info;
    });
  }

  // ------------------------------------------------------------------ internals: rotation

  async #rotate(now: Date): Promise<boolean> {
    let changed = false;
    for (const kind of ['x509', 'jwt'] as const) {
      // 1. Drop what has expired: nothing valid can depend on it any more.
      for (const s of [...this.#slots(kind)]) {
        if (now.getTime() >= s.notAfter.getTime()) {
          this.#remove(kind, s);
          this.#log.info({ kind, authorityId: s.id, status: s.status }, 'authority expired; removed from the bundle');
          this.#emit({ type: 'authority-expired', kind, authorityId: s.id });
          this.#pendingKeyDeletes.push(s.keyId);
          changed = true;
        }
      }
      const slots = this.#slots(kind);
      let active = slots.find((s) => s.status === 'active');
      let prepared = slots.find((s) => s.status === 'prepared');
      // 2. No active authority (fresh start, or it expired while the server was down).
      if (!active) {
        prepared ??= await this.#prepare(kind, now);
        this.#activate(kind, prepared);
        active = prepared;
        prepared = undefined;
        changed = true;
      }
      const life = active.notAfter.getTime() - active.notBefore.getTime();
      const t = now.getTime() - active.notBefore.getTime();
      // 3. Prepare at 1/2 of the active authority's life.
      if (!prepared && t >= life / 2) {
        prepared = await this.#prepare(kind, now);
        changed = true;
      }
      // 4. Activate at 5/6.
      if (prepared && t >= (life * 5) / 6) {
        this.#activate(kind, prepared);
        changed = true;
      }
    }
    return changed;
  }

  #pendingKeyDeletes: string[] = [];

  async #prepare(kind: AuthorityKind, now: Date): Promise<Slot> {
    const keyId = KEY_PREFIX[kind] + randomBytes(8).toString('hex');
    const key = await this.#keys.generateKey(keyId, kind === 'x509' ? this.caKeyType : this.jwtKeyType);
    let slot: Slot;
    if (kind === 'x509') {
      const certificate = createCaCertificate({
        trustDomain: this.trustDomain,
        key,
        ttlSeconds: this.caTtlSeconds,
        now,
        ...(this.#upstream ? { upstream: { certificate: this.#upstream.certificate, privateKey: this.#upstream.privateKey } } : {}),
        ...(this.#nameConstraints ? { nameConstraints: true } : {}),
        ...(this.#caSubject ? { subject: this.#caSubject } : {}),
      });
      const parsed = parseCertificate(certificate);
      slot = {
        kind,
        id: (parsed.subjectKeyId as Buffer).toString('hex'),
        keyId,
        certificate,
        publicKey: key.publicKey,
        notBefore: parsed.notBefore,
        notAfter: parsed.notAfter,
        status: 'prepared',
        tainted: false,
        createdSeq: ++this.#createdCounter,
        key,
      };
      if (this.#upstreamId !== undefined) slot.upstreamAuthorityId = this.#upstreamId;
    } else {
      slot = {
        kind,
        id: randomBytes(16).toString('hex'),
        keyId,
        publicKey: key.publicKey,
        notBefore: new Date(Math.floor(now.getTime() / 1000) * 1000),
        notAfter: new Date(Math.floor(now.getTime() / 1000) * 1000 + this.jwtKeyTtlSeconds * 1000),
        status: 'prepared',
        tainted: false,
        createdSeq: ++this.#createdCounter,
        key,
      };
    }
    const slots = this.#slots(kind);
    for (const s of slots.filter((x) => x.status === 'prepared')) {
      this.#remove(kind, s);
      this.#pendingKeyDeletes.push(s.keyId);
    }
    this.#slots(kind).push(slot);
    this.#log.info({ kind, authorityId: slot.id, notAfter: slot.notAfter.toISOString() }, 'authority prepared');
    this.#emit({ type: 'authority-prepared', kind, authorityId: slot.id });
    return slot;
  }

  #activate(kind: AuthorityKind, slot: Slot): void {
    for (const s of this.#slots(kind)) if (s.status === 'active') s.status = 'old';
    slot.status = 'active';
    this.#log.info({ kind, authorityId: slot.id }, 'authority activated');
    this.#emit({ type: 'authority-activated', kind, authorityId: slot.id });
  }

  #remove(kind: AuthorityKind, slot: Slot): void {
    if (kind === 'x509') this.#x509 = this.#x509.filter((s) => s !== slot);
    else this.#jwt = this.#jwt.filter((s) => s !== slot);
  }

  // ------------------------------------------------------------------ internals: state

  /** Rebuilds the bundle, bumps the sequence if its content changed, saves the journal, then deletes retired keys. */
  async #commit(): Promise<void> {
    this.#refreshBundle();
    await this.#save();
    const deletes = this.#pendingKeyDeletes;
    this.#pendingKeyDeletes = [];
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
    const roots: Buffer[] = [...(this.#upstream?.roots ?? [])];
    for (const s of this.#x509) if (s.upstreamAuthorityId === undefined) roots.push(s.certificate as Buffer);
    const jwt = new Map<string, KeyObject>(this.#jwt.map((s) => [s.id, s.publicKey]));
    // Taints count as changes so that agents watching the sequence notice them.
    const h = createHash('sha256');
    for (const r of roots.map((c) => createHash('sha256').update(c).digest('hex')).sort()) h.update('x509:' + r + '\n');
    for (const s of [...this.#jwt].sort((a, b) => (a.id < b.id ? -1 : 1))) h.update('jwt:' + s.id + ':' + exportSpkiDer(s.publicKey).toString('base64') + '\n');
    for (const s of [...this.#x509, ...this.#jwt]) if (s.tainted) h.update('tainted:' + s.kind + ':' + s.id + '\n');
    const fingerprint = h.digest('hex');
    if (this.#bundle !== undefined && fingerprint === this.#bundleFingerprint) return;
    const changed = fingerprint !== this.#bundleFingerprint;
    if (changed) this.#sequence++;
    this.#bundleFingerprint = fingerprint;
    this.#bundle = new Bundle({ trustDomain: this.trustDomain, x509Authorities: roots, jwtAuthorities: jwt, sequence: this.#sequence, refreshHintSeconds: this.#refreshHint });
    if (this.#ready && changed) this.#emit({ type: 'bundle-updated', sequence: this.#sequence });
  }

  async #save(): Promise<void> {
    const data: JournalData = {
      version: JOURNAL_VERSION,
      trustDomain: this.trustDomain.name,
      sequence: this.#sequence,
      bundleDigest: this.#bundleFingerprint,
      x509: this.#x509.map((s) => ({
        id: s.id,
        keyId: s.keyId,
        certificate: (s.certificate as Buffer).toString('base64'),
        status: s.status,
        tainted: s.tainted,
        ...(s.upstreamAuthorityId !== undefined ? { upstreamAuthorityId: s.upstreamAuthorityId } : {}),
      })),
      jwt: this.#jwt.map((s) => ({
        id: s.id,
        keyId: s.keyId,
        publicKey: exportSpkiDer(s.publicKey).toString('base64'),
        notBefore: s.notBefore.toISOString(),
        notAfter: s.notAfter.toISOString(),
        status: s.status,
        tainted: s.tainted,
      })),
    };
    await this.#journal.save(encodeJournal(data));
  }

  async #restore(j: JournalData): Promise<void> {
    if (j.trustDomain !== this.trustDomain.name) {
      fail('ERR_CA_CONFIG', `the CA journal belongs to trust domain ${j.trustDomain}, but the server is configured for ${this.trustDomain.name}; use the matching data directory`);
    }
    this.#sequence = j.sequence;
    const restored: Record<AuthorityKind, Slot[]> = { x509: [], jwt: [] };
    const entries = [
      ...j.x509.map((e) => ({ kind: 'x509' as const, e })),
      ...j.jwt.map((e) => ({ kind: 'jwt' as const, e })),
    ];
    for (const { kind, e } of entries) {
      const key = await this.#keys.getKey(e.keyId);
      if (key === undefined) {
        this.#log.warn({ kind, authorityId: e.id, keyId: e.keyId, status: e.status }, 'CA journal names a key the key manager does not have; dropping that authority');
        continue;
      }
      let slot: Slot;
      if (kind === 'x509' && 'certificate' in e) {
        const certificate = Buffer.from(e.certificate, 'base64');
        const parsed = parseCertificate(certificate);
        slot = { kind, id: e.id, keyId: e.keyId, certificate, publicKey: key.publicKey, notBefore: parsed.notBefore, notAfter: parsed.notAfter, status: e.status, tainted: e.tainted, createdSeq: 0, key };
        if (!exportSpkiDer(key.publicKey).equals(parsed.spki)) {
          this.#log.warn({ kind, authorityId: e.id, keyId: e.keyId }, 'CA key does not match the journal\'s certificate; dropping that authority');
          continue;
        }
        if (e.upstreamAuthorityId !== undefined) slot.upstreamAuthorityId = e.upstreamAuthorityId;
        if (slot.upstreamAuthorityId !== this.#upstreamId && slot.status !== 'old') {
          // Configuration changed (upstream added, removed or replaced): this CA can no longer
          // chain to what we publish. Retire it; a fresh active one is made below.
          this.#log.warn({ kind, authorityId: e.id }, 'X.509 authority was issued under a different upstream configuration; retiring it');
          slot.status = 'old';
        }
      } else if (kind === 'jwt' && 'publicKey' in e) {
        const pub = importSpki(Buffer.from(e.publicKey, 'base64'));
        if (!pub.equals(key.publicKey)) {
          this.#log.warn({ kind, authorityId: e.id, keyId: e.keyId }, 'JWT key does not match the journal\'s public key; dropping that authority');
          continue;
        }
        slot = { kind, id: e.id, keyId: e.keyId, publicKey: key.publicKey, notBefore: new Date(e.notBefore), notAfter: new Date(e.notAfter), status: e.status, tainted: e.tainted, createdSeq: 0, key };
      } else {
        continue;
      }
      restored[kind].push(slot);
    }
    for (const kind of ['x509', 'jwt'] as const) {
      const list = restored[kind].sort((a, b) => a.notBefore.getTime() - b.notBefore.getTime());
      for (const s of list) s.createdSeq = ++this.#createdCounter;
      // At most one active and one prepared; keep the newest of each, demote the rest.
      for (const status of ['active', 'prepared'] as const) {
        const same = list.filter((s) => s.status === status);
        for (const s of same.slice(0, -1)) s.status = 'old';
      }
    }
    this.#x509 = restored.x509;
    this.#jwt = restored.jwt;
    // The bundle as last saved: #refreshBundle bumps the sequence only if it now differs.
    this.#bundleFingerprint = j.bundleDigest;
  }

  async #deleteOrphanKeys(): Promise<void> {
    const known = new Set([...this.#x509, ...this.#jwt].map((s) => s.keyId));
    for (const id of await this.#keys.list()) {
      if ((id.startsWith(KEY_PREFIX.x509) || id.startsWith(KEY_PREFIX.jwt)) && !known.has(id)) this.#pendingKeyDeletes.push(id);
    }
  }

  // ------------------------------------------------------------------ internals: helpers

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #slots(kind: AuthorityKind): Slot[] {
    if (kind === 'x509') return this.#x509;
    if (kind === 'jwt') return this.#jwt;
    throw new TypeError(`authority kind must be 'x509' or 'jwt', not ${String(kind)}`);
  }

  #find(kind: AuthorityKind, authorityId: string): Slot {
    if (typeof authorityId !== 'string' || authorityId === '') throw new TypeError('an authority ID is required');
    const slot = this.#slots(kind).find((s) => s.id === authorityId.toLowerCase() || s.id === authorityId);
    if (!slot) fail('ERR_CA_AUTHORITY_NOT_FOUND', `no ${kind} authority with ID ${authorityId}; run "localauthority ${kind} show" to list them`);
    return slot;
  }

  #checkOld(kind: AuthorityKind, authorityId: string, action: 'taint' | 'revoke'): Slot {
    const slot = this.#find(kind, authorityId);
    if (kind === 'x509' && this.#upstream) {
      fail('ERR_CA_AUTHORITY_STATE', `the local X.509 authority cannot be ${action === 'taint' ? 'tainted' : 'revoked'} while an upstream authority signs it; its roots are the upstream's`);
    }
    if (slot.status === 'active') {
      fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is the active one and cannot be ${action === 'taint' ? 'tainted' : 'revoked'}; prepare and activate a new authority first`);
    }
    if (slot.status !== 'old') {
      fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is ${slot.status}; only old authorities can be ${action === 'taint' ? 'tainted' : 'revoked'}`);
    }
    return slot;
  }

  #activeSlot(slots: Slot[], what: string, now: Date): Slot {
    const s = slots.find((x) => x.status === 'active');
    if (!s) fail('ERR_CA_NOT_READY', `no active ${what} authority; the CA is not initialised`);
    if (now.getTime() >= s.notAfter.getTime()) fail('ERR_CA_NOT_READY', `the active ${what} authority expired at ${s.notAfter.toISOString()}; rotation is behind (is tick() running?)`);
    return s;
  }

  #intermediatesFor(slot: Slot): Buffer[] {
    if (slot.upstreamAuthorityId === undefined || !this.#upstream) return [];
    return [slot.certificate as Buffer, ...this.#upstream.intermediates];
  }

  #memberId(input: SpiffeId | string): SpiffeId {
    const id = input instanceof SpiffeId ? input : SpiffeId.parse(input);
    if (!id.memberOf(this.trustDomain)) {
      throw new SpiffeIdError('ERR_SPIFFE_ID_NOT_MEMBER', `${id} is not in trust domain ${this.trustDomain.name}; this CA only signs identities of its own trust domain`);
    }
    if (id.isTrustDomainId) throw new SpiffeIdError('ERR_SPIFFE_ID_PATH_REQUIRED', `${id} is a trust domain ID; an SVID needs a path`);
    return id;
  }

  #assertReady(): void {
    if (!this.#ready) fail('ERR_CA_NOT_READY', 'the CA is not initialised; await ca.init() first');
  }

  #info(s: Slot): AuthorityInfo {
    return Object.freeze({
      kind: s.kind,
      id: s.id,
      keyId: s.keyId,
      ...(s.certificate ? { certificate: Buffer.from(s.certificate) } : {}),
      publicKey: s.publicKey,
      notBefore: new Date(s.notBefore),
      notAfter: new Date(s.notAfter),
      status: s.status,
      tainted: s.tainted,
      ...(s.upstreamAuthorityId !== undefined ? { upstreamAuthorityId: s.upstreamAuthorityId } : {}),
    });
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
