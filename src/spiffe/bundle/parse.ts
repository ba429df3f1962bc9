/**
 * @module spiffe/bundle/parse
 *
 * Parsing of SPIFFE bundle documents (SPIFFE Trust Domain and Bundle standard §4) and of
 * the plain JWKS the Workload API uses for JWT bundles.
 *
 * Threat: a federated peer (or anyone on the path to its bundle endpoint) who sends a
 * bundle that makes us trust more than it shows: an x509-svid entry whose JWK parameters
 * differ from its certificate's key (two consumers would trust different keys), several
 * certificates hidden in one entry, private or symmetric key material, duplicate key IDs
 * (which key wins?), or a document big enough to exhaust memory. Each is refused with
 * ERR_BUNDLE_MALFORMED (document shape) or ERR_BUNDLE_KEY_INVALID (one key).
 *
 * Per the standard, entries with an unknown `use` value, and jwt-svid entries with a key
 * type other than EC or RSA (e.g. OKP), are ignored rather than refused. A missing `use`
 * is refused (the standard says it MUST be set; SPIRE refuses it too).
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { BundleError } from '../errors.js';
import type { TrustDomain } from '../id.js';
import { parseCertificate } from '../x509/parse.js';
import { Bundle } from './bundle.js';
import { jwtAuthorityProblem, magnitude, PRIVATE_JWK_MEMBERS, publicJwkParams } from './jwk.js';

/** Default upper bound on a bundle document (bytes). */
export const MAX_BUNDLE_BYTES = 1024 * 1024;
/** Upper bound on the number of keys in one bundle. */
export const MAX_BUNDLE_KEYS = 4096;

export interface ParseBundleOptions {
  /** Reject documents larger than this many bytes (default 1 MiB). */
  maxBytes?: number;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;

function malformed(why: string, cause?: unknown): never {
  throw new BundleError('ERR_BUNDLE_MALFORMED', `trust bundle rejected: ${why}`, cause === undefined ? undefined : { cause });
}

function badKey(i: number, why: string, cause?: unknown): never {
  throw new BundleError('ERR_BUNDLE_KEY_INVALID', `trust bundle rejected: key entry ${i}: ${why}`, cause === undefined ? undefined : { cause });
}

function readDocument(json: string | Uint8Array, maxBytes: number): Record<string, unknown> {
  let text: string;
  if (typeof json === 'string') {
    if (json.length > maxBytes || Buffer.byteLength(json, 'utf8') > maxBytes) malformed(`document is larger than ${maxBytes} bytes`);
    text = json;
  } else if (json instanceof Uint8Array) {
    if (json.byteLength > maxBytes) malformed(`document is larger than ${maxBytes} bytes`);
    text = Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8');
  } else {
    throw new TypeError('bundle JSON must be a string or bytes');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    malformed('document is not JSON', cause);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) malformed('document is not a JSON object');
  const d = doc as Record<string, unknown>;
  if (!('keys' in d)) malformed('"keys" is missing');
  if (!Array.isArray(d.keys)) malformed('"keys" is not an array');
  if (d.keys.length > MAX_BUNDLE_KEYS) malformed(`"keys" holds ${d.keys.length} entries; the limit is ${MAX_BUNDLE_KEYS}`);
  return d;
}

function optionalCount(doc: Record<string, unknown>, name: string): number | undefined {
  const v = doc[name];
  if (v === undefined) return undefined;
  // Values above 2^53 cannot be represented exactly by JSON.parse; refuse rather than round.
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) malformed(`"${name}" must be a non-negative integer`);
  return v;
}

function checkNoPrivateMembers(jwk: Record<string, unknown>, i: number): void {
  for (const m of PRIVATE_JWK_MEMBERS) {
    if (m in jwk) badKey(i, `carries private or secret key material ("${m}"); a bundle holds public keys only`);
  }
  if (jwk.kty === 'oct') badKey(i, 'is a symmetric ("oct") key; a bundle holds public keys only');
}

/** Imports a jwt-svid JWK, or returns undefined for a key type the standard says to ignore. */
function jwtKey(jwk: Record<string, unknown>, i: number): KeyObject | undefined {
  if (typeof jwk.kty !== 'string') badKey(i, '"kty" is missing');
  if (jwk.kty !== 'EC' && jwk.kty !== 'RSA') return undefined;
  const fields = jwk.kty === 'EC' ? ['crv', 'x', 'y'] : ['n', 'e'];
  const params: Record<string, string> = { kty: jwk.kty };
  for (const f of fields) {
    const v = jwk[f];
    if (typeof v !== 'string' || (f !== 'crv' && !B64URL.test(v))) badKey(i, `"${f}" is missing or not base64url`);
    params[f] = v;
  }
  let key: KeyObject;
  try {
    // Node checks that an EC point lies on its curve here.
    key = createPublicKey({ key: params, format: 'jwk' });
  } catch (cause) {
    badKey(i, `is not a valid ${jwk.kty} public key`, cause);
  }
  const problem = jwtAuthorityProblem(key);
  if (problem !== undefined) badKey(i, problem);
  return key;
}

function x509Authority(jwk: Record<string, unknown>, i: number): Buffer {
  if ('kid' in jwk) badKey(i, 'an x509-svid entry must not carry "kid"');
  const x5c = jwk.x5c;
  if (!Array.isArray(x5c) || x5c.length !== 1) {
    badKey(i, `an x509-svid entry needs exactly one certificate in "x5c" (found ${Array.isArray(x5c) ? x5c.length : 'none'})`);
  }
  const b64 = x5c[0];
  if (typeof b64 !== 'string' || b64.length % 4 !== 0 || !B64.test(b64)) badKey(i, '"x5c" must hold standard base64 (not base64url) DER');
  const der = Buffer.from(b64, 'base64');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (cause) {
    badKey(i, '"x5c" does not hold a DER certificate', cause);
  }
  if (cert.raw.length !== der.length) badKey(i, '"x5c" holds trailing bytes after the certificate');
  // Node's parser is lenient (negative serials, BER); our verifier is not. A root only Node
  // accepts would make every later verification against this bundle fail, so refuse it now.
  try {
    parseCertificate(der);
  } catch (cause) {
    badKey(i, `"x5c" holds a certificate the X.509-SVID verifier cannot use: ${(cause as Error).message}`, cause);
  }
  // The JWK's own key parameters must describe the certificate's key: otherwise a consumer
  // reading the JWK and one reading the certificate would trust different keys.
  const want = publicJwkParams(cert.publicKey) as Record<string, string | undefined>;
  if (jwk.kty !== want.kty) badKey(i, `"kty" ${JSON.stringify(jwk.kty)} does not match the certificate's ${want.kty} key`);
  for (const f of ['crv', 'x', 'y', 'n', 'e']) {
    const expected = want[f];
    if (expected === undefined) continue;
    const got = jwk[f];
    const same = typeof got === 'string' && (f === 'crv' ? got === expected : B64URL.test(got) && magnitude(got).equals(magnitude(expected)));
    if (!same) badKey(i, `"${f}" does not match the certificate's public key`);
  }
  return der;
}

/**
 * Parses a SPIFFE bundle document for `trustDomain` (the caller binds the document to its
 * trust domain; the document itself does not name one).
 */
export function parseBundle(json: string | Uint8Array, trustDomain: TrustDomain, options: ParseBundleOptions = {}): Bundle {
  const doc = readDocument(json, options.maxBytes ?? MAX_BUNDLE_BYTES);
  const sequence = optionalCount(doc, 'spiffe_sequence');
  const refreshHintSeconds = optionalCount(doc, 'spiffe_refresh_hint');
  const x509: Buffer[] = [];
  const jwt = new Map<string, KeyObject>();
  (doc.keys as unknown[]).forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) malformed(`key entry ${i} is not a JSON object`);
    const jwk = entry as Record<string, unknown>;
    checkNoPrivateMembers(jwk, i);
    if (jwk.use === undefined) badKey(i, '"use" is missing (must be "x509-svid" or "jwt-svid")');
    if (jwk.use === 'x509-svid') {
      x509.push(x509Authority(jwk, i));
    } else if (jwk.use === 'jwt-svid') {
      const kid = jwk.kid;
      if (typeof kid !== 'string' || kid === '') badKey(i, 'a jwt-svid entry needs a non-empty "kid"');
      const key = jwtKey(jwk, i);
      if (key === undefined) return;
      if (jwt.has(kid)) badKey(i, `key ID ${JSON.stringify(kid)} appears more than once`);
      jwt.set(kid, key);
    }
    // Any other `use`: ignored, as the standard requires.
  });
  return newBundle(trustDomain, x509, jwt, sequence, refreshHintSeconds);
}

/**
 * Parses the Workload API's JWT bundle form: a plain JWK Set whose keys all carry `kid`.
 * `use` may be absent or "jwt-svid"; keys with another `use` are ignored.
 */
export function parseJwtBundleJwks(json: string | Uint8Array, trustDomain: TrustDomain, options: ParseBundleOptions = {}): Bundle {
  const doc = readDocument(json, options.maxBytes ?? MAX_BUNDLE_BYTES);
  const jwt = new Map<string, KeyObject>();
  (doc.keys as unknown[]).forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) malformed(`key entry ${i} is not a JSON object`);
    const jwk = entry as Record<string, unknown>;
    checkNoPrivateMembers(jwk, i);
    if (jwk.use !== undefined && jwk.use !== 'jwt-svid') return;
    const kid = jwk.kid;
    if (typeof kid !== 'string' || kid === '') badKey(i, 'a JWT bundle key needs a non-empty "kid"');
    const key = jwtKey(jwk, i);
    if (key === undefined) return;
    if (jwt.has(kid)) badKey(i, `key ID ${JSON.stringify(kid)} appears more than once`);
    jwt.set(kid, key);
  });
  return newBundle(trustDomain, [], jwt, undefined, undefined);
}

function newBundle(
  trustDomain: TrustDomain,
  x509Authorities: Buffer[],
  jwtAuthorities: Map<string, KeyObject>,
  sequence: number | undefined,
  refreshHintSeconds: number | undefined,
): Bundle {
  try {
    return new Bundle({ trustDomain, x509Authorities, jwtAuthorities, sequence, refreshHintSeconds });
  } catch (cause) {
    // Only reachable if a check above missed something; report it as bad data, not misuse.
    malformed((cause as Error).message, cause);
  }
}
