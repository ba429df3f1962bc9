/**
 * @module sdk/model
 *
 * What the Workload API client hands out (X509-SVIDs, X.509 contexts, JWT-SVIDs, bundle
 * sets) and the parsing of the wire messages into them.
 *
 * Threat: trusting the agent's message shape blindly. Every SVID is checked before it is
 * handed out: the SPIFFE ID parses, it equals the leaf's only URI SAN exactly (a client
 * that believed `spiffe_id` alone would present one identity and claim another), the key
 * matches the leaf, and every bundle is keyed by a real trust domain. A response that fails
 * any check is rejected whole (ERR_WORKLOAD_API_RESPONSE) so a source keeps its last good
 * state instead of half of a bad one.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Bundle, BundleSet, bundleFromX509Der, parseJwtBundleJwks } from '../spiffe/bundle/index.js';
import { MayflyError } from '../spiffe/errors.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { importPkcs8, type KeyType } from '../spiffe/keys.js';
import { parseJwtSvidInsecure, type JwtSvid as ParsedJwtSvid } from '../spiffe/jwt/index.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates, splitDerCertificates } from '../spiffe/x509/pem.js';
import type { JWTBundlesResponse, JWTSVID, X509BundlesResponse, X509SVID, X509SVIDResponse } from '../wire/workload/messages.js';
import { WorkloadApiError } from './errors.js';

export type { Bundle, BundleSet };

/** One X509-SVID with its private key. */
export interface X509Svid {
  readonly id: SpiffeId;
  /** DER certificates, leaf first, then intermediates (never the root). */
  readonly certificates: readonly Buffer[];
  readonly privateKey: KeyObject;
  readonly keyType: KeyType;
  /** Operator hint from the registration entry ('' when none). */
  readonly hint: string;
  /** The leaf's notAfter. */
  readonly expiresAt: Date;
}

/** Everything FetchX509SVID says at one moment. `svids[0]` is the default identity. */
export interface X509Context {
  readonly svids: readonly X509Svid[];
  /** X.509 bundles: the SVIDs' own trust domain(s) and every federated trust domain. */
  readonly bundles: BundleSet;
  /** ASN.1 DER CRLs, as sent. */
  readonly crl: readonly Buffer[];
}

/** A JWT-SVID from the Workload API (claims are read, not verified: the agent is trusted). */
export interface JwtSvid extends ParsedJwtSvid {
  readonly hint: string;
}

/** The result of ValidateJWTSVID. */
export interface ValidatedJwtSvid {
  readonly spiffeId: SpiffeId;
  readonly claims: Record<string, unknown>;
}

function badResponse(why: string, cause?: unknown): never {
  throw new WorkloadApiError('ERR_WORKLOAD_API_RESPONSE', `the Workload API sent an unusable response: ${why}`, { cause });
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Parses one X509SVID message (without its bundle). */
export function parseX509Svid(m: X509SVID): X509Svid {
  let id: SpiffeId;
  try {
    id = SpiffeId.parseWorkload(m.spiffe_id);
  } catch (cause) {
    badResponse(`X509-SVID spiffe_id: ${reason(cause)}`, cause);
  }
  let certificates: Buffer[];
  try {
    certificates = splitDerCertificates(m.x509_svid);
  } catch (cause) {
    badResponse(`X509-SVID ${id} certificates: ${reason(cause)}`, cause);
  }
  let leaf;
  try {
    leaf = parseCertificate(certificates[0] as Buffer);
  } catch (cause) {
    badResponse(`X509-SVID ${id} leaf certificate: ${reason(cause)}`, cause);
  }
  if (leaf.uriSans.length !== 1) badResponse(`X509-SVID ${id}: the leaf has ${leaf.uriSans.length} URI SANs, expected exactly one`);
  if (leaf.uriSans[0] !== m.spiffe_id) badResponse(`X509-SVID spiffe_id ${id} differs from the leaf's URI SAN ${JSON.stringify(leaf.uriSans[0])}`);
  let key;
  try {
    key = importPkcs8(m.x509_svid_key);
  } catch (cause) {
    badResponse(`X509-SVID ${id} private key: ${reason(cause)}`, cause);
  }
  const spki = createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' });
  if (!spki.equals(leaf.spki)) badResponse(`X509-SVID ${id}: the private key does not match the leaf certificate`);
  return { id, certificates, privateKey: key.privateKey, keyType: key.type, hint: m.hint ?? '', expiresAt: leaf.notAfter };
}

function trustDomainKey(key: string, what: string): TrustDomain {
  try {
    const id = SpiffeId.parse(key);
    if (!id.isTrustDomainId) badResponse(`${what} key ${JSON.stringify(key)} is not a trust domain ID`);
    return id.trustDomain;
  } catch (cause) {
    if (cause instanceof WorkloadApiError) throw cause;
    // Some agents key by bare name; accept that too, strictly parsed.
    try {
      return TrustDomain.parse(key);
    } catch {
      badResponse(`${what} key ${JSON.stringify(key)}: ${reason(cause)}`, cause);
    }
  }
}

function x509Bundle(td: TrustDomain, der: Buffer, what: string): Bundle {
  try {
    return bundleFromX509Der(td, der);
  } catch (cause) {
    badResponse(`${what} for ${td.name}: ${reason(cause)}`, cause);
  }
}

/** Parses a FetchX509SVID response. An empty `svids` list is an error (no identity). */
export function parseX509Context(m: X509SVIDResponse): X509Context {
  if (!m.svids || m.svids.length === 0) badResponse('the X509-SVID response holds no SVIDs');
  const svids = m.svids.map(parseX509Svid);
  const bundles = new BundleSet();
  m.svids.forEach((raw, i) => {
    const td = (svids[i] as X509Svid).id.trustDomain;
    if (!bundles.has(td)) bundles.set(x509Bundle(td, raw.bundle, 'the X509-SVID bundle'));
  });
  for (const [key, der] of Object.entries(m.federated_bundles ?? {})) {
    const td = trustDomainKey(key, 'federated_bundles');
    // The SVIDs' own trust domain bundle wins; a federated entry must not replace it.
    if (!bundles.has(td)) bundles.set(x509Bundle(td, der, 'the federated bundle'));
  }
  return { svids, bundles, crl: m.crl ?? [] };
}

/** Parses a FetchX509Bundles response. */
export function parseX509Bundles(m: X509BundlesResponse): BundleSet {
  const set = new BundleSet();
  for (const [key, der] of Object.entries(m.bundles ?? {})) set.set(x509Bundle(trustDomainKey(key, 'bundles'), der, 'the X.509 bundle'));
  return set;
}

/** Parses a FetchJWTBundles response. */
export function parseJwtBundles(m: JWTBundlesResponse): BundleSet {
  const set = new BundleSet();
  for (const [key, json] of Object.entries(m.bundles ?? {})) {
    const td = trustDomainKey(key, 'JWT bundles');
    try {
      set.set(parseJwtBundleJwks(json, td));
    } catch (cause) {
      badResponse(`the JWT bundle for ${td.name}: ${reason(cause)}`, cause);
    }
  }
  return set;
}

/** Parses one JWTSVID message, reading (not verifying) the token; its `sub` must equal `spiffe_id`. */
export function parseJwtSvidMessage(m: JWTSVID): JwtSvid {
  let parsed: ParsedJwtSvid;
  try {
    parsed = parseJwtSvidInsecure(m.svid);
  } catch (cause) {
    badResponse(`JWT-SVID for ${JSON.stringify(m.spiffe_id)}: ${reason(cause)}`, cause);
  }
  if (m.spiffe_id !== '' && parsed.spiffeId.toString() !== m.spiffe_id) {
    badResponse(`JWT-SVID spiffe_id ${JSON.stringify(m.spiffe_id)} differs from its sub claim ${parsed.spiffeId}`);
  }
  return { ...parsed, hint: m.hint ?? '' };
}

/** PEM forms of an X509-SVID: the certificates (leaf first) and the PKCS#8 private key. */
export function x509SvidPem(svid: X509Svid): { certificates: string; privateKey: string } {
  return {
    certificates: pemEncodeCertificates(svid.certificates),
    privateKey: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** True for errors that mean bad data rather than a transport problem. */
export function isResponseError(err: unknown): boolean {
  return err instanceof MayflyError && err.code === 'ERR_WORKLOAD_API_RESPONSE';
}
