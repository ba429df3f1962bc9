/**
 * @module spiffe/x509/crl
 *
 * X.509 certificate revocation lists (RFC 5280 section 5, version 2): a builder for a CA
 * that revokes individual X509-SVIDs, and a strict reader for whoever holds one (the
 * agent, the SDK).
 *
 * The builder writes: version v2; the CA's subject as issuer; `thisUpdate` and
 * `nextUpdate`; one entry per revoked serial with its `revocationDate` and, unless the
 * reason is `unspecified`, a reasonCode entry extension (RFC 5280 5.3.1: "the reason code
 * CRL entry extension SHOULD be absent instead of using the unspecified (0) reasonCode
 * value"); and the CRL extensions authorityKeyIdentifier (the CA's SKI) and cRLNumber.
 * It is signed with the same algorithm choice and the same wrap as certificates (build.ts).
 *
 * Threats stopped: a CRL is a security decision made by someone else's bytes, so the reader
 * accepts strict DER only (der.ts `readTlv`), refuses unknown critical extensions (RFC 5280
 * 5.2 and 5.3: a CRL with an unrecognised critical extension must not be used) and
 * `verifyCrlSignature` checks the signature with the issuing CA's key before a relying
 * party trusts the entries. Size: entries cost ~40-55 bytes each; a CA drops an entry once
 * the revoked certificate has expired (RFC 5280 5.1.2.6 allows it), so with short SVID
 * lifetimes a CRL holds only what was revoked within one SVID TTL.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import { DerError, encodeTime, readChildren, readOid, readTime, readTlv, seq, tlv, TAG, unsignedInteger, type Tlv } from './der.js';
import { akiValue, extension, OID, signatureAlgorithmFor, signTbs } from './build.js';
import { parseCertificate } from './parse.js';
import { SIGNATURE_ALGORITHMS } from './signature-algorithms.js';

/** RFC 5280 5.3.1 CRLReason values, by their ASN.1 names. */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type CrlReason = keyof typeof CRL_REASONS;

/**
 * The reasons a CA may give when it revokes an SVID for good: every RFC 5280 reason but
 * `certificateHold` (a hold is meant to be lifted; Mayfly's revocations are permanent) and
 * `removeFromCRL` (delta CRLs only).
 */
export const REVOCATION_REASONS: readonly CrlReason[] = (Object.keys(CRL_REASONS) as CrlReason[]).filter((r) => r !== 'certificateHold' && r !== 'removeFromCRL');

export function isRevocationReason(s: unknown): s is CrlReason {
  return typeof s === 'string' && (REVOCATION_REASONS as readonly string[]).includes(s);
}

const REASON_BY_CODE = new Map<number, CrlReason>(Object.entries(CRL_REASONS).map(([k, v]) => [v, k as CrlReason]));

const OID_CRL_NUMBER = '2.5.29.20';
const OID_REASON_CODE = '2.5.29.21';
const OID_DELTA_CRL_INDICATOR = '2.5.29.27';
const OID_ISSUING_DISTRIBUTION_POINT = '2.5.29.28';
const TAG_ENUMERATED = 0x0a;
const V2 = Buffer.from([TAG.INTEGER, 1, 1]);

export interface CrlEntryInput {
  /** The revoked certificate's serial: hex of its INTEGER content bytes (as `ParsedCertificate.serialHex`). */
  readonly serialHex: string;
  readonly revokedAt: Date;
  readonly reason: CrlReason;
}

export interface BuildCrlConfig {
  /** The issuing CA's certificate (DER): issuer name and authority key identifier come from it. */
  readonly caCertificate: Uint8Array;
  /** The CA's private key: signs the list. */
  readonly caPrivateKey: KeyObject;
  /** Increases with every CRL the CA issues (a non-negative integer of at most 20 octets). */
  readonly crlNumber: bigint;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly entries: readonly CrlEntryInput[];
}

const HEX = /^(?:[0-9a-f]{2})+$/;

function serialInteger(hex: string): Buffer {
  if (typeof hex !== 'string' || !HEX.test(hex) || hex.length > 42) throw new TypeError(`CRL entry serial ${JSON.stringify(hex)} is not lowercase hex of 1 to 21 bytes`);
  return unsignedInteger(Buffer.from(hex, 'hex'));
}

function bigintMagnitude(n: bigint): Buffer {
  if (n < 0n) throw new TypeError('crlNumber must not be negative');
  let h = n.toString(16);
  if (h.length % 2) h = '0' + h;
  const b = Buffer.from(h, 'hex');
  if (b.length > 20) throw new TypeError('crlNumber must fit in 20 octets (RFC 5280 5.2.3)');
  return b;
}

/** Builds and signs a v2 CRL (DER). */
export function buildCrl(cfg: BuildCrlConfig): Buffer {
  if (cfg === null || typeof cfg !== 'object') throw new TypeError('buildCrl needs a config object');
  if (!(cfg.nextUpdate.getTime() > cfg.thisUpdate.getTime())) throw new TypeError('nextUpdate must be after thisUpdate');
  const ca = parseCertificate(cfg.caCertificate);
  if (!ca.isCA || (ca.keyUsage !== undefined && !ca.keyUsage.cRLSign)) {
    throw new X509SvidError('ERR_X509_BUILD', 'the CA certificate may not sign CRLs (it needs cA=true and the cRLSign key usage)');
  }
  if (!ca.subjectKeyId) throw new X509SvidError('ERR_X509_BUILD', 'the CA certificate has no subject key identifier for the CRL\'s authority key identifier');
  const alg = signatureAlgorithmFor(cfg.caPrivateKey);
  const parts: Buffer[] = [V2, alg.der, ca.subject, encodeTime(cfg.thisUpdate), encodeTime(cfg.nextUpdate)];
  if (cfg.entries.length > 0) {
    const revoked: Buffer[] = new Array<Buffer>(cfg.entries.length);
    cfg.entries.forEach((e, i) => {
      const code = CRL_REASONS[e.reason];
      if (code === undefined) throw new TypeError(`CRL reason ${JSON.stringify(e.reason)} is not an RFC 5280 CRLReason`);
      const fields = [serialInteger(e.serialHex), encodeTime(e.revokedAt)];
      if (code !== 0) fields.push(seq(extension(OID_REASON_CODE, false, tlv(TAG_ENUMERATED, Buffer.from([code])))));
      revoked[i] = seq(...fields);
    });
    parts.push(seq(Buffer.concat(revoked)));
  }
  const exts = seq(
    extension(OID.authorityKeyIdentifier, false, akiValue(ca.subjectKeyId)),
    extension(OID_CRL_NUMBER, false, unsignedInteger(bigintMagnitude(cfg.crlNumber))),
  );
  parts.push(tlv(0xa0, exts));
  return signTbs(seq(...parts), alg, cfg.caPrivateKey);
}

export interface CrlEntry {
  readonly serialHex: string;
  readonly revocationDate: Date;
  readonly reason: CrlReason;
}

export interface ParsedCrl {
  readonly der: Buffer;
  /** TBSCertList DER: what the signature covers. */
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  /** Issuer Name DER. */
  readonly issuer: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  readonly crlNumber?: bigint;
  /** The issuing CA's key identifier, when the CRL names it. */
  readonly authorityKeyId?: Buffer;
  readonly entries: readonly CrlEntry[];
}

class Malformed extends Error {}

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Malformed(what);
}

/** Extensions ::= SEQUENCE OF Extension; returns (oid, critical, value) triples. */
function decodeExtensions(buf: Buffer, t: Tlv): { oid: string; critical: boolean; value: Buffer }[] {
  need(t.tag === TAG.SEQUENCE, 'extensions must be a SEQUENCE');
  const out: { oid: string; critical: boolean; value: Buffer }[] = [];
  const seen = new Set<string>();
  for (const e of readChildren(buf, t)) {
    need(e.tag === TAG.SEQUENCE, 'extension must be a SEQUENCE');
    const f = readChildren(buf, e);
    need(f.length === 2 || f.length === 3, 'extension must have 2 or 3 fields');
    const id = readOid(buf, f[0] as Tlv);
    need(!seen.has(id), `extension ${id} appears twice`);
    seen.add(id);
    let critical = false;
    if (f.length === 3) {
      const c = f[1] as Tlv;
      need(c.tag === TAG.BOOLEAN && c.end - c.contentStart === 1 && buf[c.contentStart] === 0xff, 'critical must be DER TRUE when present');
      critical = true;
    }
    const v = f[f.length - 1] as Tlv;
    need(v.tag === TAG.OCTET_STRING, 'extension value must be an OCTET STRING');
    out.push({ oid: id, critical, value: buf.subarray(v.contentStart, v.end) });
  }
  return out;
}

function integerHex(buf: Buffer, t: Tlv, what: string): string {
  need(t.tag === TAG.INTEGER && t.end > t.contentStart, `${what} must be an INTEGER`);
  const first = buf[t.contentStart] as number;
  need(!(first & 0x80), `${what} must be positive`);
  need(!(t.end - t.contentStart > 1 && first === 0 && !((buf[t.contentStart + 1] as number) & 0x80)), `${what} is not minimal DER`);
  return buf.toString('hex', t.contentStart, t.end);
}

/** Parses a DER CRL strictly (see the module doc). Does not check the signature: `verifyCrlSignature`. */
export function parseCrl(der: Uint8Array): ParsedCrl {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  try {
    const outer = readTlv(buf, 0);
    need(outer.tag === TAG.SEQUENCE && outer.end === buf.length, 'a CRL is one SEQUENCE with nothing after it');
    const top = readChildren(buf, outer);
    need(top.length === 3, 'CertificateList must have tbsCertList, signatureAlgorithm, signatureValue');
    const [tbsT, algT, sigT] = top as [Tlv, Tlv, Tlv];
    need(tbsT.tag === TAG.SEQUENCE && algT.tag === TAG.SEQUENCE && sigT.tag === TAG.BIT_STRING, 'CertificateList fields have the wrong types');
    need(sigT.end > sigT.contentStart && buf[sigT.contentStart] === 0, 'signature BIT STRING has unused bits');
    const algOid = readOid(buf, readChildren(buf, algT)[0] as Tlv);
    const fields = readChildren(buf, tbsT);
    let i = 0;
    const f = (): Tlv | undefined => fields[i];
    let version = 1;
    if (f()?.tag === TAG.INTEGER) {
      const v = f() as Tlv;
      need(v.end - v.contentStart === 1 && buf[v.contentStart] === 1, 'only v2 CRLs carry a version, and it is 1');
      version = 2;
      i++;
    }
    const innerAlg = f();
    need(innerAlg?.tag === TAG.SEQUENCE && buf.subarray(innerAlg.start, innerAlg.end).equals(buf.subarray(algT.start, algT.end)), 'the inner and outer signature algorithms differ');
    i++;
    const issuerT = f();
    need(issuerT?.tag === TAG.SEQUENCE, 'issuer must be a Name');
    i++;
    const thisT = f();
    need(thisT !== undefined, 'thisUpdate is missing');
    const thisUpdate = readTime(buf, thisT);
    i++;
    let nextUpdate: Date | undefined;
    const maybeNext = f();
    if (maybeNext && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) {
      nextUpdate = readTime(buf, maybeNext);
      i++;
    }
    const entries: CrlEntry[] = [];
    const maybeRevoked = f();
    if (maybeRevoked?.tag === TAG.SEQUENCE) {
      for (const e of readChildren(buf, maybeRevoked)) {
        need(e.tag === TAG.SEQUENCE, 'a revoked entry must be a SEQUENCE');
        const ef = readChildren(buf, e);
        need(ef.length === 2 || ef.length === 3, 'a revoked entry has a serial, a date and optional extensions');
        const serialHex = integerHex(buf, ef[0] as Tlv, 'revoked serial');
        const revocationDate = readTime(buf, ef[1] as Tlv);
        let reason: CrlReason = 'unspecified';
        if (ef.length === 3) {
          need(version === 2, 'entry extensions need a v2 CRL');
          for (const x of decodeExtensions(buf, ef[2] as Tlv)) {
            if (x.oid === OID_REASON_CODE) {
              const r = readTlv(x.value, 0);
              need(r.tag === TAG_ENUMERATED && r.end === x.value.length && r.end - r.contentStart === 1, 'reasonCode must be one ENUMERATED byte');
              const named = REASON_BY_CODE.get(x.value[r.contentStart] as number);
              need(named !== undefined, 'reasonCode is not an RFC 5280 CRLReason');
              reason = named;
            } else need(!x.critical, `unknown critical CRL entry extension ${x.oid}`);
          }
        }
        entries.push({ serialHex, revocationDate, reason });
      }
      i++;
    }
    let crlNumber: bigint | undefined;
    let authorityKeyId: Buffer | undefined;
    const maybeExts = f();
    if (maybeExts) {
      need(maybeExts.tag === 0xa0 && version === 2, 'CRL extensions are [0] EXPLICIT, v2 only');
      const inner = readTlv(buf, maybeExts.contentStart, maybeExts.end);
      need(inner.end === maybeExts.end, 'trailing bytes after the CRL extensions');
      for (const x of decodeExtensions(buf, inner)) {
        if (x.oid === OID_CRL_NUMBER) {
          const n = readTlv(x.value, 0);
          need(n.end === x.value.length, 'cRLNumber has trailing bytes');
          crlNumber = BigInt('0x' + integerHex(x.value, n, 'cRLNumber'));
        } else if (x.oid === OID.authorityKeyIdentifier) {
          const s = readTlv(x.value, 0);
          need(s.tag === TAG.SEQUENCE && s.end === x.value.length, 'authorityKeyIdentifier must be one SEQUENCE');
          for (const p of readChildren(x.value, s)) if (p.tag === 0x80) authorityKeyId = Buffer.from(x.value.subarray(p.contentStart, p.end));
        } else if (x.oid === OID_DELTA_CRL_INDICATOR || x.oid === OID_ISSUING_DISTRIBUTION_POINT) {
          // A delta or partitioned CRL does not list every revoked certificate: using it as the list would miss some.
          throw new Malformed(`extension ${x.oid} (delta or partitioned CRL) is not supported; use a complete CRL`);
        } else need(!x.critical, `unknown critical CRL extension ${x.oid}`);
      }
      i++;
    }
    need(i === fields.length, 'unexpected fields in TBSCertList');
    return {
      der: buf,
      tbs: buf.subarray(tbsT.start, tbsT.end),
      signatureAlgorithm: algOid,
      signature: buf.subarray(sigT.contentStart + 1, sigT.end),
      issuer: buf.subarray(issuerT.start, issuerT.end),
      thisUpdate,
      ...(nextUpdate ? { nextUpdate } : {}),
      ...(crlNumber !== undefined ? { crlNumber } : {}),
      ...(authorityKeyId ? { authorityKeyId } : {}),
      entries,
    };
  } catch (cause) {
    if (cause instanceof Malformed || cause instanceof DerError) throw new X509SvidError('ERR_X509_MALFORMED', `CRL is malformed: ${cause.message}`, { cause });
    throw cause;
  }
}

/** True when `caCertificate` issued `crl`: the issuer names match and its key verifies the signature. */
export function verifyCrlSignature(crl: ParsedCrl, caCertificate: Uint8Array): boolean {
  const ca = parseCertificate(caCertificate);
  if (!ca.subject.equals(crl.issuer)) return false;
  if (crl.authorityKeyId && ca.subjectKeyId && !crl.authorityKeyId.equals(ca.subjectKeyId)) return false;
  const alg = SIGNATURE_ALGORITHMS[crl.signatureAlgorithm];
  if (!alg) return false;
  try {
    const key = createPublicKey({ key: ca.spki, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== alg.key) return false;
    return verify(alg.hash, crl.tbs, key, crl.signature);
  } catch {
    return false;
  }
}
