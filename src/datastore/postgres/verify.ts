/**
 * @module datastore/postgres/verify
 *
 * The consistency check behind `PostgresDatastore.verifyIndexes()`: every entry's unique
 * key, SPIFFE ID and parent ID columns and its selector and federation rows agree with
 * its stored body.
 */
import { entryUniqueKey } from '../../registration/entry.js';
import { formatSelector } from '../../registration/selector.js';
import { ENTRY_COLUMNS, entryFromRow, type EntryRow } from './entries.js';
import type { PostgresStore } from './store.js';

/** The problems found ([] when consistent); reads every entry. */
export function verifyIndexes(s: PostgresStore): Promise<string[]> {
  return s.run(async () => {
    const S = s.S;
    const problems: string[] = [];
    const rows = await s.query<EntryRow & { unique_key: string; spiffe_id: string; parent_id: string }>(
      `SELECT ${ENTRY_COLUMNS}, e.unique_key, e.spiffe_id, e.parent_id FROM ${S}.entries e`,
    );
    const sets = async (table: string, col: string): Promise<Map<string, string[]>> => {
      const m = new Map<string, string[]>();
      for (const r of (await s.query<{ entry_id: string; v: string }>(`SELECT entry_id, ${col} AS v FROM ${S}.${table}`)).rows) {
        const list = m.get(r.entry_id) ?? [];
        list.push(r.v);
        m.set(r.entry_id, list);
      }
      return m;
    };
    const sels = await sets('entry_selectors', 'selector');
    const feds = await sets('entry_federates_with', 'trust_domain');
    const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
    for (const r of rows.rows) {
      const e = entryFromRow(r);
      if (r.unique_key !== entryUniqueKey(e)) problems.push(`entry ${e.entryId}: unique key does not match its fields`);
      if (r.spiffe_id !== e.spiffeId || r.parent_id !== e.parentId) problems.push(`entry ${e.entryId}: SPIFFE ID or parent ID column disagrees with the entry`);
      if (!same(sels.get(e.entryId) ?? [], e.selectors.map(formatSelector))) problems.push(`entry ${e.entryId}: selector rows disagree with the entry`);
      if (!same(feds.get(e.entryId) ?? [], e.federatesWith)) problems.push(`entry ${e.entryId}: federation rows disagree with the entry`);
    }
    return problems;
  });
}
