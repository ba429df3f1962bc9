/**
 * @module spiffe/x509/ec-native
 *
 * Checks one ECDSA signature made by a bare, never-seen-before P-256/P-384 public point (a
 * CSR's proof of possession) through OpenSSL's EC_KEY functions, called with koffi in the
 * libcrypto that Node itself runs (the process's own exported symbols; else the system's
 * libcrypto.so.3). Why: with OpenSSL 3.0, `createPublicKey` plus the first `crypto.verify`
 * with that fresh EVP_PKEY costs ~230 µs on this class of machine, of which ~150 µs is
 * provider and key-management overhead; `EC_KEY_oct2key` + `ECDSA_verify` does the same
 * curve check and the same verification math in ~80 µs. Only CSR checks use it: keys that
 * are used many times (CA keys) stay cached KeyObjects.
 *
 * Threats stopped:
 * - accepting a forged proof of possession across a foreign-function boundary: only a
 *   return of exactly 1 from `ECDSA_verify` counts (0 is a bad signature, -1 an error);
 *   OpenSSL 3 parses the signature as strict DER (re-encodes and compares) and checks r, s;
 * - a point off the curve (invalid-curve attacks): `EC_KEY_oct2key` refuses it, and only an
 *   uncompressed point of exactly the curve's size is ever passed;
 * - memory unsafety: every pointer is a JS Buffer with its own length, the EC_KEY is freed
 *   in `finally`, and OpenSSL's per-thread error queue is cleared after any failure so Node's
 *   own crypto never reports a stale error of ours;
 * - a broken binding silently accepting everything: on first use the binding must accept a
 *   good signature and refuse a corrupted one and an off-curve point, or it is not used.
 * When koffi, the symbols, or the self-test are missing, `nativeEcVerifier()` is undefined
 * and callers use node:crypto (same answers, slower). `MAYFLY_NATIVE_EC=0` turns it off.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { createRequire } from 'node:module';

export type EcCurve = 'P-256' | 'P-384';
export type EcVerifyOutcome = 'ok' | 'bad-point' | 'bad-signature';

export interface NativeEcVerifier {
  /** Where the functions came from (`process` = Node's own OpenSSL), for logs and tests. */
  readonly source: string;
  /** Verifies `signature` (DER) over `data` hashed with `hash`, by the uncompressed `point` on `curve`. */
  verify(curve: EcCurve, point: Uint8Array, hash: 'sha256' | 'sha384' | 'sha512', data: Uint8Array, signature: Uint8Array): EcVerifyOutcome;
}

const CURVES: Record<EcCurve, { nid: number; size: number }> = {
  'P-256': { nid: 415, size: 32 }, // NID_X9_62_prime256v1
  'P-384': { nid: 715, size: 48 }, // NID_secp384r1
};

type Fn = (...args: unknown[]) => unknown;
interface Binding {
  newByCurve: Fn;
  oct2key: Fn;
  free: Fn;
  verify: Fn;
  clearErrors: Fn;
}

function bind(source: string | null): Binding | undefined {
  try {
    const koffi = createRequire(import.meta.url)('koffi') as { load(path: string | null): { func(sig: string): Fn } };
    const lib = koffi.load(source);
    return {
      newByCurve: lib.func('void *EC_KEY_new_by_curve_name(int nid)'),
      oct2key: lib.func('int EC_KEY_oct2key(void *key, const uint8_t *buf, size_t len, void *ctx)'),
      free: lib.func('void EC_KEY_free(void *key)'),
      verify: lib.func('int ECDSA_verify(int type, const uint8_t *dgst, int dgstlen, const uint8_t *sig, int siglen, void *eckey)'),
      clearErrors: lib.func('void ERR_clear_error()'),
    };
  } catch {
    return undefined;
  }
}

function verifierOf(b: Binding, source: string): NativeEcVerifier {
  return {
    source,
    verify(curve, point, hash, data, signature) {
      const c = CURVES[curve];
      if (c === undefined) throw new TypeError(`unsupported curve ${String(curve)}`);
      if (!(point instanceof Uint8Array) || point.length !== 1 + 2 * c.size || point[0] !== 0x04) return 'bad-point';
      if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > 256) return 'bad-signature';
      const digest = createHash(hash).update(data).digest();
      const key = b.newByCurve(c.nid);
      if (key === null || key === undefined) {
        b.clearErrors();
        throw new Error(`OpenSSL could not create an EC key for ${curve}`);
      }
      try {
        if (b.oct2key(key, point, point.length, null) !== 1) {
          b.clearErrors();
          return 'bad-point';
        }
        if (b.verify(0, digest, digest.length, signature, signature.length, key) === 1) return 'ok';
        b.clearErrors();
        return 'bad-signature';
      } finally {
        b.free(key);
      }
    },
  };
}

/** The binding must tell good from bad before it is trusted with anything. */
function selfTest(v: NativeEcVerifier): boolean {
  try {
    for (const curve of ['P-256', 'P-384'] as const) {
      const hash = curve === 'P-256' ? 'sha256' : 'sha384';
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const spki = publicKey.export({ type: 'spki', format: 'der' });
      const point = spki.subarray(spki.length - (1 + 2 * CURVES[curve].size));
      const data = Buffer.from('mayfly native ECDSA self-test');
      const sig = sign(hash, data, privateKey);
      const corrupt = Buffer.from(sig);
      corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] as number) ^ 1;
      const offCurve = Buffer.from(point);
      offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
      if (v.verify(curve, point, hash, data, sig) !== 'ok') return false;
      if (v.verify(curve, point, hash, data, corrupt) !== 'bad-signature') return false;
      if (v.verify(curve, point, hash, Buffer.from('other data'), sig) !== 'bad-signature') return false;
      if (v.verify(curve, offCurve, hash, data, sig) !== 'bad-point') return false;
    }
    return true;
  } catch {
    return false;
  }
}

let cached: NativeEcVerifier | null | undefined;

/** The native verifier, or undefined when it cannot be used here (callers fall back to node:crypto). */
export function nativeEcVerifier(): NativeEcVerifier | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  if (process.env.MAYFLY_NATIVE_EC === '0') return undefined;
  for (const [source, path] of [['process', null], ['libcrypto.so.3', 'libcrypto.so.3']] as const) {
    const b = bind(path);
    if (b === undefined) continue;
    const v = verifierOf(b, source);
    if (selfTest(v)) {
      cached = v;
      break;
    }
  }
  return cached ?? undefined;
}
