/**
 * @module ca/crl
 *
 * The CA's X.509 CRLs (issue 10): one per X.509 authority that signs or signed SVIDs
 * (active and old; a prepared one has signed nothing), listing the revoked serials that
 * authority issued, signed with the authority's own key through the same signing path as
 * its certificates (spiffe/x509/crl `buildCrl` → build.ts `signTbs`).
 *
 * Threat: a CRL signed by the wrong key, or listing another authority's serials, would be
 * refused by relying parties (or, worse, let a revoked SVID pass): each CRL is built from
 * the authority's certificate (issuer name, AKI) and key only, with that authority's
 * entries only; an entry whose authority has no slot here is dropped (it was issued by
 * another server of the trust domain, or by an authority that has expired, so no relying
 * party can accept the certificate anyway).
 */
import { buildCrl, type CrlReason } from '../spiffe/x509/crl.js';
import type { Slot } from './authority-slots.js';

export interface CrlInputEntry {
  readonly serialHex: string;
  /** Hex SKI of the authority that issued the revoked SVID. */
  readonly authorityId: string;
  readonly revokedAt: Date;
  readonly reason: CrlReason;
}

export interface SignX509CrlsRequest {
  readonly entries: readonly CrlInputEntry[];
  /** The same number on each CRL of this round; increases from round to round. */
  readonly crlNumber: bigint;
  readonly thisUpdate: Date;
  /** Capped at each authority's NotAfter. */
  readonly nextUpdate: Date;
}

export interface SignedX509Crl {
  readonly authorityId: string;
  readonly der: Buffer;
  readonly nextUpdate: Date;
  readonly entryCount: number;
}

export function signAuthorityCrls(slots: readonly Slot[], req: SignX509CrlsRequest): SignedX509Crl[] {
  const byAuthority = new Map<string, CrlInputEntry[]>();
  for (const e of req.entries) {
    let list = byAuthority.get(e.authorityId);
    if (!list) byAuthority.set(e.authorityId, (list = []));
    list.push(e);
  }
  const out: SignedX509Crl[] = [];
  for (const s of slots) {
    if (s.kind !== 'x509' || s.status === 'prepared' || s.certificate === undefined) continue;
    const nextUpdate = new Date(Math.min(req.nextUpdate.getTime(), s.notAfter.getTime()));
    if (nextUpdate.getTime() <= req.thisUpdate.getTime()) continue;
    const entries = byAuthority.get(s.id) ?? [];
    const der = buildCrl({ caCertificate: s.certificate, caPrivateKey: s.key.privateKey, crlNumber: req.crlNumber, thisUpdate: req.thisUpdate, nextUpdate, entries });
    out.push({ authorityId: s.id, der, nextUpdate, entryCount: entries.length });
  }
  return out;
}
