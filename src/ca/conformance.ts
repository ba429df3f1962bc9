/**
 * @module ca/conformance
 *
 * What every key manager and every upstream authority does, written against their seams
 * only (ca/key-manager, ca/upstream), and checked by putting them under a real `ServerCa`:
 * - a KeyManager generates keys of each type under an id, returns the same key for it,
 *   replaces it when asked, lists and forgets ids, refuses ids that are not path-safe
 *   (TypeError), and, when it is persistent, gives the same keys back after a restart;
 * - an UpstreamAuthority gives a CA certificate with its own key, roots that are
 *   self-signed CAs and no root among the intermediates; the CA it signs mints SVIDs that
 *   verify against those roots, and a configuration that does not hold together is
 *   refused with `ERR_CA_UPSTREAM_INVALID`.
 * The server's catalog test runs these on every registered plugin of the two kinds with
 * the fixtures its folder keeps (`testing.ts`).
 */
import { createPublicKey, sign, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginFixture } from '../config/testing.js';
import { isMayflyError } from '../spiffe/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import { exportSpkiDer, generateKeyPair, KEY_TYPES, keyTypeOf } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { MemoryJournalStore } from './journal-store.js';
import { MemoryKeyManager, type KeyManager } from './key-manager.js';
import { ServerCa } from './server-ca.js';
import type { UpstreamAuthority } from './upstream.js';

export interface KeyManagerFixture extends PluginFixture {
  readonly binary: 'server';
  readonly kind: 'KeyManager';
  /** The HCL inside `plugin_data { }` for a fresh, empty key store (called once per test). */
  pluginData(): string;
  /** The data directory the server would have (for a default config). */
  dataDir(): string;
  deps(): object;
  /** Whether a key manager built again on the same config finds the keys (disk does; memory does not). */
  readonly persistent: boolean;
}

export interface UpstreamAuthorityFixture extends PluginFixture {
  readonly binary: 'server';
  readonly kind: 'UpstreamAuthority';
  /** Writes the operator's CA (if it keeps files) and returns the HCL inside `plugin_data { }`. */
  pluginData(): string;
  /** The trust domain the operator's CA is for. */
  readonly trustDomain: string;
  deps(): object;
  /** Configurations that must be refused, by what is wrong with them. */
  readonly refused: Readonly<Record<string, () => string>>;
}

const TD = TrustDomain.parse('conformance.test');

/** `open(pluginData)` builds a key manager as the server would, on the storage `pluginData` names. */
export function runKeyManagerConformance(label: string, fixture: KeyManagerFixture, open: (pluginData: string) => KeyManager): void {
  describe(`key manager conformance: ${label}`, () => {
    const fresh = (): { km: KeyManager; again: () => KeyManager } => {
      const data = fixture.pluginData();
      return { km: open(data), again: () => open(data) };
    };

    it('generates a key of every type under an id, and returns that same key for the id', async () => {
      const { km } = fresh();
      for (const type of KEY_TYPES) {
        const pair = await km.generateKey(`key-${type}`, type);
        expect(pair.type).toBe(type);
        expect(keyTypeOf(pair.privateKey)).toBe(type);
        expect(exportSpkiDer(createPublicKey(pair.privateKey)).equals(exportSpkiDer(pair.publicKey))).toBe(true);
        const got = await km.getKey(`key-${type}`);
        expect(got && exportSpkiDer(got.publicKey).equals(exportSpkiDer(pair.publicKey))).toBe(true);
        const msg = Buffer.from('conformance');
        const alg = type === 'rsa-2048' ? 'sha256' : null;
        expect(verify(alg, msg, pair.publicKey, sign(alg, msg, (got ?? pair).privateKey))).toBe(true);
      }
    });

    it('knows no key under an id it never generated', async () => {
      expect(await fresh().km.getKey('never-generated')).toBeUndefined();
    });

    it('replaces the key under an id generated again', async () => {
      const { km } = fresh();
      const first = await km.generateKey('slot-a', 'ec-p256');
      const second = await km.generateKey('slot-a', 'ec-p256');
      expect(exportSpkiDer(second.publicKey).equals(exportSpkiDer(first.publicKey))).toBe(false);
      const got = await km.getKey('slot-a');
      expect(got && exportSpkiDer(got.publicKey).equals(exportSpkiDer(second.publicKey))).toBe(true);
    });

    it('lists ids sorted, forgets a deleted one, and deleting a missing one is no error', async () => {
      const { km } = fresh();
      for (const id of ['b', 'a', 'c']) await km.generateKey(id, 'ec-p256');
      expect(await km.list()).toEqual(['a', 'b', 'c']);
      await km.deleteKey('b');
      await km.deleteKey('never-there');
      expect(await km.list()).toEqual(['a', 'c']);
      expect(await km.getKey('b')).toBeUndefined();
    });

    it('treats an id that is not path-safe as caller misuse (TypeError)', async () => {
      const { km } = fresh();
      for (const id of ['', '.hidden', '../escape', 'a/b', 'x'.repeat(129), 'nul\u0000']) {
        await expect(km.generateKey(id, 'ec-p256'), JSON.stringify(id)).rejects.toThrow(TypeError);
        await expect(km.getKey(id), JSON.stringify(id)).rejects.toThrow(TypeError);
        await expect(km.deleteKey(id), JSON.stringify(id)).rejects.toThrow(TypeError);
      }
    });

    it(fixture.persistent ? 'gives the same keys back when built again on the same storage' : 'keeps nothing across a rebuild (keys live in memory)', async () => {
      const { km, again } = fresh();
      const pair = await km.generateKey('kept', 'ec-p384');
      await km.generateKey('dropped', 'ec-p256');
      await km.deleteKey('dropped');
      const reopened = again();
      const got = await reopened.getKey('kept');
      if (!fixture.persistent) {
        expect(got).toBeUndefined();
        expect(await reopened.list()).toEqual([]);
        return;
      }
      expect(got && exportSpkiDer(got.publicKey).equals(exportSpkiDer(pair.publicKey))).toBe(true);
      expect(await reopened.list()).toEqual(['kept']);
    });

    it('holds a CA: ServerCa starts on it and its SVIDs verify against its bundle, also after a restart when persistent', async () => {
      const { km, again } = fresh();
      const ca = new ServerCa({ trustDomain: TD, keyManager: km, journal: new MemoryJournalStore() });
      await ca.init();
      const svid = ca.signX509Svid({ spiffeId: TD.idWithPath('/workload'), publicKey: generateKeyPair().publicKey });
      expect(verifyX509Svid(svid.certificates, { trustDomain: TD, x509Authorities: ca.getBundle().x509Authorities }).spiffeId.toString()).toBe('spiffe://conformance.test/workload');
      ca.stop();
      if (!fixture.persistent) return;
      expect((await again().list()).length).toBeGreaterThan(0);
    });
  });
}

/** `build(pluginData)` builds an upstream authority as the server would. */
export function runUpstreamAuthorityConformance(label: string, fixture: UpstreamAuthorityFixture, build: (pluginData: string) => UpstreamAuthority): void {
  describe(`upstream authority conformance: ${label}`, () => {
    const td = TrustDomain.parse(fixture.trustDomain);
    let up: UpstreamAuthority;
    beforeAll(() => {
      up = build(fixture.pluginData());
    });

    it('is a CA certificate with its own key, valid now', () => {
      const cert = parseCertificate(up.certificate);
      expect(cert.isCA).toBe(true);
      expect(cert.keyUsage?.keyCertSign).toBe(true);
      expect(exportSpkiDer(createPublicKey(up.privateKey)).equals(cert.spki)).toBe(true);
      expect(up.notAfter.getTime()).toBeGreaterThan(Date.now());
      expect(up.notAfter.getTime()).toBeLessThanOrEqual(cert.notAfter.getTime());
    });

    it('publishes roots that are self-signed CAs, and carries none of them as an intermediate', () => {
      expect(up.roots.length).toBeGreaterThan(0);
      for (const r of up.roots) {
        const c = parseCertificate(r);
        expect(c.isCA).toBe(true);
        expect(c.subject.equals(c.issuer)).toBe(true);
      }
      for (const i of up.intermediates) expect(up.roots.some((r) => r.equals(i))).toBe(false);
    });

    describe('under a ServerCa', () => {
      let ca: ServerCa;
      beforeAll(async () => {
        ca = new ServerCa({ trustDomain: td, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore(), upstream: up });
        await ca.init();
      });
      afterAll(() => ca?.stop());

      it('the bundle is the upstream roots, and minted SVIDs verify against them, never carrying a root', () => {
        expect(ca.getBundle().x509Authorities.map((c) => Buffer.from(c).toString('hex')).sort()).toEqual(up.roots.map((c) => c.toString('hex')).sort());
        const svid = ca.signX509Svid({ spiffeId: td.idWithPath('/workload'), publicKey: generateKeyPair().publicKey });
        expect(verifyX509Svid(svid.certificates, { trustDomain: td, x509Authorities: up.roots }).spiffeId.toString()).toBe(`${td.idString}/workload`);
        for (const c of svid.certificates) expect(up.roots.some((r) => r.equals(c))).toBe(false);
      });
    });

    for (const [what, data] of Object.entries(fixture.refused)) {
      it(`refuses ${what} with ERR_CA_UPSTREAM_INVALID`, () => {
        let err: unknown;
        try {
          build(data());
        } catch (e) {
          err = e;
        }
        expect(isMayflyError(err, 'ERR_CA_UPSTREAM_INVALID'), String(err)).toBe(true);
      });
    }
  });
}
