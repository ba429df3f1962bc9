/**
 * @module ca/slot-journal
 *
 * Authority slots to and from the CA journal's data (`journal.ts` owns the byte format).
 *
 * Threat stopped on restore: trusting an authority whose key is gone or is not the key the
 * journal recorded (a swapped key file would make the CA sign with a key nobody trusts,
 * or publish a root it cannot sign for). Such authorities are dropped with a warning;
 * an X.509 authority issued under a different upstream configuration is retired to `old`.
 */
import { exportSpkiDer, importSpki } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/index.js';
import type { AuthorityKind, CaLogger } from './authority.js';
import type { Slot } from './authority-slots.js';
import { JOURNAL_VERSION, type JournalData } from './journal.js';
import type { KeyManager } from './key-manager.js';

/** The journal data recording `x509` and `jwt` (keys stay in the key manager). */
export function journalOf(d: {
  trustDomain: string;
  sequence: number;
  bundleDigest: string;
  x509: readonly Slot[];
  jwt: readonly Slot[];
}): JournalData {
  return {
    version: JOURNAL_VERSION,
    trustDomain: d.trustDomain,
    sequence: d.sequence,
    bundleDigest: d.bundleDigest,
    x509: d.x509.map((s) => ({
      id: s.id,
      keyId: s.keyId,
      certificate: (s.certificate as Buffer).toString('base64'),
      status: s.status,
      tainted: s.tainted,
      ...(s.upstreamAuthorityId !== undefined ? { upstreamAuthorityId: s.upstreamAuthorityId } : {}),
    })),
    jwt: d.jwt.map((s) => ({
      id: s.id,
      keyId: s.keyId,
      publicKey: exportSpkiDer(s.publicKey).toString('base64'),
      notBefore: s.notBefore.toISOString(),
      notAfter: s.notAfter.toISOString(),
      status: s.status,
      tainted: s.tainted,
    })),
  };
}

/**
 * The journal's authorities whose keys the key manager still holds and match, in journal
 * order (`createdSeq` 0: `AuthoritySlots.adopt` numbers them).
 */
export async function slotsFromJournal(
  j: JournalData,
  ctx: { keys: KeyManager; log: CaLogger; upstreamId: string | undefined },
): Promise<Record<AuthorityKind, Slot[]>> {
  const restored: Record<AuthorityKind, Slot[]> = { x509: [], jwt: [] };
  const entries = [
    ...j.x509.map((e) => ({ kind: 'x509' as const, e })),
    ...j.jwt.map((e) => ({ kind: 'jwt' as const, e })),
  ];
  for (const { kind, e } of entries) {
    const key = await ctx.keys.getKey(e.keyId);
    if (key === undefined) {
      ctx.log.warn({ kind, authorityId: e.id, keyId: e.keyId, status: e.status }, 'CA journal names a key the key manager does not have; dropping that authority');
      continue;
    }
    let slot: Slot;
    if (kind === 'x509' && 'certificate' in e) {
      const certificate = Buffer.from(e.certificate, 'base64');
      const parsed = parseCertificate(certificate);
      slot = { kind, id: e.id, keyId: e.keyId, certificate, publicKey: key.publicKey, notBefore: parsed.notBefore, notAfter: parsed.notAfter, status: e.status, tainted: e.tainted, createdSeq: 0, key };
      if (!exportSpkiDer(key.publicKey).equals(parsed.spki)) {
        ctx.log.warn({ kind, authorityId: e.id, keyId: e.keyId }, 'CA key does not match the journal\'s certificate; dropping that authority');
        continue;
      }
      if (e.upstreamAuthorityId !== undefined) slot.upstreamAuthorityId = e.upstreamAuthorityId;
      if (slot.upstreamAuthorityId !== ctx.upstreamId && slot.status !== 'old') {
        // Configuration changed (upstream added, removed or replaced): this CA can no longer
        // chain to what we publish. Retire it; the rotation after restore makes a fresh active one.
        ctx.log.warn({ kind, authorityId: e.id }, 'X.509 authority was issued under a different upstream configuration; retiring it');
        slot.status = 'old';
      }
    } else if (kind === 'jwt' && 'publicKey' in e) {
      const pub = importSpki(Buffer.from(e.publicKey, 'base64'));
      if (!pub.equals(key.publicKey)) {
        ctx.log.warn({ kind, authorityId: e.id, keyId: e.keyId }, 'JWT key does not match the journal\'s public key; dropping that authority');
        continue;
      }
      slot = { kind, id: e.id, keyId: e.keyId, publicKey: key.publicKey, notBefore: new Date(e.notBefore), notAfter: new Date(e.notAfter), status: e.status, tainted: e.tainted, createdSeq: 0, key };
    } else {
      continue;
    }
    restored[kind].push(slot);
  }
  return restored;
}
