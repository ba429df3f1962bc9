/**
 * @module datastore/level/keys
 *
 * The LevelDB key layout and the batch operations that keep a registration entry and its
 * index keys together (one batch, so indexes never disagree with records).
 *
 * Key layout (UTF-8 keys; `\0` separates parts because no SPIFFE ID, selector, trust
 * domain or entry ID can hold it):
 *   m!schema                       → "1"
 *   c!entries, c!agents            → counts, kept in the same batches as the records
 *   e!<entryId>                    → entry JSON
 *   u!<sha256(parent,id,sorted selectors)> → entryId   (uniqueness)
 *   s!<spiffeId>\0<entryId>        → ""  (by SPIFFE ID)
 *   p!<parentId>\0<entryId>        → ""  (by parent ID)
 *   l!<type:value>\0<entryId>      → ""  (by selector)
 *   f!<trust domain>\0<entryId>    → ""  (by federatesWith)
 *   o!<owner>\0<entryId>           → ""  (by owner, when set; owners hold no control character)
 *   g!<key>=<value>\0<entryId>     → ""  (by label; keys hold no '=')
 *   a!<agent spiffeId>             → agent JSON
 *   t!<sha256(token)>              → join token JSON (without the token)
 *   b!<trust domain>               → bundle JSON
 *   r!<trust domain>               → federation relationship JSON
 *   j!ca                           → CA journal, base64
 *   U!<entryId>                    → entry usage JSON (issue 11, level/usage)
 *   L!<seq, 16 digits>             → audit ledger record JSON {prevHash, hash, body}
 */
import { createHash } from 'node:crypto';
import { entryUniqueKey, type RegistrationEntry } from '../../registration/entry.js';
import { labelPair } from '../records.js';
import { formatSelector } from '../../registration/selector.js';

export const SCHEMA_VERSION = '1';
export const SEP = '\0';
export const SEP_END = '\u0001';
/** Entries fetched per getMany while filtering a listing. */
export const FETCH_CHUNK = 256;

export type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function indexKeys(
  e: Pick<RegistrationEntry, 'entryId' | 'spiffeId' | 'parentId' | 'selectors' | 'federatesWith'> & Partial<Pick<RegistrationEntry, 'owner' | 'labels'>>,
): string[] {
  const keys = [`s!${e.spiffeId}${SEP}${e.entryId}`, `p!${e.parentId}${SEP}${e.entryId}`];
  for (const s of e.selectors) keys.push(`l!${formatSelector(s)}${SEP}${e.entryId}`);
  for (const f of e.federatesWith) keys.push(`f!${f}${SEP}${e.entryId}`);
  if (e.owner !== undefined && e.owner !== '') keys.push(`o!${e.owner}${SEP}${e.entryId}`);
  for (const [k, v] of Object.entries(e.labels ?? {})) keys.push(`g!${labelPair(k, v)}${SEP}${e.entryId}`);
  return keys;
}

export function entryOps(e: RegistrationEntry, uniqueKey = entryUniqueKey(e)): Op[] {
  const ops: Op[] = [
    { type: 'put', key: `e!${e.entryId}`, value: JSON.stringify(e) },
    { type: 'put', key: `u!${uniqueKey}`, value: e.entryId },
  ];
  for (const k of indexKeys(e)) ops.push({ type: 'put', key: k, value: '' });
  return ops;
}

export function entryDelOps(e: RegistrationEntry): Op[] {
  const ops: Op[] = [
    { type: 'del', key: `e!${e.entryId}` },
    { type: 'del', key: `u!${entryUniqueKey(e)}` },
  ];
  for (const k of indexKeys(e)) ops.push({ type: 'del', key: k });
  return ops;
}
