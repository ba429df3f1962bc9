/**
 * @module datastore/level/usage
 *
 * Entry usage records on LevelDB (`U!<entryId>` → JSON): each batch is merged and written
 * under the store's write queue, so concurrent batches lose nothing.
 */
import type { EntryUsage, EntryUsageDelta } from '../datastore.js';
import { checkUsageDeltas, mergeEntryUsage } from '../usage.js';
import type { Op } from './keys.js';
import type { LevelStore } from './store.js';

export async function recordEntryUsage(s: LevelStore, deltas: readonly EntryUsageDelta[]): Promise<void> {
  s.check();
  const checked = checkUsageDeltas(deltas);
  if (checked.length === 0) return;
  await s.exclusive(async () => {
    const old = await s.db.getMany(checked.map((d) => `U!${d.entryId}`));
    const ops: Op[] = checked.map((d, k) => {
      const was = old[k];
      const merged = mergeEntryUsage(was === undefined ? undefined : (JSON.parse(was) as EntryUsage), d);
      return { type: 'put', key: `U!${d.entryId}`, value: JSON.stringify(merged) };
    });
    await s.write(ops);
  });
}

export async function listEntryUsage(s: LevelStore): Promise<EntryUsage[]> {
  s.check();
  return (await s.db.values({ gte: 'U!', lt: 'U"' }).all()).map((v) => JSON.parse(v) as EntryUsage);
}
