import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { mintX509SvidsFromCsrs, type CsrMintItem, type CsrMintOutcome, type X509MintAuthority } from '../ca/mint.js';
import { ServerCa } from '../ca/server-ca.js';
import { writeOperatorCa } from '../ca/testing.js';
import { loadDiskUpstreamAuthority } from '../ca/upstream.js';
import { TrustDomain } from '../spiffe/id.js';
import { exportSpkiDer, generateKeyPair } from '../spiffe/keys.js';
import { MayflyError } from '../spiffe/errors.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { CsrWorkerPool, defaultCsrWorkerUrl } from './csr-pool.js';
import type { CsrJobResult, MintJob } from './csr-worker.js';

const pools: CsrWorkerPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});

function pool(cfg: ConstructorParameters<typeof CsrWorkerPool>[0]): CsrWorkerPool {
  const p = new CsrWorkerPool(cfg);
  pools.push(p);
  return p;
}

const TD = 'example.org';

async function newCa(opts: Partial<ConstructorParameters<typeof ServerCa>[0]> = {}): Promise<ServerCa> {
  const ca = new ServerCa({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore(), ...opts });
  await ca.init();
  return ca;
}

/** Good CSRs (each asking for another identity and cA=true), one without proof of possession, garbage, a weak key, a foreign SPIFFE ID. */
function mintItems(): { items: CsrMintItem[]; spkis: (Buffer | undefined)[] } {
  const items: CsrMintItem[] = [];
  const spkis: (Buffer | undefined)[] = [];
  for (let i = 0; i < 14; i++) {
    const k = generateKeyPair(i % 4 === 3 ? 'ec-p384' : i % 5 === 4 ? 'rsa-2048' : 'ec-p256');
    const good = createCsr({ privateKey: k.privateKey, uri: `spiffe://${TD}/admin`, requestCa: true, commonName: 'root' });
    const item: CsrMintItem = { csr: good, spiffeId: `spiffe://${TD}/svc/${i}`, ttlSeconds: 600, dnsNames: [`svc${i}.example.org`] };
    if (i === 2) item.csr = createCsr({ privateKey: k.privateKey, corruptSignature: true });
    else if (i === 6) item.csr = Buffer.from('not a CSR');
    else if (i === 8) item.spiffeId = 'spiffe://elsewhere.org/svc/8';
    items.push(item);
    spkis.push(i === 2 || i === 6 || i === 8 ? undefined : exportSpkiDer(k.publicKey));
  }
  return { items, spkis };
}

function mintSummary(o: CsrMintOutcome): string {
  return 'leaf' in o ? 'ok' : `${(o.error as MayflyError).code}:${(o.error as Error).message}`;
}

/** Every good item: a leaf of `authority` for the item's SPIFFE ID and the CSR's key, verifying against `bundleRoots`. */
function expectMinted(out: CsrMintOutcome[], items: CsrMintItem[], spkis: (Buffer | undefined)[], authority: X509MintAuthority, bundleRoots: readonly Buffer[]): void {
  expect(out).toHaveLength(items.length);
  out.forEach((o, i) => {
    const want = spkis[i];
    if (want === undefined) {
      expect('error' in o && o.error instanceof MayflyError).toBe(true);
      return;
    }
    if (!('leaf' in o)) throw new Error(`item ${i} failed: ${mintSummary(o)}`);
    const chain = [o.leaf, ...authority.intermediates];
    const v = verifyX509Svid(chain, { trustDomain: TrustDomain.parse(TD), x509Authorities: bundleRoots });
    expect(v.spiffeId.toString()).toBe(items[i]?.spiffeId);
    const leaf = parseCertificate(o.leaf);
    expect(leaf.spki.equals(want)).toBe(true);
    expect(leaf.isCA).toBe(false);
    expect(leaf.uriSans).toEqual([items[i]?.spiffeId]);
    expect(leaf.dnsSans).toEqual(items[i]?.dnsNames);
    expect(o.serialHex).toBe(leaf.serialHex);
    expect(o.notAfter).toBe(Math.floor(leaf.notAfter.getTime() / 1000));
    // signed by this authority's key: the leaf's AKI is the CA certificate's SKI
    expect(leaf.authorityKeyId?.equals(parseCertificate(authority.caCertificate).subjectKeyId as Buffer)).toBe(true);
  });
}

describe('CsrWorkerPool.mint (CSR checks, mint and verification on worker threads)', () => {
  it('mints on the workers exactly what the inline path accepts and refuses, identity from the item only', async () => {
    const ca = await newCa();
    const { authority, now } = ca.x509MintAuthority();
    const p = pool({ size: 2, inlineBelow: 1 });
    const { items, spkis } = mintItems();
    const out = await p.mint(authority, now, items);
    expect(p.running).toBe(2);
    expectMinted(out, items, spkis, authority, ca.getBundle().x509Authorities);
    expect(out.map(mintSummary)).toEqual(mintX509SvidsFromCsrs(authority, items, now).map(mintSummary));
    expect(mintSummary(out[2] as CsrMintOutcome)).toMatch(/ERR_CSR_INVALID:.*proof of possession/);
    expect(mintSummary(out[8] as CsrMintOutcome)).toMatch(/ERR_SPIFFE_ID_NOT_MEMBER/);
  });

  it('follows rotation: each batch is signed by the authority snapshot it was given, on every worker', async () => {
    const ca = await newCa();
    const p = pool({ size: 2, inlineBelow: 1 });
    const { items, spkis } = mintItems();
    const before = ca.x509MintAuthority();
    expect(ca.x509MintAuthority().authority).toBe(before.authority); // same snapshot while nothing changes
    await ca.prepareAuthority('x509');
    const prepared = ca.x509MintAuthority();
    expect(prepared.authority).not.toBe(before.authority); // the bundle changed
    expect(prepared.authority.authorityId).toBe(before.authority.authorityId);
    await ca.activateAuthority('x509');
    const after = ca.x509MintAuthority();
    expect(after.authority.authorityId).not.toBe(before.authority.authorityId);
    const roots = ca.getBundle().x509Authorities;
    // interleaved, in flight together: old snapshot, new, old again
    const [a, b, c] = await Promise.all([p.mint(before.authority, before.now, items), p.mint(after.authority, after.now, items), p.mint(before.authority, before.now, items)]);
    expectMinted(a as CsrMintOutcome[], items, spkis, before.authority, roots);
    expectMinted(b as CsrMintOutcome[], items, spkis, after.authority, roots);
    expectMinted(c as CsrMintOutcome[], items, spkis, before.authority, roots);
  });

  it('mints under an upstream authority: chain [leaf, Mayfly CA, upstream intermediate] verified against the upstream root', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-pool-up-'));
    try {
      const op = writeOperatorCa(dir, { now: new Date(Date.now() - 3600_000), withIntermediate: true });
      const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, bundleFile: op.bundleFile });
      const ca = await newCa({ upstream });
      const { authority, now } = ca.x509MintAuthority();
      expect(authority.intermediates).toHaveLength(2);
      const { items, spkis } = mintItems();
      const out = await pool({ size: 1, inlineBelow: 1 }).mint(authority, now, items);
      expectMinted(out, items, spkis, authority, [op.root]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs inline for small batches and without workers, with the same outcomes', async () => {
    const ca = await newCa();
    const { authority, now } = ca.x509MintAuthority();
    const { items } = mintItems();
    const small = pool({ size: 2, inlineBelow: 100 });
    const none = pool({ size: 0 });
    const want = mintX509SvidsFromCsrs(authority, items, now).map(mintSummary);
    expect((await small.mint(authority, now, items)).map(mintSummary)).toEqual(want);
    expect((await none.mint(authority, now, items)).map(mintSummary)).toEqual(want);
    expect(small.running + none.running).toBe(0);
    // After close, everything runs inline (with the same outcomes) and no worker starts again.
    const closed = pool({ size: 2, inlineBelow: 1 });
    await closed.mint(authority, now, items);
    expect(closed.running).toBeGreaterThan(0);
    await closed.close();
    expect(closed.running).toBe(0);
    expect((await closed.mint(authority, now, items)).map(mintSummary)).toEqual(want);
    expect(closed.running).toBe(0);
  });

  it('finds the compiled worker script (built by the test global setup)', () => {
    expect(defaultCsrWorkerUrl()?.pathname).toMatch(/csr-worker\.js$/);
  });

  it('refuses a nonsensical size or job timeout', () => {
    expect(() => new CsrWorkerPool({ size: -1 })).toThrow(TypeError);
    expect(() => new CsrWorkerPool({ jobTimeoutMs: 0 })).toThrow(TypeError);
  });

  it('a worker that never answers is replaced and its items fail, rather than hang the call or run here', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-csr-hang-'));
    try {
      // A worker that takes jobs and never answers (a hung thread).
      const script = join(dir, 'hung-worker.mjs');
      writeFileSync(script, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => {});\n");
      const p = pool({ size: 1, inlineBelow: 1, workerUrl: pathToFileURL(script), jobTimeoutMs: 200 });
      const { authority, now } = (await newCa()).x509MintAuthority();
      const { items } = mintItems();
      const got = await p.mint(authority, now, items);
      expect(got).toHaveLength(items.length);
      for (const o of got) expect('error' in o ? (o.error as Error).message : 'answered').toMatch(/did not answer within 200 ms; it was replaced/);
      expect(p.running).toBe(0); // terminated; the next batch spawns a fresh one
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a worker refuses a job naming an authority it does not hold, rather than sign with another', async () => {
    const ca = await newCa();
    const { authority, now } = ca.x509MintAuthority();
    const url = defaultCsrWorkerUrl();
    if (url === undefined) throw new Error('build first: the worker script is missing');
    const w = new Worker(url);
    const ask = (job: MintJob): Promise<CsrJobResult> =>
      new Promise((resolve) => {
        w.once('message', resolve);
        w.postMessage(job);
      });
    const { items } = mintItems();
    const one = [items[0] as CsrMintItem];
    try {
      const cold = await ask({ kind: 'mint', id: 1, authorityRef: 7, nowMs: now.getTime(), items: one });
      expect(cold.outcomes[0]).toMatchObject({ code: 'internal', message: expect.stringMatching(/does not hold authority #7/) });
      const sent = await ask({ kind: 'mint', id: 2, authorityRef: 7, authority, nowMs: now.getTime(), items: one });
      expect(sent.outcomes[0]).toHaveProperty('serialHex');
      const other = await ask({ kind: 'mint', id: 3, authorityRef: 8, nowMs: now.getTime(), items: one });
      expect(other.outcomes[0]).toMatchObject({ code: 'internal' });
    } finally {
      await w.terminate();
    }
  });
});
