/**
 * @module datastore/postgres/bundles
 *
 * Trust bundles and the CA journal on PostgreSQL. Both are stored as bytes, exactly as
 * given. A bundle that registration entries federate with cannot be deleted: the check and
 * the delete are one statement, so a committed entry always blocks it.
 */
import { applyBundleMerge, checkBundleMerge } from '../bundle-merge.js';
import type { BundleMerge, StoredBundle } from '../datastore.js';
import { checkBundleInput, checkCaJournal, checkTrustDomainArg, DatastoreError } from '../records.js';
import type { PostgresStore } from './store.js';

function bundleFromRow(r: { trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }): StoredBundle {
  return { trustDomain: r.trust_domain, bundle: r.bundle.toString('utf8'), sequence: Number(r.sequence), updatedAt: Number(r.updated_at) };
}

export function getBundle(s: PostgresStore, trustDomain: string): Promise<StoredBundle | undefined> {
  return s.run(async () => {
    checkTrustDomainArg(trustDomain, 'trustDomain');
    const r = await s.query<{ trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }>(
      `SELECT trust_domain, bundle, sequence, updated_at FROM ${s.S}.bundles WHERE trust_domain = $1`,
      [trustDomain],
    );
    return r.rows[0] === undefined ? undefined : bundleFromRow(r.rows[0]);
  });
}

export function setBundle(s: PostgresStore, input: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle> {
  return s.run(async () => {
    checkBundleInput(input);
    const rec: StoredBundle = { trustDomain: input.trustDomain, bundle: input.bundle, sequence: input.sequence, updatedAt: s.seconds() };
    // Stored as UTF-8 bytes: text columns cannot hold NUL, and the datastore keeps the bundle exactly as given.
    await s.query(
      `INSERT INTO ${s.S}.bundles (trust_domain, bundle, sequence, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (trust_domain) DO UPDATE SET bundle = EXCLUDED.bundle, sequence = EXCLUDED.sequence, updated_at = EXCLUDED.updated_at`,
      [rec.trustDomain, Buffer.from(rec.bundle, 'utf8'), rec.sequence, rec.updatedAt],
    );
    return rec;
  });
}

/**
 * Read, merge and write in one transaction holding the row lock (`SELECT ... FOR UPDATE`),
 * so a concurrent merge from any server waits and then starts from this one's result. When
 * there is no row yet, the insert is `ON CONFLICT DO NOTHING`: losing that race to another
 * server's insert reruns the merge against the row it wrote.
 */
export function mergeBundle(s: PostgresStore, merge: BundleMerge): Promise<{ bundle: StoredBundle | undefined; changed: boolean }> {
  return s.run(async () => {
    const checked = checkBundleMerge(merge);
    const S = s.S;
    for (let attempt = 1; ; attempt++) {
      const out = await s.tx(async (c) => {
        const r = await c.query<{ trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }>(
          `SELECT trust_domain, bundle, sequence, updated_at FROM ${S}.bundles WHERE trust_domain = $1 FOR UPDATE`,
          [checked.trustDomain.name],
        );
        const existing = r.rows[0] === undefined ? undefined : bundleFromRow(r.rows[0]);
        const next = applyBundleMerge(existing, merge, checked, s.seconds());
        if (next === undefined) return { bundle: existing, changed: false };
        const params = [next.trustDomain, Buffer.from(next.bundle, 'utf8'), next.sequence, next.updatedAt];
        if (existing !== undefined) {
          await c.query(`UPDATE ${S}.bundles SET bundle = $2, sequence = $3, updated_at = $4 WHERE trust_domain = $1`, params);
          return { bundle: next, changed: true };
        }
        const ins = await c.query(`INSERT INTO ${S}.bundles (trust_domain, bundle, sequence, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (trust_domain) DO NOTHING`, params);
        return ins.rowCount === 1 ? { bundle: next, changed: true } : undefined;
      });
      if (out !== undefined) return out;
      if (attempt >= 3) throw new DatastoreError('ERR_DATASTORE_UNAVAILABLE', `merging into the bundle of ${checked.trustDomain.name} kept racing with its creation; try again`);
    }
  });
}

export function listBundles(s: PostgresStore): Promise<StoredBundle[]> {
  return s.run(async () => {
    const r = await s.query<{ trust_domain: string; bundle: Buffer; sequence: string; updated_at: string }>(
      `SELECT trust_domain, bundle, sequence, updated_at FROM ${s.S}.bundles ORDER BY trust_domain`,
    );
    return r.rows.map(bundleFromRow);
  });
}

export function deleteBundle(s: PostgresStore, trustDomain: string): Promise<void> {
  return s.run(async () => {
    checkTrustDomainArg(trustDomain, 'trustDomain');
    const S = s.S;
    // One statement, so an entry that federates with it and was committed before this
    // statement began always blocks the delete.
    const r = await s.query(
      `DELETE FROM ${S}.bundles WHERE trust_domain = $1 AND NOT EXISTS (SELECT 1 FROM ${S}.entry_federates_with WHERE trust_domain = $1)`,
      [trustDomain],
    );
    if (r.rowCount === 1) return;
    const users = await s.query<{ entry_id: string }>(`SELECT entry_id FROM ${S}.entry_federates_with WHERE trust_domain = $1 ORDER BY entry_id LIMIT 1`, [
      trustDomain,
    ]);
    const exists = await s.query(`SELECT 1 FROM ${S}.bundles WHERE trust_domain = $1`, [trustDomain]);
    if (exists.rowCount === 0) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no bundle is stored for trust domain ${trustDomain}`);
    const id = users.rows[0]?.entry_id ?? '(one written meanwhile)';
    throw new DatastoreError(
      'ERR_DATASTORE_CONFLICT',
      `cannot delete the bundle of ${trustDomain}: registration entries federate with it (e.g. entry ${id}); update or delete them first`,
    );
  });
}

export function getCaJournal(s: PostgresStore): Promise<Uint8Array | undefined> {
  return s.run(async () => {
    const r = await s.query<{ bytes: Buffer }>(`SELECT bytes FROM ${s.S}.ca_journal WHERE id = 1`);
    const b = r.rows[0]?.bytes;
    return b === undefined ? undefined : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  });
}

export function setCaJournal(s: PostgresStore, bytes: Uint8Array): Promise<void> {
  return s.run(async () => {
    const b = checkCaJournal(bytes);
    await s.query(`INSERT INTO ${s.S}.ca_journal (id, bytes) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET bytes = EXCLUDED.bytes`, [
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ]);
  });
}
