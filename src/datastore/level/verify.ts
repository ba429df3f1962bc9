/**
 * @module datastore/level/verify
 *
 * The consistency check behind `LevelDatastore.verifyIndexes()`: every entry has exactly
 * its index keys, every index key points at an entry that has it, and the counts match.
 */
import { entryUniqueKey, withEntryDefaults, type RegistrationEntry } from '../../registration/entry.js';
import { indexKeys } from './keys.js';
import type { LevelStore } from './store.js';

/** The problems found ([] when consistent); reads the whole store. */
export async function verifyIndexes(s: LevelStore): Promise<string[]> {
  s.check();
  const problems: string[] = [];
  const expected = new Set<string>();
  let entries = 0;
  for await (const v of s.db.values({ gte: 'e!', lt: 'e"' })) {
    const e = withEntryDefaults(JSON.parse(v) as RegistrationEntry);
    entries++;
    for (const k of indexKeys(e)) expected.add(k);
    const u = await s.db.get(`u!${entryUniqueKey(e)}`);
    if (u !== e.entryId) problems.push(`entry ${e.entryId}: uniqueness key points at ${String(u)}`);
  }
  let uniques = 0;
  for await (const _ of s.db.keys({ gte: 'u!', lt: 'u"' })) uniques++;
  if (uniques !== entries) problems.push(`${uniques} uniqueness keys for ${entries} entries`);
  for (const prefix of ['s!', 'p!', 'l!', 'f!', 'o!', 'g!']) {
    const end = prefix[0] + '"';
    for await (const k of s.db.keys({ gte: prefix, lt: end })) {
      if (!expected.delete(k)) problems.push(`index key ${JSON.stringify(k)} has no matching entry`);
    }
  }
  for (const k of expected) problems.push(`entry index key ${JSON.stringify(k)} is missing`);
  const counted = await s.count('c!entries');
  if (counted !== entries) problems.push(`entry count says ${counted}, store holds ${entries}`);
  let agents = 0;
  for await (const _ of s.db.keys({ gte: 'a!', lt: 'a"' })) agents++;
  const agentCount = await s.count('c!agents');
  if (agentCount !== agents) problems.push(`agent count says ${agentCount}, store holds ${agents}`);
  return problems;
}
