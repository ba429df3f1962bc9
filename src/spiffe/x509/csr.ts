/**
 * @module spiffe/x509/csr
 *
 * PKCS#10 certificate signing requests: `parseCsr` reads one from DER and checks its
 * self-signature (the requester's proof that it holds the private key); `createCsr` builds
 * one (for agents, and for tests that need odd requests).
 *
 * Threat: a signer that trusts what a CSR says. A CSR is only ever used for two things:
 * its public key, and the proof that the requester holds the matching private key. Its
 * subject, SANs and requested extensions (a different SPIFFE ID, cA=true ...) are parsed
 * past and never returned, so no caller can copy them into a certificate by mistake. A
 * CSR whose signature does not verify, or whose key is weak or of an unsupported type
 * (RSA < 2048 bits, curves other than P-256/P-384, Ed25519), is rejected with
 * `ERR_CSR_INVALID`. Input is bounded (64 KiB) and read with the strict DER reader, so
 * the bytes whose signature is checked are exactly the bytes the key is read from.
 * P-256/P-384 proofs of possession are checked through OpenSSL's EC_KEY functions when
 * they load (spiffe/x509/ec-native, ~3× cheaper than importing the fresh key), else with
 * node:crypto; both give the same answers (tested side by side).
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { X509SvidError } from '../errors.js';
import { keyTypeOf, type KeyType } from '../keys.js';
import { DerError, readChildren, readTlv, seq, set, tlv, oid, bitString, NULL_DER, TAG, octetString, TRUE_DER } from './der.js';
import { asnCsr, asnSchema } from './asn1-lazy.js';
import { encodeName, OID, sanValue, basicConstraintsValue } from './build.js';
import { nativeEcVerifier } from './ec-native.js';
import { SIGNATURE_ALGORITHMS } from './signature-algorithms.js';

/** The largest CSR accepted (bytes). Real ones are well under 2 KiB. */
export const MAX_CSR_BYTES = 64 * 1024;

export interface ParsedCsr {
  /** SubjectPublicKeyInfo DER, exactly as in the request. */
  readonly spki: Buffer;
  readonly publicKey: KeyObject;
  readonly keyType: KeyType;
}

/** Certificate signature algorithms a CSR may be signed with: ECDSA and RSA (no Ed25519 SVID keys). */
const CSR_SIG_ALGS: Record<string, { hash: string; key: 'ec' | 'rsa' }> = Object.fromEntries(
  Object.entries(SIGNATURE_ALGORITHMS).flatMap(([oid, a]) => (a.hash !== null && a.key !== 'ed25519' ? [[oid, { hash: a.hash, key: a.key }]] : [])),
);

function bad(why: string, cause?: unknown): never {
  throw new X509SvidError('ERR_CSR_INVALID', `invalid certificate signing request: ${why}`, cause === undefined ? undefined : { cause });
}

function decodeOidBody(buf: Uint8Array): string {
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i] as number;
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** The exact SPKI prefixes of uncompressed EC P-256 and P-384 public keys. */
const EC_SPKI_PREFIXES: ReadonlyArray<{ prefix: Buffer; crv: 'P-256' | 'P-384'; type: KeyType; size: number }> = [
  { prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), crv: 'P-256', type: 'ec-p256', size: 32 },
  { prefix: Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'), crv: 'P-384', type: 'ec-p384', size: 48 },
];

/** The uncompressed point (04 || X || Y) of a P-256/P-384 SPKI in its one common encoding, else undefined. */
function uncompressedEcPoint(spki: Buffer): { point: Buffer; crv: 'P-256' | 'P-384'; type: KeyType } | undefined {
  for (const { prefix, crv, type, size } of EC_SPKI_PREFIXES) {
    if (spki.length !== prefix.length + 1 + 2 * size || !spki.subarray(0, prefix.length).equals(prefix) || spki[prefix.length] !== 0x04) continue;
    return { point: spki.subarray(prefix.length), crv, type };
  }
  return undefined;
}

/** Options of `parseCsr`. */
export interface ParseCsrOptions {
  /**
   * Check EC proofs of possession through OpenSSL's EC_KEY functions when they can be
   * loaded (spiffe/x509/ec-native: ~3× cheaper than importing a fresh key). Default true;
   * false forces node:crypto. The answer is the same either way.
   */
  nativeEc?: boolean;
}

/**
 * Imports the common case, an uncompressed P-256/P-384 point, through JWK: with OpenSSL 3
 * that is ~1.5–2× cheaper than decoding the SPKI DER, and key import dominates CSR checks.
 * OpenSSL still refuses a point that is not on the curve. Anything else → undefined (the
 * caller takes the general DER path).
 */
function importUncompressedEcSpki(spki: Buffer): { publicKey: KeyObject; keyType: KeyType } | undefined {
  for (const { prefix, crv, type, size } of EC_SPKI_PREFIXES) {
    if (spki.length !== prefix.length + 1 + 2 * size || !spki.subarray(0, prefix.length).equals(prefix) || spki[prefix.length] !== 0x04) continue;
    const x = spki.subarray(prefix.length + 1, prefix.length + 1 + size);
    const y = spki.subarray(prefix.length + 1 + size);
    try {
      const publicKey = createPublicKey({ key: { kty: 'EC', crv, x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' });
      return { publicKey, keyType: type };
    } catch (cause) {
      bad('its public key is not a valid point on its curve', cause);
    }
  }
  return undefined;
}

/**
 * Parses a PKCS#10 CSR (DER) and verifies its self-signature. Returns only the public
 * key; everything else the CSR asks for is ignored by design.
 */
export function parseCsr(der: Uint8Array, opts: ParseCsrOptions = {}): ParsedCsr {
  if (!(der instanceof Uint8Array)) throw new TypeError('CSR must be DER bytes (Uint8Array)');
  if (der.length === 0) bad('it is empty');
  if (der.length > MAX_CSR_BYTES) bad(`it is ${der.length} bytes; the limit is ${MAX_CSR_BYTES}`);
  let cri: Buffer, algOid: string, signature: Buffer, spki: Buffer;
  try {
    const outer = readTlv(der, 0);
    if (outer.tag !== TAG.SEQUENCE || outer.end !== der.length) bad('not a single DER SEQUENCE');
    const parts = readChildren(der, outer);
    if (parts.length !== 3) bad('expected certificationRequestInfo, signatureAlgorithm and signature');
    const [criT, algT, sigT] = parts as [typeof outer, typeof outer, typeof outer];
    if (criT.tag !== TAG.SEQUENCE || algT.tag !== TAG.SEQUENCE || sigT.tag !== TAG.BIT_STRING) bad('wrong field types');
    // Views, not copies: cri and signature are only read below, before this function returns.
    cri = Buffer.from(der.buffer, der.byteOffset + criT.start, criT.end - criT.start);
    const algParts = readChildren(der, algT);
    const algOidT = algParts[0];
    if (algOidT === undefined || algOidT.tag !== TAG.OID) bad('signatureAlgorithm has no OID');
    algOid = decodeOidBody(der.subarray(algOidT.contentStart, algOidT.end));
    if (der[sigT.contentStart] !== 0) bad('signature BIT STRING has unused bits');
    signature = Buffer.from(der.buffer, der.byteOffset + sigT.contentStart + 1, sigT.end - sigT.contentStart - 1);
    const criParts = readChildren(der, criT);
    if (criParts.length < 3) bad('certificationRequestInfo is too short');
    const [verT, , spkiT] = criParts as [typeof outer, typeof outer, typeof outer];
    if (verT.tag !== TAG.INTEGER || verT.end - verT.contentStart !== 1 || der[verT.contentStart] !== 0) bad('version must be 0 (v1)');
    if (spkiT.tag !== TAG.SEQUENCE) bad('subjectPublicKeyInfo is not a SEQUENCE');
    spki = Buffer.from(der.subarray(spkiT.start, spkiT.end));
    // The strict DER reader above has walked every byte we use (CRI, algorithm, signature,
    // SPKI); the subject and attributes are never read. Only the full-structure check of
    // the rest remains, and that is what @peculiar's parse adds: keep it for odd shapes
    // but skip it for the one shape agents send, where it cost ~20 % of a signing call.
    if (criParts.length !== 4 || criParts[3]?.tag !== 0xa0) asnSchema().AsnConvert.parse(Buffer.from(der), asnCsr().CertificationRequest);
  } catch (err) {
    if (err instanceof X509SvidError) throw err;
    bad(err instanceof DerError ? `malformed DER (${err.message})` : 'malformed structure', err);
  }
  const native = opts.nativeEc === false ? undefined : nativeEcVerifier();
  const point = native === undefined ? undefined : uncompressedEcPoint(spki);
  if (native !== undefined && point !== undefined) {
    const alg = CSR_SIG_ALGS[algOid];
    if (alg === undefined) bad(`signature algorithm ${algOid} is not supported (use ECDSA or RSA PKCS#1 v1.5 with SHA-2)`);
    if (alg.key !== 'ec') bad(`signature algorithm ${algOid} does not fit the CSR's EC key`);
    const outcome = native.verify(point.crv, point.point, alg.hash as 'sha256' | 'sha384' | 'sha512', cri, signature);
    if (outcome === 'bad-point') bad('its public key is not a valid point on its curve');
    if (outcome !== 'ok') bad('its signature does not verify with its own public key (no proof of possession)');
    return new LazyKeyCsr(spki, point.type);
  }
  let publicKey: KeyObject;
  let keyType: KeyType;
  const ec = importUncompressedEcSpki(spki);
  if (ec !== undefined) {
    ({ publicKey, keyType } = ec);
  } else {
    try {
      publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    } catch (cause) {
      bad('its public key cannot be read', cause);
    }
    try {
      keyType = keyTypeOf(publicKey);
    } catch (err) {
      bad(`its key is not acceptable: ${(err as Error).message}`, err);
    }
  }
  const alg = CSR_SIG_ALGS[algOid];
  if (alg === undefined) bad(`signature algorithm ${algOid} is not supported (use ECDSA or RSA PKCS#1 v1.5 with SHA-2)`);
  if (alg.key !== publicKey.asymmetricKeyType) bad(`signature algorithm ${algOid} does not fit the CSR's ${publicKey.asymmetricKeyType === 'ec' ? 'EC' : 'RSA'} key`);
  let ok: boolean;
  try {
    ok = verify(alg.hash, cri, publicKey, signature);
  } catch {
    ok = false;
  }
  if (!ok) bad('its signature does not verify with its own public key (no proof of possession)');
  return { spki, publicKey, keyType };
}

/** A checked CSR whose KeyObject is only made if a caller asks for it (the mint needs only the SPKI). */
class LazyKeyCsr implements ParsedCsr {
  #publicKey: KeyObject | undefined;
  constructor(
    readonly spki: Buffer,
    readonly keyType: KeyType,
  ) {}

  get publicKey(): KeyObject {
    this.#publicKey ??= (importUncompressedEcSpki(this.spki) ?? { publicKey: createPublicKey({ key: this.spki, format: 'der', type: 'spki' }) }).publicKey;
    return this.#publicKey;
  }
}

export interface CreateCsrOptions {
  privateKey: KeyObject;
  /** Optional URI SAN to request (servers ignore it; for tests and interop). */
  uri?: string;
  dnsNames?: readonly string[];
  /** Request basicConstraints cA=true (servers ignore it; for tests). */
  requestCa?: boolean;
  commonName?: string;
  /** Corrupt the signature (for tests). */
  corruptSignature?: boolean;
}

/** Builds a PKCS#10 CSR (DER) signed with `privateKey` (EC or RSA of any size). */
export function createCsr(opts: CreateCsrOptions): Buffer {
  const key = opts.privateKey;
  if (key.type !== 'private') throw new TypeError('createCsr needs a private KeyObject');
  // Exported directly (not via spkiFromKeyObject): tests need CSRs for keys we refuse.
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const exts: Buffer[] = [];
  if (opts.uri !== undefined || (opts.dnsNames?.length ?? 0) > 0) {
    exts.push(seq(oid(OID.subjectAltName), octetString(sanValue(opts.uri === undefined ? [] : [opts.uri], opts.dnsNames ?? []))));
  }
  if (opts.requestCa) exts.push(seq(oid(OID.basicConstraints), TRUE_DER, octetString(basicConstraintsValue(true))));
  const attrs = exts.length > 0 ? [seq(oid('1.2.840.113549.1.9.14'), set(seq(...exts)))] : [];
  const subject = encodeName(opts.commonName === undefined ? undefined : { commonName: opts.commonName });
  const cri = seq(tlv(TAG.INTEGER, Buffer.from([0])), subject, spki, tlv(0xa0, ...attrs));
  let algDer: Buffer;
  let hash: string;
  if (key.asymmetricKeyType === 'rsa') {
    algDer = seq(oid(OID.sha256WithRsa), NULL_DER);
    hash = 'sha256';
  } else if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    hash = curve === 'secp384r1' ? 'sha384' : 'sha256';
    algDer = seq(oid(hash === 'sha384' ? OID.ecdsaWithSha384 : OID.ecdsaWithSha256));
  } else {
    throw new TypeError(`createCsr supports EC and RSA keys, not ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  let sig: Buffer = sign(hash, cri, key);
  if (opts.corruptSignature) sig = flipLast(sig);
  return seq(cri, algDer, bitString(sig));
}

function flipLast(sig: Buffer): Buffer {
  const out = Buffer.from(sig);
  out[out.length - 1] = (out[out.length - 1] as number) ^ 0x01;
  return out;
}
