/**
 * @module ca/authority-admin
 *
 * The operator's controls over the CA's authorities (`localauthority x509|jwt prepare |
 * activate | taint | revoke`, as SPIRE's LocalAuthority API): each checks the request
 * against the slot rules (authority-slots.ts), changes the slots, logs and emits what
 * happened, and commits (bundle rebuilt, journal saved). `ServerCa` runs each one
 * serialised with every other state change, and only once it is initialised.
 *
 * Threats stopped:
 * - revoking the authority that is signing right now (an outage), or one that agents have
 *   not been told to move away from: only an old authority can be tainted, and revoke
 *   needs an old, tainted one (SPIRE: "it is not possible to revoke an untainted root CA");
 * - activating something other than what the operator meant: a given `authorityId` must be
 *   the prepared authority;
 * - preparing a successor while the CA has no active authority (still initialising).
 */
import type { AuthorityInfo, AuthorityKind, CaEvent, CaLogger } from './authority.js';
import { slotInfo, type AuthoritySlots } from './authority-slots.js';
import { fail } from './ca-error.js';
import type { KeyManager } from './key-manager.js';

export interface AuthorityAdminConfig {
  slots: AuthoritySlots;
  keys: KeyManager;
  log: CaLogger;
  now: () => Date;
  emit: (e: CaEvent) => void;
  /** Rebuilds the bundle, saves the journal and deletes retired keys (ServerCa). */
  commit: () => Promise<void>;
}

/** Prepare, activate, taint and revoke; the caller serialises them. */
export class AuthorityAdmin {
  readonly #slots: AuthoritySlots;
  readonly #keys: KeyManager;
  readonly #log: CaLogger;
  readonly #now: () => Date;
  readonly #emit: (e: CaEvent) => void;
  readonly #commit: () => Promise<void>;

  constructor(cfg: AuthorityAdminConfig) {
    this.#slots = cfg.slots;
    this.#keys = cfg.keys;
    this.#log = cfg.log;
    this.#now = cfg.now;
    this.#emit = cfg.emit;
    this.#commit = cfg.commit;
  }

  /**
   * `localauthority ... prepare`: makes a new prepared authority now (published in the
   * bundle, not signing). An existing prepared authority is replaced, as in SPIRE; it has
   * signed nothing, so dropping it is safe.
   */
  async prepare(kind: AuthorityKind): Promise<AuthorityInfo> {
    const now = this.#now();
    if (!this.#slots.of(kind).some((s) => s.status === 'active' && now < s.notAfter)) {
      fail('ERR_CA_NOT_READY', `there is no active ${kind} authority yet; the server is still initialising`);
    }
    const slot = await this.#slots.prepare(kind, now);
    await this.#commit();
    return slotInfo(slot);
  }

  /**
   * `localauthority ... activate`: the prepared authority becomes active and the active one
   * becomes old. When `authorityId` is given it must be the prepared one (SPIRE's check
   * that the operator activates what they think they activate).
   */
  async activate(kind: AuthorityKind, authorityId?: string): Promise<AuthorityInfo> {
    const slots = this.#slots.of(kind);
    const prepared = slots.find((s) => s.status === 'prepared');
    if (authorityId !== undefined) {
      const target = this.#slots.find(kind, authorityId);
      if (target.status !== 'prepared') {
        fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is ${target.status}; only the prepared authority can be activated (run prepare first)`);
      }
    }
    if (!prepared) fail('ERR_CA_AUTHORITY_STATE', `there is no prepared ${kind} authority to activate; run "localauthority ${kind} prepare" first`);
    this.#slots.activate(kind, prepared);
    await this.#commit();
    return slotInfo(prepared);
  }

  /**
   * `localauthority ... taint`: marks an old authority as no longer to be relied on. Agents
   * see it in `taintedAuthorities()` / the `authority-tainted` event and re-issue every SVID
   * it signed. Only old authorities (never active or prepared) can be tainted, once; with
   * an upstream authority the local X.509 authority is not in the bundle, so it cannot be.
   */
  async taint(kind: AuthorityKind, authorityId: string): Promise<AuthorityInfo> {
    const slot = this.#slots.checkOld(kind, authorityId, 'taint');
    if (slot.tainted) fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is already tainted; revoke it once agents have re-issued their SVIDs`);
    slot.tainted = true;
    this.#log.warn({ kind, authorityId }, 'authority tainted: agents will re-issue SVIDs signed by it');
    this.#emit({ type: 'authority-tainted', kind, authorityId });
    await this.#commit();
    return slotInfo(slot);
  }

  /**
   * `localauthority ... revoke`: drops a tainted old authority from the bundle and deletes
   * its key. Anything still signed by it stops verifying, which is why it must be tainted
   * first.
   */
  async revoke(kind: AuthorityKind, authorityId: string): Promise<AuthorityInfo> {
    const slot = this.#slots.checkOld(kind, authorityId, 'revoke');
    if (!slot.tainted) fail('ERR_CA_AUTHORITY_STATE', `${kind} authority ${authorityId} is not tainted; taint it first so agents move away from it, then revoke`);
    const info = slotInfo(slot);
    this.#slots.remove(kind, slot);
    this.#log.warn({ kind, authorityId }, 'authority revoked and removed from the bundle');
    this.#emit({ type: 'authority-revoked', kind, authorityId });
    await this.#commit();
    await this.#keys.deleteKey(slot.keyId);
    return info;
  }
}
