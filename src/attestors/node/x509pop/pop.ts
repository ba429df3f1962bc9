/**
 * @module attestors/node/x509pop/pop
 *
 * SPIRE's x509pop proof of possession, byte for byte as SPIRE v1.13.3 puts it on the wire
 * (pkg/common/plugin/x509pop), so either side may be SPIRE's:
 * - attestation payload: JSON `{"certificates": [<base64 DER>, ...]}`, leaf first, then
 *   intermediates;
 * - challenge: `{"rsa_signature": {"nonce": <32 bytes>}, "ecdsa_signature": null}` for an
 *   RSA leaf key, the other way round for an EC one;
 * - response: `{"rsa_signature": {"nonce": <32 bytes>, "signature": ...}}` or
 *   `{"ecdsa_signature": {"nonce": <32 bytes>, "r": ..., "s": ...}}` (the other member null);
 * - what is signed: SHA-256(challenge nonce ‖ response nonce). RSA signs it with PSS
 *   (SHA-256, the largest salt; any salt length verifies), ECDSA signs the digest itself
 *   and sends r and s as unsigned big-endian bytes.
 * JSON bytes are standard base64 with padding (Go's encoding of []byte).
 *
 * Threats: a replayed response (the server's nonce is fresh from the CSPRNG for every
 * attestation and lives only as long as that attestation, so a response to another
 * challenge never verifies), and a certificate presented by someone without its key (only
 * the key's holder can sign a digest that covers the server's nonce).
 */
import { createHash, randomBytes, sign, verify, constants, type KeyObject } from 'node:crypto';
import { seq, unsignedInteger } from '../../../spiffe/x509/der.js';
import { MayflyError } from '../../../spiffe/errors.js';

export const X509POP_TYPE = 'x509pop';
/** Length of both nonces, as SPIRE's nonceLen. */
export const NONCE_LEN = 32;
/** Largest payload, challenge or response we read: a chain of a few certificates fits easily. */
export const MAX_X509POP_JSON = 256 * 1024;

export type KeyKind = 'rsa' | 'ec';

export interface Challenge {
  readonly kind: KeyKind;
  readonly nonce: Buffer;
}

export type Response =
  | { readonly kind: 'rsa'; readonly nonce: Buffer; readonly signature: Buffer }
  | { readonly kind: 'ec'; readonly nonce: Buffer; readonly r: Buffer; readonly s: Buffer };

/** Malformed evidence: SPIRE answers these with InvalidArgument. */
export function malformed(why: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_ATTESTATION_MALFORMED', `x509pop: ${why}`, cause === undefined ? undefined : { cause });
}

/** Evidence that does not hold up: SPIRE answers these with PermissionDenied. */
export function refused(why: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_ATTESTATION_FAILED', `x509pop: ${why}`, cause === undefined ? undefined : { cause });
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function b64(v: unknown, what: string): Buffer {
  if (typeof v !== 'string' || !B64.test(v)) throw malformed(`${what} must be standard base64`);
  return Buffer.from(v, 'base64');
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  if (bytes.length === 0) throw malformed(`missing ${what}`);
  if (bytes.length > MAX_X509POP_JSON) throw malformed(`${what} is larger than ${MAX_X509POP_JSON} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw malformed(`${what} is not JSON`, err);
  }
  if (!isObj(v)) throw malformed(`${what} must be a JSON object`);
  return v;
}

/** The attestation payload the agent sends. */
export function encodeAttestationData(certificates: readonly Uint8Array[]): Buffer {
  return Buffer.from(JSON.stringify({ certificates: certificates.map((c) => Buffer.from(c).toString('base64')) }));
}

/** DER certificates, leaf first; at least one. */
export function decodeAttestationData(payload: Uint8Array): Buffer[] {
  const v = parseJson(payload, 'attestation payload');
  const certs = v.certificates;
  if (certs !== undefined && certs !== null && !Array.isArray(certs)) throw malformed('attestation payload "certificates" must be a list');
  if (!Array.isArray(certs) || certs.length === 0) throw malformed('no certificate to attest');
  if (certs.length > 16) throw malformed(`attestation payload holds ${certs.length} certificates; at most 16 are read`);
  return certs.map((c, i) => b64(c, `certificate ${i}`));
}

function nonce(v: unknown, what: string): Buffer {
  const n = b64(v, what);
  if (n.length !== NONCE_LEN) throw malformed(`${what} must be ${NONCE_LEN} bytes, not ${n.length}`);
  return n;
}

/** A fresh challenge for a leaf key of `kind`. */
export function generateChallenge(kind: KeyKind): Challenge {
  return { kind, nonce: randomBytes(NONCE_LEN) };
}

export function encodeChallenge(c: Challenge): Buffer {
  const body = { nonce: c.nonce.toString('base64') };
  return Buffer.from(JSON.stringify(c.kind === 'rsa' ? { rsa_signature: body, ecdsa_signature: null } : { rsa_signature: null, ecdsa_signature: body }));
}

export function decodeChallenge(bytes: Uint8Array): Challenge {
  const v = parseJson(bytes, 'challenge');
  const rsa = v.rsa_signature;
  const ec = v.ecdsa_signature;
  if (isObj(rsa) && (ec === undefined || ec === null)) return { kind: 'rsa', nonce: nonce(rsa.nonce, 'challenge nonce') };
  if (isObj(ec) && (rsa === undefined || rsa === null)) return { kind: 'ec', nonce: nonce(ec.nonce, 'challenge nonce') };
  throw malformed('challenge must hold exactly one of rsa_signature and ecdsa_signature');
}

export function encodeResponse(r: Response): Buffer {
  if (r.kind === 'rsa') return Buffer.from(JSON.stringify({ rsa_signature: { nonce: r.nonce.toString('base64'), signature: r.signature.toString('base64') }, ecdsa_signature: null }));
  return Buffer.from(JSON.stringify({ rsa_signature: null, ecdsa_signature: { nonce: r.nonce.toString('base64'), r: r.r.toString('base64'), s: r.s.toString('base64') } }));
}

/**
 * The agent's answer to a challenge for a `kind` key, judged as SPIRE judges it: what Go's
 * JSON decoder cannot read (not JSON, members or fields of the wrong type, bad base64) is
 * malformed (InvalidArgument); a readable answer without the member for the key, or with a
 * nonce that is not 32 bytes, is refused (PermissionDenied). The other member is ignored.
 */
export function decodeResponse(bytes: Uint8Array, kind: KeyKind): Response {
  const v = bytes.length > 0 && Buffer.from(bytes).toString('utf8').trim() === 'null' ? {} : parseJson(bytes, 'challenge response');
  const member = (name: string): Record<string, unknown> | undefined => {
    const m = v[name];
    if (m === undefined || m === null) return undefined;
    if (!isObj(m)) throw malformed(`challenge response ${name} must be an object`);
    return m;
  };
  const field = (m: Record<string, unknown>, name: string, what: string): Buffer => (m[name] === undefined || m[name] === null ? Buffer.alloc(0) : b64(m[name], what));
  const rsa = member('rsa_signature');
  const ec = member('ecdsa_signature');
  const got = kind === 'rsa' ? rsa : ec;
  const parsed: Response | undefined =
    got === undefined ? undefined
      : kind === 'rsa' ? { kind, nonce: field(got, 'nonce', 'response nonce'), signature: field(got, 'signature', 'RSA signature') }
        : { kind, nonce: field(got, 'nonce', 'response nonce'), r: field(got, 'r', 'ECDSA r'), s: field(got, 's', 'ECDSA s') };
  if (parsed === undefined) throw refused(`challenge response verification failed: expecting ${kind === 'rsa' ? 'RSA' : 'ECDSA'} response`);
  if (parsed.nonce.length !== NONCE_LEN) throw refused('challenge response verification failed: invalid response nonce');
  return parsed;
}

/** What both sides sign and verify: the two nonces, challenge first. */
function combined(challengeNonce: Buffer, responseNonce: Buffer): Buffer {
  return Buffer.concat([challengeNonce, responseNonce]);
}

export function keyKindOf(key: KeyObject): KeyKind | undefined {
  const t = key.asymmetricKeyType;
  return t === 'rsa' ? 'rsa' : t === 'ec' ? 'ec' : undefined;
}

/** The agent's answer to `challenge` with the node key. */
export function calculateResponse(privateKey: KeyObject, challenge: Challenge): Response {
  const kind = keyKindOf(privateKey);
  if (kind === undefined) throw refused(`the node key is ${privateKey.asymmetricKeyType ?? 'of no known type'}; x509pop keys are RSA or ECDSA`);
  if (kind !== challenge.kind) throw refused(`expecting ${kind === 'rsa' ? 'an RSA' : 'an ECDSA'} challenge, the server sent ${challenge.kind === 'rsa' ? 'an RSA' : 'an ECDSA'} one`);
  const n = randomBytes(NONCE_LEN);
  const data = combined(challenge.nonce, n);
  if (kind === 'rsa') {
    const signature = sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN });
    return { kind, nonce: n, signature };
  }
  const rs = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const half = rs.length / 2;
  // Go sends big.Int.Bytes(): no leading zeros.
  const strip = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return b.subarray(i);
  };
  return { kind, nonce: n, r: strip(rs.subarray(0, half)), s: strip(rs.subarray(half)) };
}

/** True when `response` answers `challenge` with the private key of `publicKey`. */
export function verifyResponse(publicKey: KeyObject, challenge: Challenge, response: Response): boolean {
  if (keyKindOf(publicKey) !== challenge.kind || response.kind !== challenge.kind) return false;
  const data = combined(challenge.nonce, response.nonce);
  try {
    if (response.kind === 'rsa') {
      return verify('sha256', data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, response.signature);
    }
    if (response.r.length > 66 || response.s.length > 66) return false;
    return verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, seq(unsignedInteger(response.r), unsignedInteger(response.s)));
  } catch {
    return false;
  }
}

/** SPIRE's certificate fingerprint: SHA-1 of the DER, lowercase hex. */
export function fingerprint(der: Uint8Array): string {
  return createHash('sha1').update(der).digest('hex');
}

/** SPIRE's SerialNumberHex: lowercase hex of the serial with an even number of digits. */
export function serialNumberHex(serial: Uint8Array): string {
  const hex = BigInt(`0x${Buffer.from(serial).toString('hex') || '0'}`).toString(16);
  return hex.length % 2 === 1 ? `0${hex}` : hex;
}
