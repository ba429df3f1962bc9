/**
 * @module spiffe/x509/build
 *
 * Building blocks shared by the CA builder, the fast leaf minter and the test helpers:
 * signature algorithm choice, SPKI from a KeyObject (via JWK, ~25x cheaper than an SPKI
 * export), names, extensions, random serials, and the final Certificate wrap.
 */
import * as cryptoNs from 'node:crypto';
import { createHash, randomFillSync, sign, type KeyObject } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import { keyTypeOf } from '../keys.js';
import {
  bitString, DerError, lengthSize, NULL_DER, writeLength, octetString, oid, readChildren, readTlv, seq, set, tlv, TAG, TRUE_DER, unsignedInteger,
} from './der.js';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  ed25519: '1.3.101.112',
  countryName: '2.5.4.6',
  organizationName: '2.5.4.10',
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** How a given private key signs certificates. */
export interface SignatureAlgorithm {
  /** AlgorithmIdentifier DER */
  readonly der: Buffer;
  /** digest name for node:crypto sign */
  readonly hash: 'sha256' | 'sha384';
  readonly oid: string;
}

const SIG_P256: SignatureAlgorithm = { der: seq(oid(OID.ecdsaWithSha256)), hash: 'sha256', oid: OID.ecdsaWithSha256 };
const SIG_P384: SignatureAlgorithm = { der: seq(oid(OID.ecdsaWithSha384)), hash: 'sha384', oid: OID.ecdsaWithSha384 };
const SIG_RSA: SignatureAlgorithm = { der: seq(oid(OID.sha256WithRsa), NULL_DER), hash: 'sha256', oid: OID.sha256WithRsa };

/** ECDSA-SHA256 for P-256, ECDSA-SHA384 for P-384, sha256WithRSAEncryption for RSA. */
export function signatureAlgorithmFor(privateKey: KeyObject): SignatureAlgorithm {
  const t = keyTypeOf(privateKey);
  return t === 'ec-p256' ? SIG_P256 : t === 'ec-p384' ? SIG_P384 : SIG_RSA;
}

// SPKI prefixes up to (and including) the BIT STRING's unused-bits byte, for fixed-size EC points.
const EC_SPKI_PREFIX = {
  'P-256': Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
  'P-384': Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'),
} as const;

/** SPKI DER of a public (or private) KeyObject, built from its JWK export. */
export function spkiFromKeyObject(key: KeyObject): Buffer {
  const type = keyTypeOf(key);
  const jwk = key.export({ format: 'jwk' });
  if (type === 'rsa-2048') {
    const n = Buffer.from(jwk.n as string, 'base64url');
    const e = Buffer.from(jwk.e as string, 'base64url');
    return seq(seq(oid(OID.rsaEncryption), NULL_DER), bitString(seq(unsignedInteger(n), unsignedInteger(e))));
  }
  const prefix = type === 'ec-p256' ? EC_SPKI_PREFIX['P-256'] : EC_SPKI_PREFIX['P-384'];
  const size = type === 'ec-p256' ? 32 : 48;
  // One allocation: prefix, 0x04 (uncompressed point), X, Y decoded in place.
  const out = Buffer.allocUnsafe(prefix.length + 1 + 2 * size);
  prefix.copy(out, 0);
  out[prefix.length] = 4;
  const wx = out.write(jwk.x as string, prefix.length + 1, size, 'base64url');
  const wy = out.write(jwk.y as string, prefix.length + 1 + size, size, 'base64url');
  if (wx !== size || wy !== size) throw new X509SvidError('ERR_X509_BUILD', 'EC public key coordinates have the wrong length');
  return out;
}

const SPKI_ALGS: readonly Buffer[] = [
  seq(oid(OID.ecPublicKey), oid(OID.prime256v1)),
  seq(oid(OID.ecPublicKey), oid(OID.secp384r1)),
  seq(oid(OID.rsaEncryption), NULL_DER),
];

/**
 * Checks the shape of an SPKI (EC P-256/P-384 or RSA, one BIT STRING, nothing after) and
 * returns the subject public key bits (the SKI input). Does not check the point is on the curve.
 */
export function subjectPublicKeyBits(spki: Uint8Array): Buffer {
  try {
    const outer = readTlv(spki, 0);
    if (outer.tag !== TAG.SEQUENCE || outer.end !== spki.length) throw new DerError('not one SEQUENCE');
    const [alg, bits, ...rest] = readChildren(spki, outer);
    if (!alg || !bits || rest.length || alg.tag !== TAG.SEQUENCE || bits.tag !== TAG.BIT_STRING) throw new DerError('not SEQUENCE{AlgorithmIdentifier, BIT STRING}');
    const algDer = spki.subarray(alg.start, alg.end);
    if (!SPKI_ALGS.some((a) => a.equals(algDer))) throw new DerError('key algorithm is not EC P-256, EC P-384 or RSA');
    if (bits.end - bits.contentStart < 2 || spki[bits.contentStart] !== 0) throw new DerError('BIT STRING is empty or has unused bits');
    return Buffer.from(spki.buffer, spki.byteOffset + bits.contentStart + 1, bits.end - bits.contentStart - 1);
  } catch (cause) {
    if (cause instanceof DerError) throw new X509SvidError('ERR_X509_BUILD', `subject public key is not a usable SPKI: ${cause.message}`, { cause });
    throw cause;
  }
}

/** SKI per RFC 5280 method 1: SHA-1 of the subject public key bits. */
export function subjectKeyId(publicKeyBits: Uint8Array): Buffer {
  // crypto.hash (Node ≥ 20.12) is a one-shot without the Hash object's overhead.
  const oneShot = (cryptoNs as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
  return oneShot ? oneShot('sha1', publicKeyBits, 'buffer') : createHash('sha1').update(publicKeyBits).digest();
}

const serialPool = Buffer.allocUnsafe(16 * 256);
let serialPoolOffset = serialPool.length;

/** A fresh random 128-bit serial number as a minimal, positive DER INTEGER TLV. */
export function randomSerialDer(): Buffer {
  if (serialPoolOffset === serialPool.length) {
    randomFillSync(serialPool);
    serialPoolOffset = 0;
  }
  let start = serialPoolOffset;
  const end = start + 16;
  serialPoolOffset = end;
  // Minimal: drop leading zero bytes (keep at least one byte, and never encode zero).
  while (start < end - 1 && serialPool[start] === 0) start++;
  if (serialPool[start] === 0) serialPool[start] = 1;
  // Positive: a 0x00 pad when the high bit is set.
  const pad = (serialPool[start] as number) & 0x80 ? 1 : 0;
  const len = end - start + pad;
  const out = Buffer.allocUnsafe(2 + len);
  out[0] = TAG.INTEGER;
  out[1] = len;
  if (pad) out[2] = 0;
  serialPool.copy(out, 2 + pad, start, end);
  return out;
}

export interface SubjectFields {
  commonName?: string;
  organization?: string;
  country?: string;
  /** the X.520 serialNumber attribute (SPIRE puts the serial in CA subjects) */
  serialNumber?: string;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function attr(type: string, value: string, printable: boolean): Buffer {
  if (printable && !PRINTABLE.test(value)) throw new X509SvidError('ERR_X509_BUILD', `subject value ${JSON.stringify(value)} is not a PrintableString`);
  return set(seq(oid(type), tlv(printable ? TAG.PRINTABLE_STRING : TAG.UTF8_STRING, Buffer.from(value, 'utf8'))));
}

/** Name DER (RDNSequence), one attribute per RDN, in the order C, O, serialNumber, CN. Empty → `30 00`. */
export function encodeName(s: SubjectFields | undefined): Buffer {
  const rdns: Buffer[] = [];
  if (s?.country) {
    if (!/^[A-Z]{2}$/.test(s.country)) throw new X509SvidError('ERR_X509_BUILD', 'country must be two uppercase letters');
    rdns.push(attr(OID.countryName, s.country, true));
  }
  if (s?.organization) rdns.push(attr(OID.organizationName, s.organization, false));
  if (s?.serialNumber) rdns.push(attr(OID.serialNumber, s.serialNumber, true));
  if (s?.commonName) rdns.push(attr(OID.commonName, s.commonName, false));
  return seq(...rdns);
}

/** Extension DER. */
export function extension(oidDotted: string, critical: boolean, value: Uint8Array): Buffer {
  return critical ? seq(oid(oidDotted), TRUE_DER, octetString(value)) : seq(oid(oidDotted), octetString(value));
}

export const KU = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** keyUsage BIT STRING value with the given bit numbers set (named-bit DER: trailing zeros trimmed). */
export function keyUsageValue(bits: readonly number[]): Buffer {
  let v = 0;
  for (const b of bits) v |= 0x80 >> b;
  if (v === 0) return Buffer.from([TAG.BIT_STRING, 1, 0]);
  let unused = 0;
  while (((v >> unused) & 1) === 0) unused++;
  return Buffer.from([TAG.BIT_STRING, 2, unused, v]);
}

export function basicConstraintsValue(cA: boolean, pathLen?: number): Buffer {
  if (!cA) return seq();
  return pathLen === undefined ? seq(TRUE_DER) : seq(TRUE_DER, unsignedInteger(Buffer.from(bigEndian(pathLen))));
}

function bigEndian(n: number): number[] {
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new TypeError('pathLenConstraint must be an integer 0..255');
  return [n];
}

export const EKU_SERVER_CLIENT = seq(oid(OID.serverAuth), oid(OID.clientAuth));

export function akiValue(keyId: Uint8Array): Buffer {
  return seq(tlv(0x80, keyId));
}

/** GeneralNames with URI [6] and dNSName [2] entries. */
export function sanValue(uris: readonly string[], dnsNames: readonly string[]): Buffer {
  const names: Buffer[] = [];
  for (const u of uris) names.push(tlv(0x86, ia5(u, 'URI SAN')));
  for (const d of dnsNames) names.push(tlv(0x82, ia5(d, 'DNS SAN')));
  return seq(...names);
}

const DNS_NAME = /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Checks a DNS SAN (hostname, optional leading wildcard label, ≤ 253 bytes). */
export function checkDnsName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 253 || !DNS_NAME.test(name)) {
    throw new X509SvidError('ERR_X509_BUILD', `DNS SAN ${JSON.stringify(name)} is not a valid hostname`);
  }
}

function ia5(s: string, what: string): Buffer {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(s)) throw new X509SvidError('ERR_X509_BUILD', `${what} ${JSON.stringify(s)} is not ASCII`);
  return Buffer.from(s, 'latin1');
}

/** NameConstraints value permitting only URIs whose host is exactly `host`. */
export function uriNameConstraintsValue(permitted: readonly string[], excluded: readonly string[] = []): Buffer {
  const subtrees = (hosts: readonly string[]): Buffer[] => hosts.map((h) => seq(tlv(0x86, ia5(h, 'name constraint'))));
  const parts: Buffer[] = [];
  if (permitted.length) parts.push(tlv(0xa0, ...subtrees(permitted)));
  if (excluded.length) parts.push(tlv(0xa1, ...subtrees(excluded)));
  return seq(...parts);
}

/** Signs a TBSCertificate and wraps it: Certificate ::= SEQUENCE { tbs, sigAlg, BIT STRING sig }. */
export function signTbs(tbs: Uint8Array, alg: SignatureAlgorithm, privateKey: KeyObject): Buffer {
  const sig = sign(alg.hash, tbs, privateKey);
  const bitsLen = sig.length + 1;
  const bodyLen = tbs.length + alg.der.length + 1 + lengthSize(bitsLen) + bitsLen;
  const out = Buffer.allocUnsafe(1 + lengthSize(bodyLen) + bodyLen);
  out[0] = TAG.SEQUENCE;
  let off = writeLength(out, 1, bodyLen);
  out.set(tbs, off);
  off += tbs.length;
  out.set(alg.der, off);
  off += alg.der.length;
  out[off++] = TAG.BIT_STRING;
  off = writeLength(out, off, bitsLen);
  out[off++] = 0;
  out.set(sig, off);
  return out;
}

export const V3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
