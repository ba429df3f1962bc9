/**
 * @module spiffe/x509/verify
 *
 * X.509-SVID path validation against one trust domain's bundle, written here rather than
 * borrowed: @peculiar/x509's chain builder checks neither dates, CA flags, key usage,
 * path length nor name constraints, and does not require a trust anchor.
 *
 * Threat: impersonation. A leaf is accepted only when it is a well-formed X.509-SVID whose
 * SPIFFE ID is in the bundle's trust domain, every link is in date, every issuer is a CA
 * allowed to sign certificates, path-length and URI/DNS name constraints hold, no link has
 * an unknown critical extension, and the signatures chain to a certificate in the bundle.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import type { SpiffeId, TrustDomain } from '../id.js';
import { SIGNATURE_ALGORITHMS as SIG_ALGS } from './signature-algorithms.js';
import { parseCertificate, type NameSubtree, type ParsedCertificate } from './parse.js';
import { checkLeaf, checkSigningCert } from './svid.js';

export interface X509BundleInput {
  trustDomain: TrustDomain;
  /** the trust domain's X.509 authorities (DER) */
  x509Authorities: readonly Uint8Array[];
}

export interface VerifiedX509Svid {
  spiffeId: SpiffeId;
  /** the verified path, leaf → anchor (DER) */
  chain: Buffer[];
  /** the leaf as parsed for the verification (serial, dates, names) */
  leaf: ParsedCertificate;
}

/** Longest path (certificates, leaf and anchor included) we try to build. */
const MAX_PATH = 10;
/**
 * Most candidate issuers (each a signature check) one verification may try, as Go's
 * maxChainSignatureChecks. Without it, a peer presenting a dozen CA certificates with the
 * same name and key makes the depth-first search try every ordering of them (n! paths).
 */
export const MAX_ISSUER_CHECKS = 100;


const keyCache = new WeakMap<ParsedCertificate, KeyObject | null>();

function publicKeyOf(cert: ParsedCertificate): KeyObject | null {
  let k = keyCache.get(cert);
  if (k === undefined) {
    try {
      k = createPublicKey({ key: cert.spki, format: 'der', type: 'spki' });
    } catch {
      k = null;
    }
    keyCache.set(cert, k);
  }
  return k;
}

/**
 * Bundle authorities and intermediates arrive as the same Buffer objects call after call,
 * so their parse, public key and verified signatures are cached per Buffer. A hit is used
 * only when the cached copy is byte-identical to the Buffer now, so mutating a Buffer
 * after a call cannot smuggle in a stale result.
 */
const parseCache = new WeakMap<Uint8Array, ParsedCertificate>();
const verifiedBy = new WeakMap<ParsedCertificate, WeakSet<ParsedCertificate>>();

function parseCached(der: Uint8Array): ParsedCertificate {
  const hit = parseCache.get(der);
  if (hit && hit.der.equals(der)) return hit;
  const parsed = parseCertificate(Buffer.from(der));
  parseCache.set(der, parsed);
  return parsed;
}

/** True when `issuer`'s key verifies `cert`'s signature with `cert`'s algorithm. */
export function signatureVerifies(cert: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (verifiedBy.get(cert)?.has(issuer)) return true;
  const ok = signatureVerifiesUncached(cert, issuer);
  if (ok) {
    let set = verifiedBy.get(cert);
    if (!set) verifiedBy.set(cert, (set = new WeakSet()));
    set.add(issuer);
  }
  return ok;
}

function signatureVerifiesUncached(cert: ParsedCertificate, issuer: ParsedCertificate): boolean {
  const alg = SIG_ALGS[cert.signatureAlgorithm];
  const key = publicKeyOf(issuer);
  if (!alg || !key || key.asymmetricKeyType !== alg.key) return false;
  try {
    return verify(alg.hash, cert.tbs, key, cert.signature);
  } catch {
    return false;
  }
}

function checkValidity(cert: ParsedCertificate, now: Date, what: string): void {
  if (now.getTime() < cert.notBefore.getTime()) {
    throw new X509SvidError('ERR_X509_NOT_YET_VALID', `${what} is not valid until ${cert.notBefore.toISOString()} (now ${now.toISOString()})`);
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw new X509SvidError('ERR_X509_EXPIRED', `${what} expired at ${cert.notAfter.toISOString()} (now ${now.toISOString()})`);
  }
}

function uriHostMatches(host: string, c: string): boolean {
  const h = host.toLowerCase();
  const k = c.toLowerCase();
  if (k.startsWith('.')) return h.endsWith(k) && h.length > k.length;
  return h === k;
}

function dnsMatches(name: string, c: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const k = c.toLowerCase().replace(/\.$/, '');
  if (k === '') return true;
  if (k.startsWith('.')) return n.endsWith(k);
  return n === k || n.endsWith('.' + k);
}

/** Applies one CA's name constraints to the leaf. Unsupported constraint forms fail closed when the leaf has such names. */
function checkNameConstraints(ca: ParsedCertificate, leaf: ParsedCertificate, id: SpiffeId, what: string): void {
  const nc = ca.nameConstraints;
  if (!nc) return;
  const fail = (why: string): never => {
    throw new X509SvidError('ERR_X509_NAME_CONSTRAINTS', `${what}'s name constraints reject the leaf: ${why}`);
  };
  const host = id.trustDomain.name;
  const hasNamesOf = (form: string): boolean =>
    form === 'ip' ? leaf.ipSans.length > 0
      : form === 'email' ? leaf.emailSans.length > 0
        : form === 'directoryName' ? !leaf.subjectIsEmpty
          : leaf.otherSanCount > 0;
  const all: NameSubtree[] = [...nc.permitted, ...nc.excluded];
  for (const s of all) {
    if (s.type === 'other' && hasNamesOf(s.value)) fail(`constraints on ${s.value} names are not supported, and the leaf has such names`);
  }
  const permittedUri = nc.permitted.filter((s) => s.type === 'uri').map((s) => s.value);
  if (permittedUri.length && !permittedUri.some((c) => uriHostMatches(host, c))) {
    fail(`URI SAN ${id} is outside the permitted URI subtrees (${permittedUri.join(', ')})`);
  }
  for (const s of nc.excluded) {
    if (s.type === 'uri' && uriHostMatches(host, s.value)) fail(`URI SAN ${id} is in the excluded URI subtree ${s.value}`);
  }
  const permittedDns = nc.permitted.filter((s) => s.type === 'dns').map((s) => s.value);
  for (const d of leaf.dnsSans) {
    if (permittedDns.length && !permittedDns.some((c) => dnsMatches(d, c))) fail(`DNS SAN ${d} is outside the permitted DNS subtrees`);
    for (const s of nc.excluded) if (s.type === 'dns' && dnsMatches(d, s.value)) fail(`DNS SAN ${d} is in the excluded DNS subtree ${s.value}`);
  }
}

const isSelfIssued = (c: ParsedCertificate): boolean => c.subject.equals(c.issuer);

function mayHaveIssued(candidate: ParsedCertificate, cert: ParsedCertificate): boolean {
  if (!candidate.subject.equals(cert.issuer)) return false;
  if (cert.authorityKeyId && candidate.subjectKeyId && !cert.authorityKeyId.equals(candidate.subjectKeyId)) return false;
  return true;
}

function parseAll(ders: readonly Uint8Array[], what: string, cached: boolean): ParsedCertificate[] {
  return ders.map((d, i) => {
    try {
      return cached ? parseCached(d) : parseCertificate(d);
    } catch (e) {
      if (e instanceof X509SvidError) throw new X509SvidError(e.code, `${what} #${i + 1}: ${e.message}`, { cause: e });
      throw e;
    }
  });
}

/**
 * Verifies an X.509-SVID chain (leaf first, intermediates after, in any order) against the
 * bundle of the leaf's trust domain. Returns the SPIFFE ID and the verified path.
 */
export function verifyX509Svid(chain: readonly Uint8Array[], bundle: X509BundleInput, opts: { now?: Date } = {}): VerifiedX509Svid {
  if (!Array.isArray(chain)) throw new TypeError('chain must be an array of DER certificates');
  if (chain.length === 0) throw new X509SvidError('ERR_X509_MALFORMED', 'empty certificate chain: an X.509-SVID needs at least its leaf');
  const now = opts.now ?? new Date();
  const leaf = parseAll(chain.slice(0, 1), 'leaf certificate', false)[0] as ParsedCertificate;
  const intermediates = parseAll(chain.slice(1), 'chain intermediate', true);
  const anchors = parseAll(bundle.x509Authorities, `bundle authority of ${bundle.trustDomain.name}`, true);
  const id = checkLeaf(leaf);
  if (!id.memberOf(bundle.trustDomain)) {
    throw new X509SvidError('ERR_X509_NO_TRUST', `no bundle for trust domain ${id.trustDomain.name}: the bundle given is for ${bundle.trustDomain.name}`);
  }
  if (anchors.length === 0) throw new X509SvidError('ERR_X509_NO_TRUST', `the bundle of ${bundle.trustDomain.name} has no X.509 authorities`);
  checkValidity(leaf, now, 'the leaf');

  let firstError: X509SvidError | undefined;
  const record = (e: unknown): void => {
    if (!(e instanceof X509SvidError)) throw e;
    firstError ??= e;
  };
  let checks = 0;
  let gaveUp = false;
  const tooMuchWork = (): X509SvidError => new X509SvidError('ERR_X509_CHAIN_INVALID', `gave up building a path after ${MAX_ISSUER_CHECKS} candidate issuers; the chain holds too many look-alike CA certificates`);

  /** Checks `ca` as the issuer of path[path.length-1]; throws on failure. */
  const acceptIssuer = (ca: ParsedCertificate, path: ParsedCertificate[], what: string): void => {
    if (checks >= MAX_ISSUER_CHECKS) {
      gaveUp = true;
      throw tooMuchWork();
    }
    checks++;
    checkSigningCert(ca, what);
    checkValidity(ca, now, what);
    if (ca.pathLen !== undefined) {
      const below = path.slice(1).filter((c) => !isSelfIssued(c)).length;
      if (below > ca.pathLen) {
        throw new X509SvidError('ERR_X509_CHAIN_INVALID', `${what} has pathLenConstraint ${ca.pathLen} but ${below} intermediate CA certificates follow it`);
      }
    }
    checkNameConstraints(ca, leaf, id, what);
    const child = path[path.length - 1] as ParsedCertificate;
    if (!signatureVerifies(child, ca)) {
      throw new X509SvidError('ERR_X509_BAD_SIGNATURE', `the signature of ${path.length === 1 ? 'the leaf' : `intermediate #${path.length - 1}`} does not verify with ${what}'s key`);
    }
  };

  const extend = (path: ParsedCertificate[]): ParsedCertificate[] | undefined => {
    if (gaveUp) return undefined;
    const cur = path[path.length - 1] as ParsedCertificate;
    for (const a of anchors) {
      if (!mayHaveIssued(a, cur)) continue;
      try {
        acceptIssuer(a, path, `bundle authority (serial ${a.serialHex})`);
        return [...path, a];
      } catch (e) {
        record(e);
      }
    }
    if (path.length + 1 >= MAX_PATH) {
      record(new X509SvidError('ERR_X509_CHAIN_INVALID', `no path to the bundle within ${MAX_PATH} certificates`));
      return undefined;
    }
    for (const c of intermediates) {
      if (path.includes(c) || !mayHaveIssued(c, cur)) continue;
      try {
        acceptIssuer(c, path, `intermediate (serial ${c.serialHex})`);
      } catch (e) {
        record(e);
        continue;
      }
      const done = extend([...path, c]);
      if (done) return done;
    }
    return undefined;
  };

  const path = extend([leaf]);
  if (!path) {
    if (gaveUp) throw tooMuchWork();
    throw firstError ?? new X509SvidError('ERR_X509_NO_TRUST', `the leaf ${id} does not chain to any X.509 authority in the bundle of ${bundle.trustDomain.name}`);
  }
  return { spiffeId: id, chain: path.map((c) => Buffer.from(c.der)), leaf };
}
