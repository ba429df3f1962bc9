import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../errors.js';
import { exportSpkiDer, generateKeyPair } from '../keys.js';
import { createCsr, MAX_CSR_BYTES, parseCsr } from './csr.js';
import { readChildren, readTlv, seq, type Tlv } from './der.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isMayflyError(err) ? err.code : `not a MayflyError: ${String(err)}`;
  }
}

describe('parseCsr', () => {
  it.each(['ec-p256', 'ec-p384', 'rsa-2048'] as const)('returns the key of a %s CSR', (type) => {
    const k = generateKeyPair(type);
    const parsed = parseCsr(createCsr({ privateKey: k.privateKey, uri: 'spiffe://example.org/x', requestCa: true, commonName: 'x' }));
    expect(parsed.keyType).toBe(type);
    expect(parsed.spki.equals(exportSpkiDer(k.publicKey))).toBe(true);
  });

  it('rejects a CSR whose signature does not verify (no proof of possession)', () => {
    const k = generateKeyPair();
    expect(code(() => parseCsr(createCsr({ privateKey: k.privateKey, corruptSignature: true })))).toBe('ERR_CSR_INVALID');
  });

  it('rejects a CSR whose signature was made by another key', () => {
    const a = createCsr({ privateKey: generateKeyPair().privateKey });
    const b = createCsr({ privateKey: generateKeyPair().privateKey });
    // a's request info and algorithm with b's signature: well formed, wrong signer.
    const [criA, algA] = readChildren(a, readTlv(a, 0)) as [Tlv, Tlv, Tlv];
    const sigB = (readChildren(b, readTlv(b, 0)) as [Tlv, Tlv, Tlv])[2];
    const spliced = seq(a.subarray(criA.start, criA.end), a.subarray(algA.start, algA.end), b.subarray(sigB.start, sigB.end));
    expect(code(() => parseCsr(spliced))).toBe('ERR_CSR_INVALID');
    // The same splice with a's own signature is accepted, so the rejection above is the signature's.
    const sigA = (readChildren(a, readTlv(a, 0)) as [Tlv, Tlv, Tlv])[2];
    expect(code(() => parseCsr(seq(a.subarray(criA.start, criA.end), a.subarray(algA.start, algA.end), a.subarray(sigA.start, sigA.end))))).toBeUndefined();
  });

  it('imports EC keys of every supported type to the same key the DER path gives', () => {
    for (const type of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
      const k = generateKeyPair(type);
      const parsed = parseCsr(createCsr({ privateKey: k.privateKey }));
      expect(parsed.keyType).toBe(type);
      expect(parsed.publicKey.equals(k.publicKey)).toBe(true);
      expect(parsed.spki.equals(exportSpkiDer(k.publicKey))).toBe(true);
    }
  });

  it('rejects a CSR whose EC point is not on the curve', () => {
    const k = generateKeyPair('ec-p256');
    const der = Buffer.from(createCsr({ privateKey: k.privateKey }));
    const spki = exportSpkiDer(k.publicKey);
    const at = der.indexOf(spki);
    expect(at).toBeGreaterThan(0);
    der[at + spki.length - 1]! ^= 0x01; // last byte of Y: the point leaves the curve
    let err: unknown;
    try {
      parseCsr(der);
    } catch (e) {
      err = e;
    }
    expect(isMayflyError(err, 'ERR_CSR_INVALID')).toBe(true);
    expect(String((err as Error).message)).toMatch(/not a valid point|cannot be read/);
  });

  it('rejects weak and unsupported keys', () => {
    expect(code(() => parseCsr(createCsr({ privateKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey })))).toBe('ERR_CSR_INVALID');
    expect(code(() => parseCsr(createCsr({ privateKey: generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey })))).toBe('ERR_CSR_INVALID');
  });

  it('rejects garbage, trailing bytes, empty and oversized input', () => {
    const good = createCsr({ privateKey: generateKeyPair().privateKey });
    expect(code(() => parseCsr(Buffer.from('hello')))).toBe('ERR_CSR_INVALID');
    expect(code(() => parseCsr(Buffer.concat([good, Buffer.from([0])])))).toBe('ERR_CSR_INVALID');
    expect(code(() => parseCsr(good.subarray(0, good.length - 1)))).toBe('ERR_CSR_INVALID');
    expect(code(() => parseCsr(Buffer.alloc(0)))).toBe('ERR_CSR_INVALID');
    expect(code(() => parseCsr(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30)))).toBe('ERR_CSR_INVALID');
  });

  it('is checked against openssl', async () => {
    const { spawnSync } = await import('node:child_process');
    const der = createCsr({ privateKey: generateKeyPair().privateKey, uri: 'spiffe://example.org/x' });
    const good = spawnSync('openssl', ['req', '-inform', 'DER', '-verify', '-noout'], { input: der });
    expect(good.status).toBe(0);
    expect(`${good.stdout}${good.stderr}`).toMatch(/verify OK/i);
    const bad = spawnSync('openssl', ['req', '-inform', 'DER', '-verify', '-noout'], { input: createCsr({ privateKey: generateKeyPair().privateKey, corruptSignature: true }) });
    expect(`${bad.stdout}${bad.stderr}`).not.toMatch(/verify OK/i);
  });
});

describe('parseCsr through the native EC check (spiffe/x509/ec-native)', () => {
  it('loads here (Node exports its OpenSSL) and gives exactly the answers of node:crypto', async () => {
    const { nativeEcVerifier } = await import('./ec-native.js');
    expect(nativeEcVerifier()?.source).toBeDefined();
    const summary = (der: Uint8Array, nativeEc: boolean): string => {
      try {
        const p = parseCsr(der, { nativeEc });
        return `ok ${p.keyType} ${p.spki.toString('hex')}`;
      } catch (err) {
        return isMayflyError(err) ? `${err.code} ${err.message}` : `not a MayflyError: ${String(err)}`;
      }
    };
    const cases: Uint8Array[] = [];
    for (const type of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
      const k = generateKeyPair(type);
      cases.push(createCsr({ privateKey: k.privateKey }), createCsr({ privateKey: k.privateKey, corruptSignature: true }));
    }
    const k = generateKeyPair('ec-p256');
    const offCurve = Buffer.from(createCsr({ privateKey: k.privateKey }));
    const spki = exportSpkiDer(k.publicKey);
    offCurve[offCurve.indexOf(spki) + spki.length - 1]! ^= 0x01;
    cases.push(offCurve);
    // a's request with b's signature: well-formed DER, wrong signer
    const a = createCsr({ privateKey: generateKeyPair().privateKey });
    const b = createCsr({ privateKey: generateKeyPair().privateKey });
    const [criA, algA] = readChildren(a, readTlv(a, 0)) as [Tlv, Tlv, Tlv];
    const sigB = (readChildren(b, readTlv(b, 0)) as [Tlv, Tlv, Tlv])[2];
    cases.push(seq(a.subarray(criA.start, criA.end), a.subarray(algA.start, algA.end), b.subarray(sigB.start, sigB.end)));
    const native = cases.map((c) => summary(c, true));
    expect(native).toEqual(cases.map((c) => summary(c, false)));
    expect(native.filter((s) => s.startsWith('ok ')).length).toBe(3);
  });

  it('still hands out the CSR key as a KeyObject on request', () => {
    const k = generateKeyPair('ec-p384');
    const parsed = parseCsr(createCsr({ privateKey: k.privateKey }), { nativeEc: true });
    expect(parsed.publicKey.equals(k.publicKey)).toBe(true);
  });
});
