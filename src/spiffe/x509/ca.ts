/**
 * @module spiffe/x509/ca
 *
 * CA certificates for a trust domain: a self-signed root, or an intermediate signed by an
 * upstream CA. The URI SAN carries the trust domain ID; optional critical URI name
 * constraints limit every SVID below the CA to this trust domain, so a stolen CA key of
 * one trust domain cannot mint identities in another.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import type { TrustDomain } from '../id.js';
import type { KeyPair } from '../keys.js';
import { encodeTime, seq, tlv } from './der.js';
import {
  akiValue, basicConstraintsValue, encodeName, extension, KU, keyUsageValue, OID, randomSerialDer, sanValue,
  signatureAlgorithmFor, signTbs, spkiFromKeyObject, subjectKeyId, subjectPublicKeyBits, uriNameConstraintsValue, V3,
} from './build.js';
import { parseCertificate } from './parse.js';

/** SPIRE's backdate: certificates start 10 s in the past to absorb clock skew. */
export const BACKDATE_MS = 10_000;

export interface CreateCaCertificateConfig {
  trustDomain: TrustDomain;
  key: KeyPair;
  ttlSeconds: number;
  now?: Date;
  /** absent → self-signed root */
  upstream?: { certificate: Uint8Array; privateKey: KeyObject };
  /** add a critical URI name constraint permitting only this trust domain */
  nameConstraints?: boolean;
  subject?: { commonName?: string; organization?: string; country?: string };
  pathLenConstraint?: number;
}

/** Checks a private key belongs to a certificate's SPKI. */
export function privateKeyMatches(privateKey: KeyObject, spki: Uint8Array): boolean {
  try {
    const fromCert = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    return fromCert.equals(createPublicKey(privateKey));
  } catch {
    return false;
  }
}

/** Builds and signs a CA certificate (DER). */
export function createCaCertificate(cfg: CreateCaCertificateConfig): Buffer {
  if (!Number.isFinite(cfg.ttlSeconds) || cfg.ttlSeconds <= 0) throw new TypeError('ttlSeconds must be a positive number');
  const now = cfg.now ?? new Date();
  const serial = randomSerialDer();
  const spki = spkiFromKeyObject(cfg.key.publicKey);
  const ski = subjectKeyId(subjectPublicKeyBits(spki));
  const serialDecimal = BigInt('0x' + serial.subarray(2).toString('hex')).toString();
  const subject = encodeName({ country: 'US', organization: 'SPIFFE', serialNumber: serialDecimal, ...cfg.subject });

  let issuer = subject;
  let aki = ski;
  let notAfterMs = now.getTime() + cfg.ttlSeconds * 1000;
  let signer = cfg.key.privateKey;
  if (cfg.upstream) {
    const up = parseCertificate(cfg.upstream.certificate);
    if (!up.isCA || !up.keyUsage?.keyCertSign) throw new X509SvidError('ERR_X509_BUILD', 'upstream certificate is not a CA with keyCertSign');
    if (!privateKeyMatches(cfg.upstream.privateKey, up.spki)) throw new X509SvidError('ERR_X509_KEY_MISMATCH', 'upstream private key does not match the upstream certificate');
    if (up.notAfter.getTime() <= now.getTime()) throw new X509SvidError('ERR_X509_EXPIRED', 'upstream certificate has expired; cannot sign a CA under it');
    issuer = up.subject;
    aki = up.subjectKeyId ?? subjectKeyId(subjectPublicKeyBits(up.spki));
    notAfterMs = Math.min(notAfterMs, up.notAfter.getTime());
    signer = cfg.upstream.privateKey;
  }
  const alg = signatureAlgorithmFor(signer);
  const notAfter = new Date(Math.floor(notAfterMs / 1000) * 1000);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);

  const exts = [
    extension(OID.basicConstraints, true, basicConstraintsValue(true, cfg.pathLenConstraint)),
    extension(OID.keyUsage, true, keyUsageValue([KU.digitalSignature, KU.keyCertSign, KU.cRLSign])),
    extension(OID.subjectKeyIdentifier, false, tlv(0x04, ski)),
    extension(OID.authorityKeyIdentifier, false, akiValue(aki)),
    extension(OID.subjectAltName, false, sanValue([cfg.trustDomain.idString], [])),
  ];
  if (cfg.nameConstraints) exts.push(extension(OID.nameConstraints, true, uriNameConstraintsValue([cfg.trustDomain.name])));
  const tbs = seq(V3, serial, alg.der, issuer, seq(encodeTime(notBefore), encodeTime(notAfter)), subject, spki, tlv(0xa3, seq(...exts)));
  return signTbs(tbs, alg, signer);
}
