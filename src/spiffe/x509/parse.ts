/**
 * @module spiffe/x509/parse
 *
 * Our own small certificate model, read from DER. The skeleton (TBS bytes, names,
 * validity, SPKI, extension list) and the common extensions (basicConstraints, keyUsage,
 * EKU, SAN, SKI, AKI) are read with the strict DER reader, so the bytes we verify a
 * signature over are exactly the bytes we read fields from (and parsing costs a few µs,
 * which matters because every minted SVID is verified). The rare, intricate
 * nameConstraints extension is decoded with @peculiar/asn1-x509, loaded when one is met.
 *
 * Threat: confused parsing. Truncated input, BER encodings, duplicate extensions, negative
 * serials and trailing bytes are rejected (ERR_X509_MALFORMED) rather than interpreted.
 */
import type { GeneralName } from '@peculiar/asn1-x509';
import { X509SvidError } from '../errors.js';
import { DerError, readChildren, readOid, readTime, readTlv, TAG, type Tlv } from './der.js';
import { asnSchema, asnX509 } from './asn1-lazy.js';
import { OID } from './build.js';

export interface CertExtension {
  oid: string;
  critical: boolean;
  /** the extnValue OCTET STRING's content */
  value: Buffer;
}

export interface KeyUsageBits {
  digitalSignature: boolean;
  nonRepudiation: boolean;
  keyEncipherment: boolean;
  dataEncipherment: boolean;
  keyAgreement: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
  encipherOnly: boolean;
  decipherOnly: boolean;
}

/** One name-constraint subtree, reduced to the forms we enforce. */
export type NameSubtree =
  | { type: 'uri'; value: string }
  | { type: 'dns'; value: string }
  | { type: 'other'; value: string /* 'ip' | 'email' | 'directoryName' | ... */ };

export interface ParsedNameConstraints {
  permitted: NameSubtree[];
  excluded: NameSubtree[];
  critical: boolean;
}

export interface ParsedCertificate {
  der: Buffer;
  /** TBSCertificate DER: what the signature covers */
  tbs: Buffer;
  version: number;
  /** INTEGER content bytes (minimal, positive) */
  serialNumber: Buffer;
  serialHex: string;
  /** signatureAlgorithm OID (the outer one; it must equal the TBS one) */
  signatureAlgorithm: string;
  /** AlgorithmIdentifier DER */
  signatureAlgorithmDer: Buffer;
  signature: Buffer;
  issuer: Buffer;
  subject: Buffer;
  subjectIsEmpty: boolean;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  publicKeyAlgorithm: string;
  extensions: CertExtension[];
  basicConstraintsPresent: boolean;
  isCA: boolean;
  pathLen?: number;
  /** undefined when the keyUsage extension is absent */
  keyUsage?: KeyUsageBits;
  /** undefined when the extKeyUsage extension is absent */
  extKeyUsage?: string[];
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  emailSans: string[];
  /** SAN entries of other forms (otherName, directoryName, registeredID, ...) */
  otherSanCount: number;
  sanCritical: boolean;
  subjectKeyId?: Buffer;
  authorityKeyId?: Buffer;
  nameConstraints?: ParsedNameConstraints;
}

class Malformed extends Error {}

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Malformed(what);
}

/** Reads `value` as exactly one TLV of `tag`. */
function single(value: Buffer, tag: number, name: string): Tlv {
  const t = readTlv(value, 0);
  need(t.tag === tag && t.end === value.length, `${name} is not one ${tag === TAG.SEQUENCE ? 'SEQUENCE' : `tag 0x${tag.toString(16)}`}`);
  return t;
}

function ia5(buf: Buffer, t: Tlv, name: string): string {
  for (let i = t.contentStart; i < t.end; i++) need((buf[i] as number) < 0x80, `${name} is not ASCII (IA5String)`);
  return buf.toString('latin1', t.contentStart, t.end);
}

function ipString(buf: Buffer, t: Tlv): string {
  const b = buf.subarray(t.contentStart, t.end);
  need(b.length === 4 || b.length === 16, 'IP address SAN must be 4 or 16 bytes');
  if (b.length === 4) return [...b].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

function decodeBasicConstraints(value: Buffer): { cA: boolean; pathLen?: number } {
  const t = single(value, TAG.SEQUENCE, 'basicConstraints');
  const parts = readChildren(value, t);
  let i = 0;
  let cA = false;
  if (parts[i]?.tag === TAG.BOOLEAN) {
    const b = parts[i] as Tlv;
    need(b.end - b.contentStart === 1 && (value[b.contentStart] === 0xff || value[b.contentStart] === 0), 'basicConstraints cA is not a DER BOOLEAN');
    cA = value[b.contentStart] === 0xff;
    i++;
  }
  let pathLen: number | undefined;
  if (parts[i]?.tag === TAG.INTEGER) {
    const n = parts[i] as Tlv;
    const len = n.end - n.contentStart;
    need(len >= 1 && len <= 4 && ((value[n.contentStart] as number) & 0x80) === 0, 'pathLenConstraint must be a small non-negative INTEGER');
    pathLen = value.readUIntBE(n.contentStart, len);
    i++;
  }
  need(i === parts.length, 'basicConstraints has unexpected fields');
  return pathLen === undefined ? { cA } : { cA, pathLen };
}

function decodeEku(value: Buffer): string[] {
  const t = single(value, TAG.SEQUENCE, 'extKeyUsage');
  const out = readChildren(value, t).map((o) => readOid(value, o));
  need(out.length > 0, 'extKeyUsage is empty');
  return out;
}

function decodeSan(value: Buffer, out: ParsedCertificate): void {
  const t = single(value, TAG.SEQUENCE, 'subjectAltName');
  const names = readChildren(value, t);
  need(names.length > 0, 'subjectAltName is empty');
  for (const g of names) {
    switch (g.tag) {
      case 0x86: out.uriSans.push(ia5(value, g, 'URI SAN')); break;
      case 0x82: out.dnsSans.push(ia5(value, g, 'DNS SAN')); break;
      case 0x81: out.emailSans.push(ia5(value, g, 'email SAN')); break;
      case 0x87: out.ipSans.push(ipString(value, g)); break;
      case 0xa0: case 0xa3: case 0xa4: case 0xa5: case 0x88: out.otherSanCount++; break;
      default: throw new Malformed(`subjectAltName holds an unknown GeneralName tag 0x${g.tag.toString(16)}`);
    }
  }
}

function decodeAki(value: Buffer): Buffer | undefined {
  const t = single(value, TAG.SEQUENCE, 'authorityKeyIdentifier');
  let keyId: Buffer | undefined;
  for (const p of readChildren(value, t)) {
    need(p.tag === 0x80 || p.tag === 0xa1 || p.tag === 0x82, 'authorityKeyIdentifier has an unknown field');
    if (p.tag === 0x80) keyId = Buffer.from(value.subarray(p.contentStart, p.end));
  }
  return keyId;
}

/** Decodes an extension value with an asn1-x509 schema, after checking it is exactly one DER TLV. */
function decodeExt<T>(value: Buffer, type: new () => T, name: string): T {
  const t = readTlv(value, 0);
  need(t.end === value.length, `${name} has trailing bytes`);
  try {
    return asnSchema().AsnConvert.parse(value, type);
  } catch (e) {
    throw new Malformed(`${name} does not decode: ${(e as Error).message}`);
  }
}

function keyUsageBits(value: Buffer): KeyUsageBits {
  const t = readTlv(value, 0);
  need(t.tag === TAG.BIT_STRING && t.end === value.length && t.end > t.contentStart, 'keyUsage is not a BIT STRING');
  const unused = value[t.contentStart] as number;
  need(unused < 8 && (t.end - t.contentStart > 1 || unused === 0), 'keyUsage BIT STRING has bad unused-bits count');
  const bit = (n: number): boolean => {
    const idx = t.contentStart + 1 + (n >> 3);
    return idx < t.end && (((value[idx] as number) >> (7 - (n & 7))) & 1) === 1;
  };
  return {
    digitalSignature: bit(0), nonRepudiation: bit(1), keyEncipherment: bit(2), dataEncipherment: bit(3), keyAgreement: bit(4),
    keyCertSign: bit(5), cRLSign: bit(6), encipherOnly: bit(7), decipherOnly: bit(8),
  };
}

function subtreeOf(g: GeneralName): NameSubtree {
  if (g.uniformResourceIdentifier !== undefined) return { type: 'uri', value: g.uniformResourceIdentifier };
  if (g.dNSName !== undefined) return { type: 'dns', value: g.dNSName };
  if (g.iPAddress !== undefined) return { type: 'other', value: 'ip' };
  if (g.rfc822Name !== undefined) return { type: 'other', value: 'email' };
  if (g.directoryName !== undefined) return { type: 'other', value: 'directoryName' };
  return { type: 'other', value: 'other' };
}

/** Parses one DER certificate. Throws X509SvidError ERR_X509_MALFORMED naming the broken rule. */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  if (!(der instanceof Uint8Array)) throw new TypeError('certificate must be DER bytes (Uint8Array)');
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  try {
    return parseInner(buf);
  } catch (cause) {
    if (cause instanceof Malformed || cause instanceof DerError) {
      throw new X509SvidError('ERR_X509_MALFORMED', `certificate is malformed: ${cause.message}`, { cause });
    }
    throw cause;
  }
}

function parseInner(buf: Buffer): ParsedCertificate {
  const cert = readTlv(buf, 0);
  need(cert.tag === TAG.SEQUENCE, 'not a SEQUENCE');
  need(cert.end === buf.length, 'trailing bytes after the certificate');
  const top = readChildren(buf, cert);
  need(top.length === 3, 'Certificate must hold tbsCertificate, signatureAlgorithm, signatureValue');
  const [tbsT, algT, sigT] = top as [Tlv, Tlv, Tlv];
  need(tbsT.tag === TAG.SEQUENCE && algT.tag === TAG.SEQUENCE && sigT.tag === TAG.BIT_STRING, 'Certificate fields have the wrong types');
  need(sigT.end - sigT.contentStart >= 2 && buf[sigT.contentStart] === 0, 'signature BIT STRING is empty or has unused bits');

  const f = readChildren(buf, tbsT);
  let i = 0;
  let version = 1;
  if (f[i]?.tag === 0xa0) {
    const vs = readChildren(buf, f[i] as Tlv);
    need(vs.length === 1 && vs[0]?.tag === TAG.INTEGER && vs[0].end - vs[0].contentStart === 1, 'bad version');
    const v = buf[vs[0].contentStart] as number;
    need(v === 1 || v === 2, `unknown certificate version ${v + 1}`);
    version = v + 1;
    i++;
  }
  const serialT = f[i++];
  need(serialT?.tag === TAG.INTEGER && serialT.end > serialT.contentStart, 'missing serial number');
  const serial = buf.subarray(serialT.contentStart, serialT.end);
  need(serial.length <= 21, 'serial number longer than 20 octets');
  need(!(serial.length > 1 && ((serial[0] === 0 && (serial[1] as number) < 0x80) || (serial[0] === 0xff && (serial[1] as number) >= 0x80))), 'serial number is not a minimal DER INTEGER');
  need(((serial[0] as number) & 0x80) === 0, 'serial number is negative; RFC 5280 requires a positive serial (Go rejects it too)');
  need(!(serial.length === 1 && serial[0] === 0), 'serial number is zero; RFC 5280 requires a positive serial');
  const innerAlg = f[i++];
  need(innerAlg?.tag === TAG.SEQUENCE, 'missing TBS signature algorithm');
  need(buf.subarray(innerAlg.start, innerAlg.end).equals(buf.subarray(algT.start, algT.end)), 'TBS signature algorithm differs from the outer signatureAlgorithm');
  const issuerT = f[i++];
  const validityT = f[i++];
  const subjectT = f[i++];
  const spkiT = f[i++];
  need(issuerT?.tag === TAG.SEQUENCE && validityT?.tag === TAG.SEQUENCE && subjectT?.tag === TAG.SEQUENCE && spkiT?.tag === TAG.SEQUENCE, 'TBS fields missing or of the wrong type');
  const validity = readChildren(buf, validityT);
  need(validity.length === 2, 'validity must hold notBefore and notAfter');
  const notBefore = readTime(buf, validity[0] as Tlv);
  const notAfter = readTime(buf, validity[1] as Tlv);
  const spkiParts = readChildren(buf, spkiT);
  need(spkiParts.length === 2 && spkiParts[0]?.tag === TAG.SEQUENCE && spkiParts[1]?.tag === TAG.BIT_STRING, 'bad SubjectPublicKeyInfo');
  const pkAlg = readChildren(buf, spkiParts[0]);
  need(pkAlg.length >= 1, 'bad public key algorithm');
  const publicKeyAlgorithm = readOid(buf, pkAlg[0] as Tlv);
  const algParts = readChildren(buf, algT);
  need(algParts.length >= 1 && algParts.length <= 2, 'bad signature algorithm');
  const signatureAlgorithm = readOid(buf, algParts[0] as Tlv);

  if (f[i]?.tag === 0x81) i++; // issuerUniqueID
  if (f[i]?.tag === 0x82) i++; // subjectUniqueID
  const extensions: CertExtension[] = [];
  if (f[i]?.tag === 0xa3) {
    need(version === 3, 'extensions require a v3 certificate');
    const wrap = readChildren(buf, f[i] as Tlv);
    need(wrap.length === 1 && wrap[0]?.tag === TAG.SEQUENCE, 'bad extensions wrapper');
    const list = readChildren(buf, wrap[0]);
    need(list.length > 0, 'empty extensions list');
    for (const e of list) {
      need(e.tag === TAG.SEQUENCE, 'extension is not a SEQUENCE');
      const parts = readChildren(buf, e);
      need(parts.length === 2 || parts.length === 3, 'extension must be SEQUENCE { OID, [critical], OCTET STRING }');
      const extOid = readOid(buf, parts[0] as Tlv);
      let critical = false;
      if (parts.length === 3) {
        const b = parts[1] as Tlv;
        need(b.tag === TAG.BOOLEAN && b.end - b.contentStart === 1 && (buf[b.contentStart] === 0xff || buf[b.contentStart] === 0), 'extension critical flag is not a DER BOOLEAN');
        critical = buf[b.contentStart] === 0xff;
      }
      const v = parts[parts.length - 1] as Tlv;
      need(v.tag === TAG.OCTET_STRING, 'extension value is not an OCTET STRING');
      need(!extensions.some((x) => x.oid === extOid), `extension ${extOid} appears twice`);
      extensions.push({ oid: extOid, critical, value: Buffer.from(buf.subarray(v.contentStart, v.end)) });
    }
    i++;
  }
  need(i === f.length, 'unexpected fields at the end of the TBSCertificate');

  const out: ParsedCertificate = {
    der: buf,
    tbs: buf.subarray(tbsT.start, tbsT.end),
    version,
    serialNumber: Buffer.from(serial),
    serialHex: serial.toString('hex'),
    signatureAlgorithm,
    signatureAlgorithmDer: buf.subarray(algT.start, algT.end),
    signature: buf.subarray(sigT.contentStart + 1, sigT.end),
    issuer: buf.subarray(issuerT.start, issuerT.end),
    subject: buf.subarray(subjectT.start, subjectT.end),
    subjectIsEmpty: subjectT.end === subjectT.contentStart,
    notBefore,
    notAfter,
    spki: buf.subarray(spkiT.start, spkiT.end),
    publicKeyAlgorithm,
    extensions,
    basicConstraintsPresent: false,
    isCA: false,
    uriSans: [],
    dnsSans: [],
    ipSans: [],
    emailSans: [],
    otherSanCount: 0,
    sanCritical: false,
  };

  for (const ext of extensions) {
    switch (ext.oid) {
      case OID.basicConstraints: {
        const bc = decodeBasicConstraints(ext.value);
        out.basicConstraintsPresent = true;
        out.isCA = bc.cA;
        if (bc.pathLen !== undefined) {
          need(out.isCA, 'pathLenConstraint on a non-CA certificate');
          out.pathLen = bc.pathLen;
        }
        break;
      }
      case OID.keyUsage:
        out.keyUsage = keyUsageBits(ext.value);
        break;
      case OID.extKeyUsage:
        out.extKeyUsage = decodeEku(ext.value);
        break;
      case OID.subjectAltName:
        decodeSan(ext.value, out);
        out.sanCritical = ext.critical;
        break;
      case OID.subjectKeyIdentifier: {
        const t = single(ext.value, TAG.OCTET_STRING, 'subjectKeyIdentifier');
        out.subjectKeyId = Buffer.from(ext.value.subarray(t.contentStart, t.end));
        break;
      }
      case OID.authorityKeyIdentifier:
        out.authorityKeyId = decodeAki(ext.value);
        break;
      case OID.nameConstraints: {
        const nc = decodeExt(ext.value, asnX509().NameConstraints, 'nameConstraints');
        const conv = (list: typeof nc.permittedSubtrees): NameSubtree[] =>
          (list ?? []).map((s) => {
            need((s.minimum ?? 0) === 0 && s.maximum === undefined, 'name constraint minimum/maximum must be absent (RFC 5280)');
            return subtreeOf(s.base);
          });
        out.nameConstraints = { permitted: conv(nc.permittedSubtrees), excluded: conv(nc.excludedSubtrees), critical: ext.critical };
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** Extensions this module understands; any other extension marked critical makes a cert unusable. */
export const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier, OID.nameConstraints,
]);
