/**
 * @module server/notifier/conformance
 *
 * What every server `Notifier` does, wherever it publishes: started, it publishes the
 * bundle the server serves; told of a change, it publishes the new bundle (X.509 roots
 * added by a prepared authority included); stopped, it publishes nothing more. Bundles are
 * a real CA's (ca/ServerCa over memory keys), rotated for real. The server catalog test
 * runs this on every registered notifier with the fixtures its folder keeps (`testing.ts`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryJournalStore } from '../../ca/journal-store.js';
import { MemoryKeyManager } from '../../ca/key-manager.js';
import { ServerCa } from '../../ca/server-ca.js';
import type { PluginFixture } from '../../config/testing.js';
import { parsePemCertificates } from '../../spiffe/x509/pem.js';
import type { BundleSource, Notifier } from './notifier.js';

export interface NotifierFixture extends PluginFixture {
  readonly binary: 'server';
  readonly kind: 'Notifier';
  beforeAll?(): Promise<void>;
  afterAll?(): Promise<void>;
  /** The HCL inside its `plugin_data { }`. */
  pluginData(): string;
  /** What the server offers its `build`. */
  deps(): object;
  /** The X.509 roots it has published so far, as PEM (undefined before the first). */
  published(): Promise<string | undefined>;
}

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function runNotifierConformance(label: string, fx: NotifierFixture, build: () => Notifier): void {
  describe(`${label}: Notifier conformance`, () => {
    beforeAll(async () => fx.beforeAll?.());
    afterAll(async () => fx.afterAll?.());

    it('publishes the served bundle at start, every change after, and nothing once stopped', async () => {
      const ca = new ServerCa({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
      await ca.init();
      const listeners = new Set<() => void>();
      const source: BundleSource = {
        bundle: () => ca.getBundle(),
        onChange: (l) => {
          listeners.add(l);
          return () => listeners.delete(l);
        },
      };
      const roots = async (): Promise<string[]> => {
        const pem = await fx.published();
        return pem === undefined ? [] : parsePemCertificates(pem).map((c) => c.toString('hex'));
      };
      const served = (): string[] => ca.getBundle().x509Authorities.map((c) => c.toString('hex'));
      const notifier = build();
      await notifier.start(source);
      try {
        await until(async () => JSON.stringify(await roots()) === JSON.stringify(served()), 'the first bundle published');
        expect(served()).toHaveLength(1);
        await ca.prepareAuthority('x509');
        expect(served()).toHaveLength(2);
        for (const l of listeners) l();
        await until(async () => JSON.stringify(await roots()) === JSON.stringify(served()), 'the rotated bundle published');
      } finally {
        await notifier.stop();
      }
      const before = await roots();
      await ca.prepareAuthority('x509');
      for (const l of listeners) l();
      expect(listeners.size).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
      expect(await roots()).toEqual(before);
    });
  });
}
