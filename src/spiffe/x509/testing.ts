/**
 * @module spiffe/x509/testing
 *
 * Test helpers for anyone who needs CAs, SVIDs or deliberately broken certificates:
 * `makeTestCa` (root or intermediate with a minter), `makeTestSvid`, and `makeHostileCert`
 * / `makeHostileLeaf`, which build certificates breaking any chosen rule (negative serial,
 * extra URI SANs, CA leaf, missing keyCertSign, unknown critical extension, bad signature ...).
 * Not for production use.
 */
import type { KeyObject } from 'node:crypto';
import { SpiffeId, TrustDomain } from '../id.js';
import { generateKeyPair, type KeyPair, type KeyType } from '../keys.js';
import { encodeTime, seq, tlv, TAG } from './der.js';
import {
  akiValue, basicConstraintsValue, encodeName, EKU_SERVER_CLIENT, extension, KU, keyUsageValue, OID, sanValue,
  signatureAlgorithmFor, signTbs, spkiFromKeyObject, subjectKeyId, subjectPublicKeyBits, type SubjectFields,
  uriNameConstraintsValue, V3,
} from './build.js';
import { createCaCertificate } from './ca.js';
import { X509SvidMinter } from './minter.js';
import { parseCertificate } from './parse.js';

export interface TestCa {
  trustDomain: TrustDomain;
  key: KeyPair;
  certificate: Buffer;
  minter: X509SvidMinter;
}

export interface MakeTestCaOptions {
  trustDomain?: string;
  keyType?: KeyType;
  ttlSeconds?: number;
  now?: Date;
  /** sign under this CA instead of self-signing */
  upstream?: TestCa;
  nameConstraints?: boolean;
  pathLenConstraint?: number;
  commonName?: string;
}

let caCounter = 0;

export function makeTestCa(opts: MakeTestCaOptions = {}): TestCa {
  const trustDomain = TrustDomain.parse(opts.trustDomain ?? opts.upstream?.trustDomain.name ?? 'example.org');
  const key = generateKeyPair(opts.keyType ?? 'ec-p256');
  const certificate = createCaCertificate({
    trustDomain,
    key,
    ttlSeconds: opts.ttlSeconds ?? 86_400,
    now: opts.now,
    upstream: opts.upstream ? { certificate: opts.upstream.certificate, privateKey: opts.upstream.key.privateKey } : undefined,
    nameConstraints: opts.nameConstraints,
    pathLenConstraint: opts.pathLenConstraint,
    subject: { commonName: opts.commonName ?? `Mayfly test CA ${++caCounter}` },
  });
  return { trustDomain, key, certificate, minter: new X509SvidMinter({ caCertificate: certificate, caPrivateKey: key.privateKey }) };
}

/** A leaf minted on the fast path, plus its key. */
export function makeTestSvid(ca: TestCa, path = '/workload', opts: { keyType?: KeyType; ttlSeconds?: number; now?: Date; dnsNames?: string[] } = {}): { certificate: Buffer; key: KeyPair } {
  const key = generateKeyPair(opts.keyType ?? 'ec-p256');
  const certificate = ca.minter.mint({
    spiffeId: SpiffeId.parse(`spiffe://${ca.trustDomain.name}${path}`),
    publicKey: key.publicKey,
    ttlSeconds: opts.ttlSeconds ?? 3600,
    now: opts.now,
    dnsNames: opts.dnsNames,
  });
  return { certificate, key };
}

export interface HostileCertOptions {
  /** signer; absent → self-signed with `key` */
  issuer?: { certificate: Uint8Array; privateKey: KeyObject };
  key?: KeyPair;
  uris?: string[];
  dnsNames?: string[];
  isCA?: boolean;
  pathLen?: number;
  /** key usage bit numbers (0 digitalSignature, 5 keyCertSign, 6 cRLSign); null omits the extension */
  keyUsage?: number[] | null;
  /** raw INTEGER content bytes, e.g. Buffer.from([0xff, 0x01]) for a negative serial */
  serial?: Buffer;
  notBefore?: Date;
  notAfter?: Date;
  subject?: SubjectFields;
  /** extra Extension DERs (see `rawExtension`) */
  extraExtensions?: Buffer[];
  nameConstraints?: { permitted: string[]; excluded?: string[] };
  /** flip a bit in the signature */
  corruptSignature?: boolean;
}

/** An Extension DER with any OID, criticality and value (for unknown critical extensions). */
export function rawExtension(oidDotted: string, critical: boolean, value: Buffer = Buffer.from([0x05, 0x00])): Buffer {
  return extension(oidDotted, critical, value);
}

/** Builds a certificate breaking whatever rules the options ask for. */
export function makeHostileCert(opts: HostileCertOptions): { certificate: Buffer; key: KeyPair } {
  const key = opts.key ?? generateKeyPair('ec-p256');
  const spki = spkiFromKeyObject(key.publicKey);
  const ski = subjectKeyId(subjectPublicKeyBits(spki));
  const subject = encodeName(opts.subject ?? {});
  let issuerName = subject;
  let aki = ski;
  let signer = key.privateKey;
  if (opts.issuer) {
    const ca = parseCertificate(opts.issuer.certificate);
    issuerName = ca.subject;
    aki = ca.subjectKeyId ?? ski;
    signer = opts.issuer.privateKey;
  }
  const now = Date.now();
  const notBefore = opts.notBefore ?? new Date(now - 60_000);
  const notAfter = opts.notAfter ?? new Date(now + 3_600_000);
  const exts: Buffer[] = [extension(OID.basicConstraints, true, basicConstraintsValue(opts.isCA ?? false, opts.pathLen))];
  const ku = opts.keyUsage === undefined ? (opts.isCA ? [KU.keyCertSign, KU.cRLSign] : [KU.digitalSignature]) : opts.keyUsage;
  if (ku !== null) exts.push(extension(OID.keyUsage, true, keyUsageValue(ku)));
  if (!opts.isCA) exts.push(extension(OID.extKeyUsage, false, EKU_SERVER_CLIENT));
  exts.push(extension(OID.subjectKeyIdentifier, false, tlv(TAG.OCTET_STRING, ski)));
  exts.push(extension(OID.authorityKeyIdentifier, false, akiValue(aki)));
  const uris = opts.uris ?? [];
  const dns = opts.dnsNames ?? [];
  if (uris.length || dns.length) exts.push(extension(OID.subjectAltName, subject.length === 2, sanValue(uris, dns)));
  if (opts.nameConstraints) exts.push(extension(OID.nameConstraints, true, uriNameConstraintsValue(opts.nameConstraints.permitted, opts.nameConstraints.excluded)));
  exts.push(...(opts.extraExtensions ?? []));
  const serial = tlv(TAG.INTEGER, opts.serial ?? Buffer.from([0x01, 0x23, 0x45, 0x67]));
  const alg = signatureAlgorithmFor(signer);
  const tbs = seq(V3, serial, alg.der, issuerName, seq(encodeTime(notBefore), encodeTime(notAfter)), subject, spki, tlv(0xa3, seq(...exts)));
  let certificate = signTbs(tbs, alg, signer);
  if (opts.corruptSignature) {
    certificate = Buffer.from(certificate);
    const i = certificate.length - 5;
    certificate[i] = (certificate[i] as number) ^ 0x01;
  }
  return { certificate, key };
}

/** A leaf for `ca` (a valid X.509-SVID unless options break it). */
export function makeHostileLeaf(ca: TestCa, opts: HostileCertOptions = {}): { certificate: Buffer; key: KeyPair } {
  return makeHostileCert({
    issuer: { certificate: ca.certificate, privateKey: ca.key.privateKey },
    uris: [`spiffe://${ca.trustDomain.name}/workload`],
    ...opts,
  });
}
