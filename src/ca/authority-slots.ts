/**
 * @module ca/authority-slots
 *
 * The authority slot state machine behind `ServerCa`: per kind (X.509 CA, JWT key), the
 * authorities the CA knows, each `prepared`, `active` or `old`, and the rules that move
 * them.
 *
 * Rotation timing (`rotate`, driven by the caller's clock): expired authorities are
 * dropped; with no active authority one is prepared and activated at once; the next one is
 * prepared at 1/2 of the active one's life and activated at 5/6.
 *
 * Threats stopped (operator rules, `checkOld`): tainting or revoking the authority that is
 * signing right now (an outage), or one that is only prepared; with an upstream authority
 * the local X.509 authority is not in the bundle, so it can be neither. Revoke additionally
 * needs a tainted authority (checked by the caller).
 *
 * The slots do no locking and no persistence: `ServerCa` serialises every change and saves
 * the journal; keys retired here are queued in `takePendingKeyDeletes()` and deleted only
 * after that save.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import type { TrustDomain } from '../spiffe/id.js';
import type { KeyPair, KeyType } from '../spiffe/keys.js';
import type { JwtSvidSigner } from '../spiffe/jwt/index.js';
import { createCaCertificate, parseCertificate, type X509SvidMinter } from '../spiffe/x509/index.js';
import type { AuthorityInfo, AuthorityKind, AuthorityState, AuthorityStatus, CaEvent, CaLogger } from './authority.js';
import { fail } from './ca-error.js';
import type { KeyManager } from './key-manager.js';
import type { UpstreamAuthority } from './upstream.js';

/** Internal, mutable form of an authority plus the objects the hot paths need. */
export interface Slot {
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

export const KEY_PREFIX: Record<AuthorityKind, string> = { x509: 'x509-ca-', jwt: 'jwt-key-' };

/** A frozen, copied snapshot of a slot for callers outside the CA. */
export function slotInfo(s: Slot): AuthorityInfo {
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

export interface AuthoritySlotsConfig {
  trustDomain: TrustDomain;
  keys: KeyManager;
  log: CaLogger;
  emit: (e: CaEvent) => void;
  caTtlSeconds: number;
  jwtKeyTtlSeconds: number;
  caKeyType: KeyType;
  jwtKeyType: KeyType;
  caSubject: { commonName?: string; organization?: string; country?: string } | undefined;
  nameConstraints: boolean;
  upstream: UpstreamAuthority | undefined;
  upstreamId: string | undefined;
}

export class AuthoritySlots {
  readonly #cfg: AuthoritySlotsConfig;
  #x509: Slot[] = [];
  #jwt: Slot[] = [];
  #createdCounter = 0;
  #pendingKeyDeletes: string[] = [];

  constructor(cfg: AuthoritySlotsConfig) {
    this.#cfg = cfg;
  }

  get x509(): readonly Slot[] {
    return this.#x509;
  }

  get jwt(): readonly Slot[] {
    return this.#jwt;
  }

  /** The slots of one kind (the live array: removal replaces it, so re-read after changes). */
  of(kind: AuthorityKind): Slot[] {
    if (kind === 'x509') return this.#x509;
    if (kind === 'jwt') return this.#jwt;
    throw new TypeError(`authority kind must be 'x509' or 'jwt', not ${String(kind)}`);
  }

  /** Key IDs retired since the last call, to delete once the journal no longer names them. */
  takePendingKeyDeletes(): string[] {
    const deletes = this.#pendingKeyDeletes;
    this.#pendingKeyDeletes = [];
    return deletes;
  }

  /** `localauthority x509|jwt show`: active, prepared and old authorities. */
  state(kind: AuthorityKind): AuthorityState {
    const slots = this.of(kind);
    const snap = slots.map((s) => slotInfo(s)).sort((a, b) => b.notBefore.getTime() - a.notBefore.getTime());
    const state: { active?: AuthorityInfo; prepared?: AuthorityInfo; old?: AuthorityInfo; all: AuthorityInfo[] } = { all: snap };
    const active = snap.find((a) => a.status === 'active');
    const prepared = snap.find((a) => a.status === 'prepared');
    const old = [...slots].filter((s) => s.status === 'old').sort((a, b) => b.createdSeq - a.createdSeq)[0];
    if (active) state.active = active;
    if (prepared) state.prepared = prepared;
    if (old) state.old = slotInfo(old);
    return state;
  }

  // ------------------------------------------------------------------ rotation

  /** Prune expired authorities, make one active if none is, prepare at 1/2, activate at 5/6. True when anything changed. */
  async rotate(now: Date): Promise<boolean> {
    let changed = false;
    for (const kind of ['x509', 'jwt'] as const) {
      // 1. Drop what has expired: nothing valid can depend on it any more.
      for (const s of [...this.of(kind)]) {
        if (now.getTime() >= s.notAfter.getTime()) {
          this.remove(kind, s);
          this.#cfg.log.info({ kind, authorityId: s.id, status: s.status }, 'authority expired; removed from the bundle');
          this.#cfg.emit({ type: 'authority-expired', kind, authorityId: s.id });
          this.#pendingKeyDeletes.push(s.keyId);
          changed = true;
        }
      }
      const slots = this.of(kind);
      let active = slots.find((s) => s.status === 'active');
      let prepared = slots.find((s) => s.status === 'prepared');
      // 2. No active authority (fresh start, or it expired while the server was down).
      if (!active) {
        prepared ??= await this.prepare(kind, now);
        this.activate(kind, prepared);
        active = prepared;
        prepared = undefined;
        changed = true;
      }
      const life = active.notAfter.getTime() - active.notBefore.getTime();
      const t = now.getTime() - active.notBefore.getTime();
      // 3. Prepare at 1/2 of the active authority's life.
      if (!prepared && t >= life / 2) {
        prepared = await this.prepare(kind, now);
        changed = true;
      }
      // 4. Activate at 5/6.
      if (prepared && t >= (life * 5) / 6) {
        this.activate(kind, prepared);
        changed = true;
      }
    }
    return changed;
  }

  /** A new prepared authority (new key, and for X.509 a new CA certificate); replaces any prepared one. */
  async prepare(kind: AuthorityKind, now: Date): Promise<Slot> {
    const cfg = this.#cfg;
    const keyId = KEY_PREFIX[kind] + randomBytes(8).toString('hex');
    const key = await cfg.keys.generateKey(keyId, kind === 'x509' ? cfg.caKeyType : cfg.jwtKeyType);
    let slot: Slot;
    if (kind === 'x509') {
      const certificate = createCaCertificate({
        trustDomain: cfg.trustDomain,
        key,
        ttlSeconds: cfg.caTtlSeconds,
        now,
        ...(cfg.upstream ? { upstream: { certificate: cfg.upstream.certificate, privateKey: cfg.upstream.privateKey } } : {}),
        ...(cfg.nameConstraints ? { nameConstraints: true } : {}),
        ...(cfg.caSubject ? { subject: cfg.caSubject } : {}),
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
      if (cfg.upstreamId !== undefined) slot.upstreamAuthorityId = cfg.upstreamId;
    } else {
      slot = {
        kind,
        id: randomBytes(16).toString('hex'),
        keyId,
        publicKey: key.publicKey,
        notBefore: new Date(Math.floor(now.getTime() / 1000) * 1000),
        notAfter: new Date(Math.floor(now.getTime() / 1000) * 1000 + cfg.jwtKeyTtlSeconds * 1000),
        status: 'prepared',
        tainted: false,
        createdSeq: ++this.#createdCounter,
        key,
      };
    }
    const slots = this.of(kind);
    for (const s of slots.filter((x) => x.status === 'prepared')) {
      this.remove(kind, s);
      this.#pendingKeyDeletes.push(s.keyId);
    }
    this.of(kind).push(slot);
    cfg.log.info({ kind, authorityId: slot.id, notAfter: slot.notAfter.toISOString() }, 'authority prepared');
    cfg.emit({ type: 'authority-prepared', kind, authorityId: slot.id });
    return slot;
  }

  /** `slot` becomes active; the active one becomes old. */
  activate(kind: AuthorityKind, slot: Slot): void {
    for (const s of this.of(kind)) if (s.status === 'active') s.status = 'old';
    slot.status = 'active';
    this.#cfg.log.info({ kind, authorityId: slot.id }, 'authority activated');
    this.#cfg.emit({ type: 'authority-activated', kind, authorityId: slot.id });
  }

  remove(kind: AuthorityKind, slot: Slot): void {
    if (kind === 'x509') this.#x509 = this.#x509.filter((s) => s !== slot);
    else this.#jwt = this.#jwt.filter((s) => s !== slot);
  }

  // ------------------------------------------------------------------ restore

  /**
   * Takes the authorities read back from the journal: numbers them oldest first and keeps
   * at most one active and one prepared per kind (the newest of each; the rest become old).
   */
  adopt(restored: Record<AuthorityKind, Slot[]>): void {
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
  }

  /** Queues for deletion every CA key in the key manager that no authority uses. */
  async deleteOrphanKeys(): Promise<void> {
    const known = new Set([...this.#x509, ...this.#jwt].map((s) => s.keyId));
    for (const id of await this.#cfg.keys.list()) {
      if ((id.startsWith(KEY_PREFIX.x509) || id.startsWith(KEY_PREFIX.jwt)) && !known.has(id)) this.#pendingKeyDeletes.push(id);
    }
  }

  // ------------------------------------------------------------------ lookups and operator rules

  find(kind: AuthorityKind, authorityId: string): Slot {
    if (typeof authorityId !== 'string' || authorityId === '') throw new TypeError('an authority ID is required');
    const slot = this.of(kind).find((s) => s.id === authorityId.toLowerCase() || s.id === authorityId);
    if (!slot) fail('ERR_CA_AUTHORITY_NOT_FOUND', `no ${kind} authority with ID ${authorityId}; run "localauthority ${kind} show" to list them`);
    return slot;
  }

  /** The old authority an operator may taint or revoke; CaError for any other. */
  checkOld(kind: AuthorityKind, authorityId: string, action: 'taint' | 'revoke'): Slot {
    const slot = this.find(kind, authorityId);
    if (kind === 'x509' && this.#cfg.upstream) {
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

  /** The active authority of `kind` if it has not expired at `now`; ERR_CA_NOT_READY otherwise. */
  active(kind: AuthorityKind, what: string, now: Date): Slot {
    const s = this.of(kind).find((x) => x.status === 'active');
    if (!s) fail('ERR_CA_NOT_READY', `no active ${what} authority; the CA is not initialised`);
    if (now.getTime() >= s.notAfter.getTime()) fail('ERR_CA_NOT_READY', `the active ${what} authority expired at ${s.notAfter.toISOString()}; rotation is behind (is tick() running?)`);
    return s;
  }
}
