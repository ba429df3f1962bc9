/**
 * @module ca/upstream
 *
 * The `disk` upstream authority: an operator's CA certificate and key read from files.
 * Mayfly's own CA then becomes an intermediate signed by it, the upstream root(s) are what
 * goes into the trust bundle, and SVID chains carry Mayfly's intermediate plus any
 * upstream intermediates, never a root.
 *
 * Threats stopped: a key that does not belong to the certificate (every CA we would sign
 * would be unverifiable), a non-CA or expired upstream certificate, a key file other users
 * can read (same 0600 rule as CA keys), and a chain that does not end at a root we trust.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MayflyError } from '../spiffe/errors.js';
import type { CaErrorCode } from './ca-error.js';
import { exportSpkiDer, importPkcs8 } from '../spiffe/keys.js';
import { parseCertificate, type ParsedCertificate } from '../spiffe/x509/parse.js';
import { parsePemCertificates, splitDerCertificates } from '../spiffe/x509/pem.js';
import { readPrivateFile } from './secure-file.js';

export class UpstreamAuthorityError extends MayflyError<CaErrorCode> {}

export interface UpstreamAuthority {
  /** The CA certificate that signs Mayfly's intermediate (DER). */
  readonly certificate: Buffer;
  readonly privateKey: KeyObject;
  /**
   * What SVID chains carry after Mayfly's own CA: `certificate` itself unless it is a
   * self-signed root, then the rest of `certFile`'s chain, nearest first. Never a root.
   */
  readonly intermediates: Buffer[];
  /** Root certificates for the trust bundle (DER). */
  readonly roots: Buffer[];
  readonly notAfter: Date;
}

export interface DiskUpstreamAuthorityConfig {
  /** PEM (or DER) file: the upstream CA certificate first, then optionally its chain. */
  certFile: string;
  /** PKCS#8 PEM (or DER) private key of the first certificate in `certFile`; mode 0600. */
  keyFile: string;
  /**
   * PEM file of the root certificate(s) to publish in the bundle. When omitted, the last
   * certificate of `certFile` must be self-signed and is used as the root.
   */
  bundleFile?: string;
  now?: () => Date;
}

function readCerts(path: string): Buffer[] {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (cause) {
    throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `cannot read upstream certificate file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const text = data.toString('latin1');
    return text.includes('-----BEGIN') ? parsePemCertificates(text) : splitDerCertificates(data);
  } catch (cause) {
    throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `${path} holds no readable certificates: ${(cause as Error).message}`, { cause });
  }
}

function parse(der: Buffer, path: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (cause) {
    throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `${path}: ${(cause as Error).message}`, { cause });
  }
}

/** Self-issued and signed by its own key (checked cryptographically, not by name alone). */
function isSelfSigned(c: ParsedCertificate): boolean {
  if (!c.subject.equals(c.issuer)) return false;
  if (c.authorityKeyId && c.subjectKeyId && !c.authorityKeyId.equals(c.subjectKeyId)) return false;
  return verifiedBy(c, c);
}

function verifiedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  try {
    return new X509Certificate(child.der).verify(createPublicKey({ key: parent.spki, format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}

/**
 * Loads and checks the operator's upstream CA. Throws UpstreamAuthorityError
 * (ERR_CA_UPSTREAM_INVALID) with a message naming the file and the problem.
 */
export function loadDiskUpstreamAuthority(config: DiskUpstreamAuthorityConfig): UpstreamAuthority {
  const now = (config.now ?? (() => new Date()))();
  const chainDer = readCerts(config.certFile);
  const chain = chainDer.map((d) => parse(d, config.certFile));
  const leaf = chain[0] as ParsedCertificate;

  const keyBytes = readPrivateFile(config.keyFile);
  if (keyBytes === undefined) throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `upstream key file ${config.keyFile} does not exist`);
  const text = keyBytes.toString('latin1');
  const pair = importPkcs8(text.includes('-----BEGIN') ? text : keyBytes);
  if (!exportSpkiDer(pair.publicKey).equals(leaf.spki)) {
    throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `the key in ${config.keyFile} does not belong to the first certificate in ${config.certFile}`);
  }

  for (const [i, c] of chain.entries()) {
    // keyUsage is required, not just "keyCertSign if present": the X.509-SVID verifier (ours
    // and go-spiffe's) refuses a signing certificate without it, so nothing minted would verify.
    if (!c.isCA || !c.keyUsage?.keyCertSign) {
      throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `certificate #${i + 1} in ${config.certFile} is not a CA certificate (needs basicConstraints cA=true and keyCertSign)`);
    }
    if (now < c.notBefore || now >= c.notAfter) {
      throw new UpstreamAuthorityError(
        'ERR_CA_UPSTREAM_INVALID',
        `certificate #${i + 1} in ${config.certFile} is valid from ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()}, not now (${now.toISOString()})`,
      );
    }
    const next = chain[i + 1];
    if (next && !verifiedBy(c, next)) {
      throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `certificate #${i + 1} in ${config.certFile} is not signed by certificate #${i + 2}; order the file leaf-most first`);
    }
  }

  let roots: ParsedCertificate[];
  if (config.bundleFile !== undefined) {
    roots = readCerts(config.bundleFile).map((d) => parse(d, config.bundleFile as string));
  } else {
    roots = chain.filter((c) => isSelfSigned(c));
    if (roots.length === 0) {
      throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `${config.certFile} does not end with a self-signed root; add the root to it or give a bundleFile`);
    }
  }
  // The chain must lead to one of the roots we will publish, or nothing we mint verifies.
  const top = chain[chain.length - 1] as ParsedCertificate;
  const anchored = roots.some((r) => r.der.equals(top.der) || verifiedBy(top, r));
  if (!anchored) {
    throw new UpstreamAuthorityError('ERR_CA_UPSTREAM_INVALID', `the chain in ${config.certFile} does not lead to any root in ${config.bundleFile ?? config.certFile}`);
  }
  const notAfter = new Date(Math.min(...chain.map((c) => c.notAfter.getTime())));

  return {
    certificate: leaf.der,
    privateKey: pair.privateKey,
    intermediates: chain.filter((c) => !isSelfSigned(c)).map((c) => c.der),
    roots: roots.map((r) => r.der),
    notAfter,
  };
}
