/**
 * @module spiffe/x509/minter
 *
 * The fast X.509-SVID mint path. Per CA, everything that does not change between leaves
 * (version, signature algorithm, issuer name, basicConstraints, keyUsage, EKU, AKI) is
 * encoded once into DER chunks. Per mint only the serial, validity, subject, SPKI, SAN and
 * SKI are encoded, the enclosing lengths are recomputed, the pieces are copied into one
 * buffer, and one native `crypto.sign` with the cached CA KeyObject signs it.
 *
 * Threat: a leaf that claims an identity the caller did not choose. The URI SAN comes only
 * from the `spiffeId` argument (never from a CSR), the leaf can never be a CA, and its
 * lifetime never outlives the CA.
 */
import type { KeyObject } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import { SpiffeId } from '../id.js';
import { encodeTime, lengthSize, seq, tlv, writeLength } from './der.js';
import {
  akiValue, basicConstraintsValue, checkDnsName, encodeName, EKU_SERVER_CLIENT, extension, KU, keyUsageValue, OID,
  randomSerialDer, sanValue, signatureAlgorithmFor, signTbs, spkiFromKeyObject, subjectKeyId, subjectPublicKeyBits,
  type SignatureAlgorithm, type SubjectFields, V3,
} from './build.js';
import { BACKDATE_MS, privateKeyMatches } from './ca.js';
import { parseCertificate } from './parse.js';

export interface MintRequest {
  spiffeId: SpiffeId;
  /** the leaf's public key; ignored when `publicKeySpki` is given */
  publicKey?: KeyObject;
  /** the leaf's public key as SPKI DER (e.g. from a CSR): skips the key export */
  publicKeySpki?: Uint8Array;
  ttlSeconds: number;
  dnsNames?: readonly string[];
  now?: Date;
  subject?: { commonName?: string; organization?: string; country?: string };
}

export interface X509SvidMinterConfig {
  caCertificate: Uint8Array;
  caPrivateKey: KeyObject;
}

const SAN_OID_PREFIX = (() => {
  // Extension SEQUENCE minus its outer header: OID, then (critical?) then OCTET STRING.
  const oidDer = extension(OID.subjectAltName, false, Buffer.alloc(0));
  return oidDer.subarray(2, 2 + 5); // 06 03 55 1d 11
})();
const SKI_EXT_HEAD = Buffer.from('301d0603551d0e04160414', 'hex'); // SEQ{ OID ski, OCTET STRING{ OCTET STRING(20) } }

/** Leaf DER minted from a precomputed per-CA template. */
export class X509SvidMinter {
  readonly #alg: SignatureAlgorithm;
  readonly #key: KeyObject;
  readonly #caNotAfterMs: number;
  readonly #caNotBeforeMs: number;
  /** [0xa0 version] — serial goes after */
  readonly #head = V3;
  /** sigAlg + issuer */
  readonly #algIssuer: Buffer;
  /** basicConstraints, keyUsage, EKU, AKI extensions, already encoded */
  readonly #fixedExts: Buffer;
  readonly #emptySubject = seq();
  readonly trustDomainName: string | undefined;
  /** last Validity encoded: mints within the same second with the same TTL reuse it */
  #lastValidity: { nb: number; na: number; der: Buffer } = { nb: -1, na: -1, der: Buffer.alloc(0) };

  #validity(nbSec: number, naSec: number): Buffer {
    const last = this.#lastValidity;
    if (last.nb === nbSec && last.na === naSec) return last.der;
    const der = seq(encodeTime(new Date(nbSec * 1000)), encodeTime(new Date(naSec * 1000)));
    this.#lastValidity = { nb: nbSec, na: naSec, der };
    return der;
  }

  constructor(cfg: X509SvidMinterConfig) {
    const ca = parseCertificate(cfg.caCertificate);
    if (!ca.isCA || !ca.keyUsage?.keyCertSign) throw new X509SvidError('ERR_X509_BUILD', 'CA certificate is not a CA with keyCertSign');
    if (!privateKeyMatches(cfg.caPrivateKey, ca.spki)) throw new X509SvidError('ERR_X509_KEY_MISMATCH', 'CA private key does not match the CA certificate');
    this.#alg = signatureAlgorithmFor(cfg.caPrivateKey);
    this.#key = cfg.caPrivateKey;
    this.#caNotAfterMs = ca.notAfter.getTime();
    this.#caNotBeforeMs = ca.notBefore.getTime();
    this.#algIssuer = Buffer.concat([this.#alg.der, ca.subject]);
    const caSki = ca.subjectKeyId ?? subjectKeyId(subjectPublicKeyBits(ca.spki));
    this.#fixedExts = Buffer.concat([
      extension(OID.basicConstraints, true, basicConstraintsValue(false)),
      extension(OID.keyUsage, true, keyUsageValue([KU.digitalSignature])),
      extension(OID.extKeyUsage, false, EKU_SERVER_CLIENT),
      extension(OID.authorityKeyIdentifier, false, akiValue(caSki)),
    ]);
    const td = ca.uriSans[0]?.startsWith('spiffe://') ? ca.uriSans[0].slice(9) : undefined;
    this.trustDomainName = td;
  }

  /** Mints a leaf X.509-SVID (DER). */
  mint(req: MintRequest): Buffer {
    if (!(req.spiffeId instanceof SpiffeId)) throw new TypeError('spiffeId must be a SpiffeId');
    if (req.spiffeId.isTrustDomainId) throw new X509SvidError('ERR_X509_BUILD', `${req.spiffeId} is a trust domain ID; an X.509-SVID needs a workload ID with a path`);
    if (!(req.ttlSeconds > 0)) throw new TypeError('ttlSeconds must be a positive number');
    const nowMs = (req.now ?? new Date()).getTime();
    if (nowMs >= this.#caNotAfterMs) throw new X509SvidError('ERR_X509_EXPIRED', 'the CA certificate has expired; rotate the CA before minting');
    if (nowMs < this.#caNotBeforeMs) throw new X509SvidError('ERR_X509_NOT_YET_VALID', 'the CA certificate is not valid yet');

    let spki: Buffer;
    if (req.publicKeySpki) spki = Buffer.from(req.publicKeySpki.buffer, req.publicKeySpki.byteOffset, req.publicKeySpki.byteLength);
    else if (req.publicKey) spki = spkiFromKeyObject(req.publicKey);
    else throw new TypeError('publicKey or publicKeySpki is required');
    const ski = subjectKeyId(subjectPublicKeyBits(spki));

    const serial = randomSerialDer();
    const notAfterMs = Math.min(nowMs + req.ttlSeconds * 1000, this.#caNotAfterMs);
    const validity = this.#validity(Math.floor((nowMs - BACKDATE_MS) / 1000), Math.floor(notAfterMs / 1000));
    const subject = req.subject && (req.subject.commonName || req.subject.organization || req.subject.country)
      ? encodeName(req.subject as SubjectFields)
      : this.#emptySubject;
    const dns = req.dnsNames ?? [];
    for (const d of dns) checkDnsName(d);
    const sanCritical = subject.length === 2;
    const sanVal = sanValue([req.spiffeId.toString()], dns);
    const sanExt = sanCritical
      ? seq(SAN_OID_PREFIX, Buffer.from([0x01, 0x01, 0xff]), tlv(0x04, sanVal))
      : seq(SAN_OID_PREFIX, tlv(0x04, sanVal));

    // Extensions: [3] EXPLICIT SEQUENCE OF Extension
    const extsLen = this.#fixedExts.length + sanExt.length + SKI_EXT_HEAD.length + 20;
    const seqLen = 1 + lengthSize(extsLen) + extsLen;
    const bodyLen = this.#head.length + serial.length + this.#algIssuer.length + validity.length + subject.length + spki.length + 1 + lengthSize(seqLen) + seqLen;
    const tbs = Buffer.allocUnsafe(1 + lengthSize(bodyLen) + bodyLen);
    tbs[0] = 0x30;
    let off = writeLength(tbs, 1, bodyLen);
    for (const part of [this.#head, serial, this.#algIssuer, validity, subject, spki]) {
      tbs.set(part, off);
      off += part.length;
    }
    tbs[off++] = 0xa3;
    off = writeLength(tbs, off, seqLen);
    tbs[off++] = 0x30;
    off = writeLength(tbs, off, extsLen);
    for (const part of [this.#fixedExts, sanExt, SKI_EXT_HEAD, ski]) {
      tbs.set(part, off);
      off += part.length;
    }
    if (off !== tbs.length) throw new Error(`internal: TBS length mismatch ${off} != ${tbs.length}`);
    return signTbs(tbs, this.#alg, this.#key);
  }
}
