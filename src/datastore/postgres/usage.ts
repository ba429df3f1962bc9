/**
 * @module datastore/postgres/usage
 *
 * Entry usage records on PostgreSQL (`entry_usage`, schema version 6): each batch is merged
 * in one transaction under an advisory lock, so batches from several servers sharing the
 * database serialise and lose nothing (rows that do not exist yet cannot be row-locked).
 */
import type { EntryUsage, EntryUsageDelta } from '../datastore.js';
import { checkUsageDeltas, mergeEntryUsage } from '../usage.js';
import type { PostgresStore } from './store.js';

export function recordEntryUsage(s: PostgresStore, deltas: readonly EntryUsageDelta[]): Promise<void> {
  return s.run(async () => {
    const checked = checkUsageDeltas(deltas);
    if (checked.length === 0) return;
    await s.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mayfly-usage:${s.S}`]);
      const ids = checked.map((d) => d.entryId);
      const old = await c.query<{ entry_id: string; body: string }>(`SELECT entry_id, body FROM ${s.S}.entry_usage WHERE entry_id = ANY($1::text[])`, [ids]);
      const byId = new Map(old.rows.map((r) => [r.entry_id, JSON.parse(r.body) as EntryUsage]));
      const bodies = checked.map((d) => JSON.stringify(mergeEntryUsage(byId.get(d.entryId), d)));
      await c.query(
        `INSERT INTO ${s.S}.entry_usage (entry_id, body) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (entry_id) DO UPDATE SET body = EXCLUDED.body`,
        [ids, bodies],
      );
    });
  });
}

export function listEntryUsage(s: PostgresStore): Promise<EntryUsage[]> {
  return s.run(async () => (await s.query<{ body: string }>(`SELECT body FROM ${s.S}.entry_usage ORDER BY entry_id`)).rows.map((r) => JSON.parse(r.body) as EntryUsage));
}
