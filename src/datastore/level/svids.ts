/**
 * @module datastore/level/svids
 *
 * Issued X509-SVIDs and their revocations on LevelDB (issue 10). Key layout (two-letter
 * prefixes, outside every one-letter range of keys.ts):
 *   xi!<serial>                        → issuance JSON (spiffeId, entryId, authorityId, notAfter)
 *   xs!<spiffeId>\0<serial>            → ""  (by SPIFFE ID)
 *   xe!<entryId>\0<serial>             → ""  (by entry; not for entry-less SVIDs)
 *   xa!<agentId>\0<serial>             → ""  (by the agent it was signed for, when known)
 *   xw!<notAfter, 12 digits>\0<serial> → ""  (by expiry, for pruning)
 *   xr!<serial>                        → revocation JSON (revokedAt, reason)
 * A record and its index keys are written in one batch; pruning walks `xw!` up to the
 * cut-off, so it costs what it deletes, not what the store holds.
 */
import type { ListX509SvidIssuancesQuery, RevokedX509Svid, X509SvidIssuance } from '../datastore.js';
import { checkTime, DatastoreError } from '../records.js';
import { checkBatch, checkIssuance, checkIssuanceQuery, checkRevocation, checkSerialHex, MAX_SVID_LISTING } from '../svid-records.js';
import { SEP, SEP_END, type Op } from './keys.js';
import type { LevelStore } from './store.js';

type Stored = Omit<X509SvidIssuance, 'serialHex'>;
type StoredRevocation = { revokedAt: number; reason: string };

const pad = (n: number): string => String(n).padStart(12, '0');

function indexKeys(i: X509SvidIssuance): string[] {
  const keys = [`xs!${i.spiffeId}${SEP}${i.serialHex}`, `xw!${pad(i.notAfter)}${SEP}${i.serialHex}`];
  if (i.entryId !== '') keys.push(`xe!${i.entryId}${SEP}${i.serialHex}`);
  if (i.agentId !== undefined && i.agentId !== '') keys.push(`xa!${i.agentId}${SEP}${i.serialHex}`);
  return keys;
}

async function read(s: LevelStore, serialHex: string): Promise<X509SvidIssuance | undefined> {
  const v = await s.db.get(`xi!${serialHex}`);
  return v === undefined ? undefined : { serialHex, ...(JSON.parse(v) as Stored) };
}

/** Checks `items` (the caller's misuse throws before anything is queued). */
export function checkIssuances(items: readonly X509SvidIssuance[]): X509SvidIssuance[] {
  return checkBatch(items, 'issuances').map(checkIssuance);
}

/** The ops that store `checked` (replacing an earlier record of a serial); call inside `exclusive`. */
export async function issuanceOps(s: LevelStore, checked: readonly X509SvidIssuance[]): Promise<Op[]> {
  const ops: Op[] = [];
  const old = await s.db.getMany(checked.map((i) => `xi!${i.serialHex}`));
  checked.forEach((i, k) => {
    const was = old[k];
    if (was !== undefined) for (const key of indexKeys({ serialHex: i.serialHex, ...(JSON.parse(was) as Stored) })) ops.push({ type: 'del', key });
    const { serialHex, ...rest } = i;
    ops.push({ type: 'put', key: `xi!${serialHex}`, value: JSON.stringify(rest) });
    for (const key of indexKeys(i)) ops.push({ type: 'put', key, value: '' });
  });
  return ops;
}

export async function recordX509SvidIssuances(s: LevelStore, items: readonly X509SvidIssuance[]): Promise<void> {
  s.check();
  const checked = checkIssuances(items);
  await s.exclusive(async () => s.write(await issuanceOps(s, checked)));
}

export async function getX509SvidIssuance(s: LevelStore, serialHex: string): Promise<X509SvidIssuance | undefined> {
  s.check();
  return read(s, checkSerialHex(serialHex));
}

export async function listX509SvidIssuances(s: LevelStore, query: ListX509SvidIssuancesQuery): Promise<X509SvidIssuance[]> {
  s.check();
  const q = checkIssuanceQuery(query);
  const prefix = `${q.by === 'spiffeId' ? 'xs' : q.by === 'entryId' ? 'xe' : 'xa'}!${q.value}${SEP}`;
  const serials: string[] = [];
  for await (const k of s.db.keys({ gte: prefix, lt: `${prefix.slice(0, -1)}${SEP_END}` })) serials.push(k.slice(prefix.length));
  const out: X509SvidIssuance[] = [];
  const values = await s.db.getMany(serials.map((x) => `xi!${x}`));
  serials.forEach((serialHex, k) => {
    const v = values[k];
    if (v === undefined) return;
    const rec = { serialHex, ...(JSON.parse(v) as Stored) };
    if (rec.notAfter >= q.notExpiredAt && out.length < MAX_SVID_LISTING) out.push(rec);
  });
  return out;
}

export async function revokeX509Svids(s: LevelStore, items: readonly { serialHex: string; revokedAt: number; reason: string }[]): Promise<RevokedX509Svid[]> {
  s.check();
  const checked = checkBatch(items, 'revocations').map(checkRevocation);
  return s.exclusive(async () => {
    const issued = await s.db.getMany(checked.map((r) => `xi!${r.serialHex}`));
    const revoked = await s.db.getMany(checked.map((r) => `xr!${r.serialHex}`));
    const ops: Op[] = [];
    const out: RevokedX509Svid[] = [];
    const written = new Map<string, StoredRevocation>();
    checked.forEach((r, k) => {
      const i = issued[k];
      if (i === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no X509-SVID with serial ${r.serialHex} is recorded (never issued here, or expired and pruned)`);
      const was = revoked[k];
      const rev: StoredRevocation = was !== undefined ? (JSON.parse(was) as StoredRevocation) : (written.get(r.serialHex) ?? { revokedAt: r.revokedAt, reason: r.reason });
      if (was === undefined && !written.has(r.serialHex)) {
        written.set(r.serialHex, rev);
        ops.push({ type: 'put', key: `xr!${r.serialHex}`, value: JSON.stringify(rev) });
      }
      out.push({ serialHex: r.serialHex, ...(JSON.parse(i) as Stored), ...rev });
    });
    if (ops.length > 0) await s.write(ops);
    return out;
  });
}

export async function listRevokedX509Svids(s: LevelStore): Promise<RevokedX509Svid[]> {
  s.check();
  const revs: [string, StoredRevocation][] = [];
  for await (const [k, v] of s.db.iterator({ gte: 'xr!', lt: 'xr"' })) revs.push([k.slice(3), JSON.parse(v) as StoredRevocation]);
  const issued = await s.db.getMany(revs.map(([serial]) => `xi!${serial}`));
  const out: RevokedX509Svid[] = [];
  revs.forEach(([serialHex, rev], k) => {
    const i = issued[k];
    if (i !== undefined) out.push({ serialHex, ...(JSON.parse(i) as Stored), ...rev });
  });
  return out;
}

export async function pruneX509Svids(s: LevelStore, before: number): Promise<number> {
  s.check();
  checkTime(before, 'before');
  return s.exclusive(async () => {
    const serials: string[] = [];
    for await (const k of s.db.keys({ gte: 'xw!', lt: `xw!${pad(before)}` })) serials.push(k.slice(3 + 12 + 1));
    if (serials.length === 0) return 0;
    const values = await s.db.getMany(serials.map((x) => `xi!${x}`));
    const ops: Op[] = [];
    serials.forEach((serialHex, k) => {
      const v = values[k];
      ops.push({ type: 'del', key: `xr!${serialHex}` }, { type: 'del', key: `xi!${serialHex}` });
      if (v !== undefined) for (const key of indexKeys({ serialHex, ...(JSON.parse(v) as Stored) })) ops.push({ type: 'del', key });
    });
    await s.write(ops);
    return serials.length;
  });
}
