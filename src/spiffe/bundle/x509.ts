/**
 * @module spiffe/bundle/x509
 *
 * X.509-only bundles from the Workload API's concatenated DER form and from PEM files.
 */
import { X509Certificate } from 'node:crypto';
import { BundleError } from '../errors.js';
import type { TrustDomain } from '../id.js';
import { parseCertificate } from '../x509/parse.js';
import { parsePemCertificates, splitDerCertificates } from '../x509/pem.js';
import { Bundle } from './bundle.js';

function toBundle(trustDomain: TrustDomain, certs: Buffer[]): Bundle {
  certs.forEach((der, i) => {
    try {
      new X509Certificate(der);
      // Strict too: a root the verifier cannot parse would fail every verification later.
      parseCertificate(der);
    } catch (cause) {
      throw new BundleError('ERR_BUNDLE_MALFORMED', `trust bundle rejected: certificate #${i + 1} cannot be parsed`, { cause });
    }
  });
  return new Bundle({ trustDomain, x509Authorities: certs });
}

/** A bundle of the roots in `der` (DER certificates concatenated; empty input gives an empty bundle). */
export function bundleFromX509Der(trustDomain: TrustDomain, derConcatenated: Uint8Array): Bundle {
  if (!(derConcatenated instanceof Uint8Array)) throw new TypeError('DER bundle must be bytes');
  if (derConcatenated.byteLength === 0) return new Bundle({ trustDomain });
  let certs: Buffer[];
  try {
    certs = splitDerCertificates(derConcatenated);
  } catch (cause) {
    throw new BundleError('ERR_BUNDLE_MALFORMED', `trust bundle rejected: ${(cause as Error).message}`, { cause });
  }
  return toBundle(trustDomain, certs);
}

/** A bundle of the roots in PEM `CERTIFICATE` blocks. */
export function bundleFromX509Pem(trustDomain: TrustDomain, pem: string): Bundle {
  let certs: Buffer[];
  try {
    certs = parsePemCertificates(pem);
  } catch (cause) {
    if (cause instanceof TypeError) throw cause;
    throw new BundleError('ERR_BUNDLE_MALFORMED', `trust bundle rejected: ${(cause as Error).message}`, { cause });
  }
  return toBundle(trustDomain, certs);
}
