/**
 * @module spiffe/x509
 *
 * X.509-SVIDs: build (CA certificates, the fast leaf minter, the reference slow path),
 * parse (certificates, SVIDs, PEM and concatenated DER) and verify (SPIFFE path
 * validation against a trust domain's bundle).
 */
export { splitDerCertificates, concatDer, pemEncodeCertificates, parsePemCertificates } from './pem.js';
export { createCaCertificate, BACKDATE_MS, type CreateCaCertificateConfig } from './ca.js';
export { X509SvidMinter, type MintRequest, type X509SvidMinterConfig } from './minter.js';
export { mintX509SvidSlow, type SlowMintRequest } from './slow.js';
export { parseX509Svid, type X509Svid } from './svid.js';
export { verifyX509Svid, type VerifiedX509Svid, type X509BundleInput } from './verify.js';
export {
  parseCertificate, type ParsedCertificate, type CertExtension, type KeyUsageBits, type NameSubtree, type ParsedNameConstraints,
} from './parse.js';
export { spkiFromKeyObject } from './build.js';
export {
  buildCrl, parseCrl, verifyCrlSignature, isRevocationReason, CRL_REASONS, REVOCATION_REASONS,
  type BuildCrlConfig, type CrlEntry, type CrlEntryInput, type CrlReason, type ParsedCrl,
} from './crl.js';
