/**
 * @module datastore/level/bundles
 *
 * Trust bundles (`b!<trust domain>`) and the CA journal (`j!ca`, base64) on LevelDB. A
 * bundle that registration entries federate with cannot be deleted (`ERR_DATASTORE_CONFLICT`):
 * the `f!` index answers that without reading the entries.
 */
import { applyBundleMerge, checkBundleMerge } from '../bundle-merge.js';
import type { BundleMerge, StoredBundle } from '../datastore.js';
import { checkBundleInput, checkCaJournal, checkTrustDomainArg, DatastoreError } from '../records.js';
import { SEP, SEP_END } from './keys.js';
import type { LevelStore } from './store.js';

export async function getBundle(s: LevelStore, trustDomain: string): Promise<StoredBundle | undefined> {
  s.check();
  checkTrustDomainArg(trustDomain, 'trustDomain');
  const v = await s.db.get(`b!${trustDomain}`);
  return v === undefined ? undefined : (JSON.parse(v) as StoredBundle);
}

export async function setBundle(s: LevelStore, input: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle> {
  s.check();
  checkBundleInput(input);
  return s.exclusive(async () => {
    const rec: StoredBundle = { trustDomain: input.trustDomain, bundle: input.bundle, sequence: input.sequence, updatedAt: s.seconds() };
    await s.write([{ type: 'put', key: `b!${rec.trustDomain}`, value: JSON.stringify(rec) }]);
    return rec;
  });
}

/** Read, merge and write inside the write queue: no other write can come between (see bundle-merge). */
export async function mergeBundle(s: LevelStore, merge: BundleMerge): Promise<{ bundle: StoredBundle | undefined; changed: boolean }> {
  s.check();
  const checked = checkBundleMerge(merge);
  return s.exclusive(async () => {
    const key = `b!${checked.trustDomain.name}`;
    const v = await s.db.get(key);
    const existing = v === undefined ? undefined : (JSON.parse(v) as StoredBundle);
    const next = applyBundleMerge(existing, merge, checked, s.seconds());
    if (next === undefined) return { bundle: existing, changed: false };
    await s.write([{ type: 'put', key, value: JSON.stringify(next) }]);
    return { bundle: next, changed: true };
  });
}

export async function listBundles(s: LevelStore): Promise<StoredBundle[]> {
  s.check();
  return (await s.db.values({ gte: 'b!', lt: 'b"' }).all()).map((v) => JSON.parse(v) as StoredBundle);
}

export async function deleteBundle(s: LevelStore, trustDomain: string): Promise<void> {
  s.check();
  checkTrustDomainArg(trustDomain, 'trustDomain');
  return s.exclusive(async () => {
    if ((await s.db.get(`b!${trustDomain}`)) === undefined) {
      throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no bundle is stored for trust domain ${trustDomain}`);
    }
    const users = await s.db.keys({ gte: `f!${trustDomain}${SEP}`, lt: `f!${trustDomain}${SEP_END}`, limit: 1 }).all();
    if (users.length > 0) {
      const id = users[0]!.slice(`f!${trustDomain}${SEP}`.length);
      throw new DatastoreError(
        'ERR_DATASTORE_CONFLICT',
        `cannot delete the bundle of ${trustDomain}: registration entries federate with it (e.g. entry ${id}); update or delete them first`,
      );
    }
    await s.write([{ type: 'del', key: `b!${trustDomain}` }]);
  });
}

export async function getCaJournal(s: LevelStore): Promise<Uint8Array | undefined> {
  s.check();
  const v = await s.db.get('j!ca');
  return v === undefined ? undefined : new Uint8Array(Buffer.from(v, 'base64'));
}

export async function setCaJournal(s: LevelStore, bytes: Uint8Array): Promise<void> {
  s.check();
  const b = checkCaJournal(bytes);
  const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
  await s.exclusive(() => s.write([{ type: 'put', key: 'j!ca', value: text }]));
}
