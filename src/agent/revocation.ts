/**
 * @module agent/revocation
 *
 * Which of the agent's X509-SVIDs the server revoked (issue 10). The server pushes the
 * current CRL of each of its X.509 authorities on the authorised-entry stream
 * (`AuthorizedUpdate.x509Crls`); an SVID is revoked when a CRL issued by the SVID's issuer
 * (CRL authority key identifier = the leaf's AKI) lists its serial.
 *
 * Threat it stops: a revoked (e.g. stolen) SVID staying in use until it expires. The cache
 * re-issues an affected SVID at once and never serves it meanwhile; the agent renews its
 * own SVID the same way (agent-svid-renewal `renewIfRevoked`).
 *
 * Memory: the agent holds only the CRLs of the latest update (each push replaces them, it
 * never accumulates), parsed once: an update whose CRL bytes are the same as the last one's
 * reuses the parsed set. Entries of expired SVIDs leave the server's CRLs, so with short
 * SVID lifetimes the set stays at most what was revoked within one SVID TTL (~40 bytes per
 * entry on the wire, one serial string per entry here; 100k revocations ≈ 5 MB of DER).
 * Beyond ~80k live revocations the Workload API messages carrying the CRL pass gRPC's
 * common 4 MiB default receive limit of workload clients (go-spiffe, grpc-js): such a
 * volume needs shorter SVID TTLs, or clients with a larger limit.
 */
import { createHash } from 'node:crypto';
import { parseCrl } from '../spiffe/x509/crl.js';
import { parseCertificate } from '../spiffe/x509/parse.js';

/** Revoked serials (lowercase hex of the INTEGER content) per issuing authority (AKI, lowercase hex). */
export interface RevokedSerials {
  readonly byAuthority: ReadonlyMap<string, ReadonlySet<string>>;
  /** The CRLs (DER) as received, for the Workload API's `crl` fields. */
  readonly crls: readonly Buffer[];
  /** Digest of the CRL bytes: equal digests, same set. */
  readonly digest: string;
  readonly count: number;
}

export const NO_REVOCATIONS: RevokedSerials = Object.freeze({ byAuthority: new Map(), crls: [], digest: '', count: 0 });

let last: RevokedSerials = NO_REVOCATIONS;

/**
 * The revoked serials the CRLs list. A CRL that does not parse, or names no issuer key, is
 * left out (and reported through `onBad`). The last result is reused when the bytes match.
 */
export function revokedSerialsOf(crls: readonly Buffer[] | undefined, onBad?: (message: string) => void): RevokedSerials {
  const list = crls ?? [];
  if (list.length === 0) return NO_REVOCATIONS;
  const h = createHash('sha256');
  for (const c of list) h.update(createHash('sha256').update(c).digest());
  const digest = h.digest('hex');
  if (digest === last.digest) return last;
  const byAuthority = new Map<string, Set<string>>();
  const kept: Buffer[] = [];
  let count = 0;
  for (const der of list) {
    try {
      const crl = parseCrl(der);
      if (crl.authorityKeyId === undefined) throw new Error('the CRL names no authority key identifier');
      const aki = crl.authorityKeyId.toString('hex');
      let set = byAuthority.get(aki);
      if (!set) byAuthority.set(aki, (set = new Set()));
      for (const e of crl.entries) set.add(e.serialHex);
      count += crl.entries.length;
      kept.push(Buffer.from(der));
    } catch (err) {
      onBad?.(`ignoring a CRL from the server that does not parse: ${(err as Error).message}`);
    }
  }
  last = { byAuthority, crls: kept, digest, count };
  return last;
}

const leafIds = new WeakMap<Buffer, { serial: string; aki: string } | null>();

/** True when the chain's leaf is listed by its issuer's CRL. */
export function isChainRevoked(chain: readonly Buffer[], revoked: RevokedSerials): boolean {
  if (revoked.count === 0) return false;
  const leaf = chain[0];
  if (leaf === undefined) return false;
  let ids = leafIds.get(leaf);
  if (ids === undefined) {
    try {
      const c = parseCertificate(leaf);
      ids = { serial: c.serialHex, aki: c.authorityKeyId?.toString('hex') ?? '' };
    } catch {
      ids = null;
    }
    leafIds.set(leaf, ids);
  }
  if (ids === null) return false;
  return revoked.byAuthority.get(ids.aki)?.has(ids.serial) === true;
}
