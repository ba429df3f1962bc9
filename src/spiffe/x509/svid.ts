/**
 * @module spiffe/x509/svid
 *
 * X.509-SVID structure rules (the SPIFFE X509-SVID standard, as go-spiffe applies them)
 * and `parseX509Svid` for what the Workload API hands out.
 *
 * Threat: a certificate that passes TLS path validation but names zero or several
 * identities, or a leaf that could itself issue certificates. Those are rejected here
 * whether or not the chain is trusted.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { X509SvidError, isMayflyError } from '../errors.js';
import { SpiffeId } from '../id.js';
import { importPkcs8 } from '../keys.js';
import { KNOWN_EXTENSIONS, parseCertificate, type ParsedCertificate } from './parse.js';
import { splitDerCertificates } from './pem.js';

export interface X509Svid {
  spiffeId: SpiffeId;
  /** leaf first, then intermediates (DER) */
  certificates: Buffer[];
  privateKey?: KeyObject;
  hint?: string;
}

/** Checks the leaf rules and returns its SPIFFE ID. Throws ERR_X509_SVID_INVALID naming the rule. */
export function checkLeaf(leaf: ParsedCertificate): SpiffeId {
  const bad = (why: string, cause?: unknown): never => {
    throw new X509SvidError('ERR_X509_SVID_INVALID', `X.509-SVID leaf is invalid: ${why}`, cause === undefined ? undefined : { cause });
  };
  if (leaf.uriSans.length === 0) bad('it has no URI SAN; an X.509-SVID carries its SPIFFE ID as exactly one URI SAN');
  if (leaf.uriSans.length > 1) bad(`it has ${leaf.uriSans.length} URI SANs; exactly one is allowed`);
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(leaf.uriSans[0] as string);
  } catch (cause) {
    if (!isMayflyError(cause)) throw cause;
    return bad(`its URI SAN is not a valid SPIFFE ID: ${(cause as Error).message}`, cause);
  }
  if (id.isTrustDomainId) bad(`its SPIFFE ID ${id} has no path; a workload ID is required`);
  if (leaf.isCA) bad('it is a CA certificate (basicConstraints cA=true); a leaf must not be a CA');
  if (!leaf.keyUsage) bad('it has no keyUsage extension; digitalSignature is required');
  if (!leaf.keyUsage?.digitalSignature) bad('its keyUsage lacks digitalSignature');
  if (leaf.keyUsage?.keyCertSign) bad('its keyUsage has keyCertSign; a leaf must not sign certificates');
  if (leaf.keyUsage?.cRLSign) bad('its keyUsage has cRLSign; a leaf must not sign CRLs');
  const unknown = unknownCritical(leaf);
  if (unknown) bad(`it has an unknown critical extension ${unknown}`);
  return id;
}

/** The OID of the first critical extension we do not process, if any. */
export function unknownCritical(cert: ParsedCertificate): string | undefined {
  return cert.extensions.find((e) => e.critical && !KNOWN_EXTENSIONS.has(e.oid))?.oid;
}

/** Checks an issuing certificate's structure (CA flag, keyCertSign, critical extensions). */
export function checkSigningCert(cert: ParsedCertificate, what: string): void {
  const bad = (why: string): never => {
    throw new X509SvidError('ERR_X509_CHAIN_INVALID', `${what} is not a valid signing certificate: ${why}`);
  };
  if (!cert.isCA) bad('basicConstraints cA is not true');
  if (!cert.keyUsage?.keyCertSign) bad('keyUsage lacks keyCertSign');
  const unknown = unknownCritical(cert);
  if (unknown) bad(`it has an unknown critical extension ${unknown}`);
}

/**
 * Parses an X.509-SVID as the Workload API delivers it (DER concatenated, or a list) and,
 * when given, its PKCS#8 private key. Checks the leaf rules, that the other certificates
 * are signing certificates, and that the key belongs to the leaf. Does not check trust:
 * use verifyX509Svid for that.
 */
export function parseX509Svid(certs: Uint8Array | readonly Uint8Array[], privateKeyPkcs8Der?: Uint8Array): X509Svid {
  const ders = certs instanceof Uint8Array ? splitDerCertificates(certs) : certs.map((c) => Buffer.from(c));
  if (ders.length === 0) throw new X509SvidError('ERR_X509_MALFORMED', 'X.509-SVID has no certificates');
  const parsed = ders.map((d) => parseCertificate(d));
  const spiffeId = checkLeaf(parsed[0] as ParsedCertificate);
  parsed.slice(1).forEach((c, i) => checkSigningCert(c, `certificate #${i + 2} of the SVID chain`));
  const svid: X509Svid = { spiffeId, certificates: ders };
  if (privateKeyPkcs8Der !== undefined) {
    const { privateKey } = importPkcs8(privateKeyPkcs8Der);
    let leafKey: KeyObject;
    try {
      leafKey = createPublicKey({ key: (parsed[0] as ParsedCertificate).spki, format: 'der', type: 'spki' });
    } catch (cause) {
      throw new X509SvidError('ERR_X509_MALFORMED', 'leaf public key cannot be read', { cause });
    }
    if (!leafKey.equals(createPublicKey(privateKey))) {
      throw new X509SvidError('ERR_X509_KEY_MISMATCH', 'the private key does not match the leaf certificate public key');
    }
    svid.privateKey = privateKey;
  }
  return svid;
}
