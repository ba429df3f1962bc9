/**
 * @module sdk/crl-check
 *
 * Refuses peers whose X509-SVID the issuing CA revoked (issue 10): the Workload API hands
 * every workload the CRLs of its trust domain's X.509 authorities (`X509Context.crl`), and
 * the mTLS helpers (sdk/tls) consult them after the chain verified.
 *
 * Threat it stops: a stolen SVID still opening connections until it expires. A peer is
 * refused when a CRL the source holds, issued by the peer leaf's own issuer (CRL authority
 * key identifier = leaf AKI, issuer name = leaf issuer, signature verified with that
 * issuer's certificate from the presented chain or the bundle), lists the leaf's serial. A
 * CRL that does not parse or whose signature does not verify is ignored (it proves
 * nothing), never trusted. Each set of CRLs is parsed and verified once (cached per array
 * the source holds, i.e. per Workload API message).
 */
import { parseCrl, verifyCrlSignature, type CrlEntry } from '../spiffe/x509/crl.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import type { Bundle } from '../spiffe/bundle/index.js';
import { PeerAuthorizationError } from './errors.js';

interface ParsedSet {
  /** By AKI hex: the CRLs (parsed) naming that issuer key; signature checked lazily per issuer. */
  readonly byAki: Map<string, { crl: ReturnType<typeof parseCrl>; verifiedWith?: Buffer }[]>;
}

const parsedSets = new WeakMap<readonly Buffer[], ParsedSet>();

function parsedSetOf(crls: readonly Buffer[]): ParsedSet {
  let set = parsedSets.get(crls);
  if (set) return set;
  set = { byAki: new Map() };
  for (const der of crls) {
    try {
      const crl = parseCrl(der);
      if (!crl.authorityKeyId) continue;
      const k = crl.authorityKeyId.toString('hex');
      const list = set.byAki.get(k) ?? [];
      list.push({ crl });
      set.byAki.set(k, list);
    } catch {
      // A CRL that does not parse proves nothing: ignored.
    }
  }
  parsedSets.set(crls, set);
  return set;
}

/** The revocation entry for the chain's leaf, if a verified CRL of its issuer lists it. */
export function revocationOf(chain: readonly Buffer[], bundle: Bundle, crls: readonly Buffer[]): CrlEntry | undefined {
  if (crls.length === 0 || chain.length === 0) return undefined;
  const leaf = parseCertificate(chain[0] as Buffer);
  if (!leaf.authorityKeyId) return undefined;
  const candidates = parsedSetOf(crls).byAki.get(leaf.authorityKeyId.toString('hex'));
  if (!candidates) return undefined;
  const issuers = [...chain.slice(1), ...bundle.x509Authorities].filter((c) => {
    try {
      const p = parseCertificate(c);
      return p.subjectKeyId?.equals(leaf.authorityKeyId as Buffer) === true && p.subject.equals(leaf.issuer);
    } catch {
      return false;
    }
  });
  for (const cand of candidates) {
    if (!cand.crl.issuer.equals(leaf.issuer)) continue;
    const issuer = cand.verifiedWith ?? issuers.find((c) => verifyCrlSignature(cand.crl, c));
    if (issuer === undefined) continue;
    cand.verifiedWith = issuer;
    const hit = cand.crl.entries.find((e) => e.serialHex === leaf.serialHex);
    if (hit) return hit;
  }
  return undefined;
}

/** Throws PeerAuthorizationError (ERR_PEER_UNAUTHORIZED) when the peer's leaf is revoked. */
export function checkNotRevoked(chain: readonly Buffer[], bundle: Bundle, crls: readonly Buffer[], who: string): void {
  const hit = revocationOf(chain, bundle, crls);
  if (hit) {
    throw new PeerAuthorizationError(
      `peer X509-SVID ${who} (serial ${hit.serialHex}) was revoked by its CA on ${hit.revocationDate.toISOString()} (reason ${hit.reason}); it must fetch a new SVID from its agent`,
    );
  }
}
