import { afterEach, describe, expect, it } from 'vitest';
import { exportSpkiDer, generateKeyPair } from '../spiffe/keys.js';
import { X509SvidError } from '../spiffe/errors.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { CsrWorkerPool, defaultCsrWorkerUrl, parseCsrOutcome, type CsrOutcome } from './csr-pool.js';

const pools: CsrWorkerPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});

function pool(cfg: ConstructorParameters<typeof CsrWorkerPool>[0]): CsrWorkerPool {
  const p = new CsrWorkerPool(cfg);
  pools.push(p);
  return p;
}

/** A batch mixing good CSRs, a CSR without proof of possession, garbage and an RSA-1024 key. */
function batch(): { csrs: Uint8Array[]; spkis: (Buffer | undefined)[] } {
  const csrs: Uint8Array[] = [];
  const spkis: (Buffer | undefined)[] = [];
  for (let i = 0; i < 12; i++) {
    const k = generateKeyPair(i % 3 === 2 ? 'ec-p384' : 'ec-p256');
    if (i === 4) {
      csrs.push(createCsr({ privateKey: k.privateKey, corruptSignature: true }));
      spkis.push(undefined);
    } else if (i === 7) {
      csrs.push(Buffer.from('not a CSR at all'));
      spkis.push(undefined);
    } else {
      csrs.push(createCsr({ privateKey: k.privateKey }));
      spkis.push(exportSpkiDer(k.publicKey));
    }
  }
  return { csrs, spkis };
}

function summary(o: CsrOutcome): string {
  return 'spki' in o ? `ok:${o.spki.toString('hex')}` : `${(o.error as X509SvidError).code}:${o.error.message}`;
}

describe('CsrWorkerPool', () => {
  it('finds the compiled worker script (built by the test global setup)', () => {
    expect(defaultCsrWorkerUrl()?.pathname).toMatch(/csr-worker\.js$/);
  });

  it('checks CSRs on worker threads with exactly the outcomes of parseCsr inline, in order', async () => {
    const p = pool({ size: 2, inlineBelow: 1 });
    expect(p.size).toBe(2);
    const { csrs, spkis } = batch();
    const got = await p.parse(csrs);
    expect(p.running).toBe(2); // both workers took a share
    expect(got.map(summary)).toEqual(csrs.map(parseCsrOutcome).map(summary));
    got.forEach((o, i) => {
      const want = spkis[i];
      if (want === undefined) {
        expect('error' in o && o.error instanceof X509SvidError && o.error.code === 'ERR_CSR_INVALID').toBe(true);
      } else {
        expect('spki' in o && o.spki.equals(want)).toBe(true);
      }
    });
  });

  it('the proof-of-possession failure names its cause when it comes from a worker', async () => {
    const p = pool({ size: 1, inlineBelow: 1 });
    const bad = createCsr({ privateKey: generateKeyPair().privateKey, corruptSignature: true });
    const [o] = await p.parse([bad]);
    expect(o && 'error' in o ? o.error.message : '').toMatch(/proof of possession/);
  });

  it('parses small batches inline, and everything inline after close', async () => {
    const p = pool({ size: 2, inlineBelow: 8 });
    const { csrs } = batch();
    await p.parse(csrs.slice(0, 3));
    expect(p.running).toBe(0);
    await p.parse(csrs);
    expect(p.running).toBeGreaterThan(0);
    await p.close();
    expect(p.running).toBe(0);
    expect((await p.parse(csrs)).map(summary)).toEqual(csrs.map(parseCsrOutcome).map(summary));
  });

  it('size 0 never starts a worker', async () => {
    const p = pool({ size: 0 });
    const { csrs } = batch();
    expect((await p.parse(csrs)).map(summary)).toEqual(csrs.map(parseCsrOutcome).map(summary));
    expect(p.running).toBe(0);
  });

  it('refuses a nonsensical size', () => {
    expect(() => new CsrWorkerPool({ size: -1 })).toThrow(TypeError);
  });
});
