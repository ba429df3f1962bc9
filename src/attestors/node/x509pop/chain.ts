/**
 * @module attestors/node/x509pop/chain
 *
 * Path validation of a node certificate (any X.509 leaf, not an X.509-SVID) against the CA
 * certificates the operator trusts, as Go's `x509.Certificate.Verify` does for SPIRE's
 * x509pop with `ExtKeyUsageAny`: every certificate in date, every issuer a CA allowed to
 * sign certificates, path lengths and DNS/URI name constraints honoured, no unknown
 * critical extension, signatures chaining to a trusted certificate. All valid chains are
 * returned (SPIRE makes a `ca:fingerprint` selector of every CA in every chain).
 *
 * Threats: a certificate not issued under the operator's CAs (forged, self-signed, or from
 * another PKI), an expired or not-yet-valid one, and a chain padded with look-alike CA
 * certificates to make the search explode (bounded by MAX_ISSUER_CHECKS, as Go bounds it).
 */
import { isMayflyError } from '../../../spiffe/errors.js';
import { parseCertificate, type ParsedCertificate } from '../../../spiffe/x509/parse.js';
import { checkSigningCert, unknownCritical } from '../../../spiffe/x509/svid.js';
import { MAX_ISSUER_CHECKS, signatureVerifies } from '../../../spiffe/x509/verify.js';
import { malformed, refused } from './pop.js';

const MAX_PATH = 10;
/** Most chains collected (each one's CAs become selectors). */
const MAX_CHAINS = 16;

const isSelfIssued = (c: ParsedCertificate): boolean => c.subject.equals(c.issuer);

function mayHaveIssued(candidate: ParsedCertificate, cert: ParsedCertificate): boolean {
  if (!candidate.subject.equals(cert.issuer)) return false;
  return !(cert.authorityKeyId && candidate.subjectKeyId && !cert.authorityKeyId.equals(candidate.subjectKeyId));
}

function validityProblem(cert: ParsedCertificate, now: Date, what: string): string | undefined {
  if (now.getTime() < cert.notBefore.getTime()) return `${what} is not valid until ${cert.notBefore.toISOString()} (now ${now.toISOString()})`;
  if (now.getTime() > cert.notAfter.getTime()) return `${what} expired at ${cert.notAfter.toISOString()} (now ${now.toISOString()})`;
  return undefined;
}

function dnsMatches(name: string, c: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const k = c.toLowerCase().replace(/\.$/, '');
  if (k === '') return true;
  if (k.startsWith('.')) return n.endsWith(k);
  return n === k || n.endsWith(`.${k}`);
}

function uriHost(uri: string): string | undefined {
  try {
    return new URL(uri).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

function uriMatches(uri: string, c: string): boolean {
  const h = uriHost(uri);
  if (h === undefined || h === '') return false;
  const k = c.toLowerCase();
  return k.startsWith('.') ? h.endsWith(k) && h.length > k.length : h === k;
}

/** Why `ca`'s name constraints refuse `leaf`, if they do; forms we do not check fail closed. */
function nameConstraintProblem(ca: ParsedCertificate, leaf: ParsedCertificate): string | undefined {
  const nc = ca.nameConstraints;
  if (!nc) return undefined;
  const has = (form: string): boolean =>
    form === 'ip' ? leaf.ipSans.length > 0 : form === 'email' ? leaf.emailSans.length > 0 : form === 'directoryName' ? !leaf.subjectIsEmpty : leaf.otherSanCount > 0;
  for (const s of [...nc.permitted, ...nc.excluded]) if (s.type === 'other' && has(s.value)) return `constraints on ${s.value} names are not supported, and the leaf has such names`;
  const permitted = (t: 'dns' | 'uri'): string[] => nc.permitted.filter((s) => s.type === t).map((s) => s.value);
  const excluded = (t: 'dns' | 'uri'): string[] => nc.excluded.filter((s) => s.type === t).map((s) => s.value);
  for (const d of leaf.dnsSans) {
    const p = permitted('dns');
    if (p.length > 0 && !p.some((c) => dnsMatches(d, c))) return `DNS SAN ${d} is outside the permitted subtrees`;
    if (excluded('dns').some((c) => dnsMatches(d, c))) return `DNS SAN ${d} is in an excluded subtree`;
  }
  for (const u of leaf.uriSans) {
    const p = permitted('uri');
    if (p.length > 0 && !p.some((c) => uriMatches(u, c))) return `URI SAN ${u} is outside the permitted subtrees`;
    if (excluded('uri').some((c) => uriMatches(u, c))) return `URI SAN ${u} is in an excluded subtree`;
  }
  return undefined;
}

function parse(der: Uint8Array, what: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (err) {
    if (isMayflyError(err)) throw malformed(`unable to parse ${what}: ${err.message}`, err);
    throw err;
  }
}

export interface VerifiedNodeChain {
  readonly leaf: ParsedCertificate;
  /** Every valid path, leaf first, trusted certificate last. */
  readonly chains: readonly (readonly ParsedCertificate[])[];
}

/** Parses the leaf and intermediates (malformed → ERR_ATTESTATION_MALFORMED) and verifies them against `trusted` (→ ERR_ATTESTATION_FAILED). */
export function verifyNodeChain(certificates: readonly Uint8Array[], trusted: readonly ParsedCertificate[], now: Date): VerifiedNodeChain {
  const leaf = parse(certificates[0] as Uint8Array, 'leaf certificate');
  const intermediates = certificates.slice(1).map((d, i) => parse(d, `intermediate certificate ${i}`));
  const fail = (why: string): never => {
    throw refused(`certificate verification failed: ${why}`);
  };
  const unknown = unknownCritical(leaf);
  if (unknown !== undefined) fail(`the leaf has an unhandled critical extension ${unknown}`);
  const leafDate = validityProblem(leaf, now, 'the leaf certificate');
  if (leafDate !== undefined) fail(leafDate);
  if (trusted.length === 0) fail('no trusted CA certificates are configured');
  // Go: a leaf that is itself a trusted certificate is a chain of one.
  if (trusted.some((t) => t.der.equals(leaf.der))) return { leaf, chains: [[leaf]] };

  const chains: ParsedCertificate[][] = [];
  let firstProblem: string | undefined;
  let checks = 0;
  let gaveUp = false;
  const accept = (ca: ParsedCertificate, path: readonly ParsedCertificate[], what: string): boolean => {
    if (checks++ >= MAX_ISSUER_CHECKS) {
      gaveUp = true;
      return false;
    }
    let problem: string | undefined;
    try {
      checkSigningCert(ca, what);
    } catch (err) {
      if (!isMayflyError(err)) throw err;
      problem = err.message;
    }
    problem ??= validityProblem(ca, now, what);
    if (problem === undefined && ca.pathLen !== undefined) {
      const below = path.slice(1).filter((c) => !isSelfIssued(c)).length;
      if (below > ca.pathLen) problem = `${what} has pathLenConstraint ${ca.pathLen} but ${below} intermediate CA certificates follow it`;
    }
    if (problem === undefined) {
      const nc = nameConstraintProblem(ca, leaf);
      if (nc !== undefined) problem = `${what}'s name constraints refuse the leaf: ${nc}`;
    }
    if (problem === undefined && !signatureVerifies(path[path.length - 1] as ParsedCertificate, ca)) {
      problem = `the signature of ${path.length === 1 ? 'the leaf' : `intermediate ${path.length - 2}`} does not verify with ${what}'s key`;
    }
    firstProblem ??= problem;
    return problem === undefined;
  };
  const extend = (path: ParsedCertificate[]): void => {
    if (gaveUp) return;
    const cur = path[path.length - 1] as ParsedCertificate;
    for (const t of trusted) {
      if (chains.length >= MAX_CHAINS) return;
      if (mayHaveIssued(t, cur) && accept(t, path, `trusted CA (serial ${t.serialHex})`)) chains.push([...path, t]);
    }
    if (path.length + 1 >= MAX_PATH) return;
    for (const c of intermediates) {
      if (chains.length >= MAX_CHAINS) return;
      if (path.includes(c) || !mayHaveIssued(c, cur)) continue;
      if (accept(c, path, `intermediate (serial ${c.serialHex})`)) extend([...path, c]);
    }
  };
  extend([leaf]);
  // The chains found before the search was cut short still stand; none found is a refusal.
  if (chains.length === 0 && gaveUp) fail(`gave up after ${MAX_ISSUER_CHECKS} candidate issuers (too many look-alike CA certificates)`);
  if (chains.length === 0) fail(firstProblem ?? 'the certificate does not chain to any trusted CA certificate (x509: certificate signed by unknown authority)');
  return { leaf, chains };
}

/** Parses the operator's CA certificates (for config). */
export function parseTrusted(ders: readonly Uint8Array[]): ParsedCertificate[] {
  return ders.map((d) => parseCertificate(d));
}
