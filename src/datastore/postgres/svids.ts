/**
 * @module datastore/postgres/svids
 *
 * Issued X509-SVIDs and their revocations on PostgreSQL (issue 10): one row per serial in
 * `x509_svids` (schema version 2), the revocation as two nullable columns of it, so a
 * revocation can never name a serial that was not issued, and pruning is one DELETE on
 * the `not_after` index. Revoking is one UPDATE that sets the columns only where they are
 * NULL, so of concurrent revocations of one serial (on any server) the first one stays.
 */
import type { ListX509SvidIssuancesQuery, RevokedX509Svid, X509SvidIssuance } from '../datastore.js';
import { checkTime, DatastoreError } from '../records.js';
import { checkBatch, checkIssuance, checkIssuanceQuery, checkRevocation, checkSerialHex, MAX_SVID_LISTING } from '../svid-records.js';
import type { PostgresStore } from './store.js';

interface Row {
  serial_hex: string;
  spiffe_id: string;
  entry_id: string;
  authority_id: string;
  not_after: string;
  agent_id: string;
  revoked_at: string | null;
  reason: string | null;
}

const issuanceOf = (r: Row): X509SvidIssuance => ({
  serialHex: r.serial_hex,
  spiffeId: r.spiffe_id,
  entryId: r.entry_id,
  authorityId: r.authority_id,
  notAfter: Number(r.not_after),
  ...(r.agent_id !== '' ? { agentId: r.agent_id } : {}),
});
const revokedOf = (r: Row): RevokedX509Svid => ({ ...issuanceOf(r), revokedAt: Number(r.revoked_at), reason: r.reason ?? 'unspecified' });

/** Checks `items` (the caller's misuse throws before anything is sent). */
export function checkIssuances(items: readonly X509SvidIssuance[]): X509SvidIssuance[] {
  return checkBatch(items, 'issuances').map(checkIssuance);
}

/** Stores `checked` through `c` (the pool, or a transaction's client). */
export async function insertIssuances(c: { query(sql: string, params: unknown[]): Promise<unknown> }, schema: string, checked: readonly X509SvidIssuance[]): Promise<void> {
  // The last record of a serial wins, as in the LevelDB store (one INSERT may not touch a row twice).
  const bySerial = new Map(checked.map((i) => [i.serialHex, i]));
  const rows = [...bySerial.values()];
  await c.query(
    `INSERT INTO ${schema}.x509_svids (serial_hex, spiffe_id, entry_id, authority_id, not_after, agent_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
     ON CONFLICT (serial_hex) DO UPDATE SET spiffe_id = EXCLUDED.spiffe_id, entry_id = EXCLUDED.entry_id,
       authority_id = EXCLUDED.authority_id, not_after = EXCLUDED.not_after, agent_id = EXCLUDED.agent_id`,
    [rows.map((r) => r.serialHex), rows.map((r) => r.spiffeId), rows.map((r) => r.entryId), rows.map((r) => r.authorityId), rows.map((r) => r.notAfter), rows.map((r) => r.agentId ?? '')],
  );
}

export function recordX509SvidIssuances(s: PostgresStore, items: readonly X509SvidIssuance[]): Promise<void> {
  return s.run(async () => insertIssuances(s, s.S, checkIssuances(items)));
}

export function getX509SvidIssuance(s: PostgresStore, serialHex: string): Promise<X509SvidIssuance | undefined> {
  return s.run(async () => {
    const r = await s.query<Row>(`SELECT * FROM ${s.S}.x509_svids WHERE serial_hex = $1`, [checkSerialHex(serialHex)]);
    return r.rows[0] === undefined ? undefined : issuanceOf(r.rows[0]);
  });
}

export function listX509SvidIssuances(s: PostgresStore, query: ListX509SvidIssuancesQuery): Promise<X509SvidIssuance[]> {
  return s.run(async () => {
    const q = checkIssuanceQuery(query);
    const column = q.by === 'spiffeId' ? 'spiffe_id' : q.by === 'entryId' ? 'entry_id' : 'agent_id';
    const r = await s.query<Row>(`SELECT * FROM ${s.S}.x509_svids WHERE ${column} = $1 AND not_after >= $2 ORDER BY serial_hex LIMIT ${MAX_SVID_LISTING}`, [q.value, q.notExpiredAt]);
    return r.rows.map(issuanceOf);
  });
}

export function revokeX509Svids(s: PostgresStore, items: readonly { serialHex: string; revokedAt: number; reason: string }[]): Promise<RevokedX509Svid[]> {
  return s.run(async () => {
    const checked = checkBatch(items, 'revocations').map(checkRevocation);
    return s.tx(async (c) => {
      const serials = [...new Set(checked.map((r) => r.serialHex))];
      const found = await c.query<Row>(`SELECT * FROM ${s.S}.x509_svids WHERE serial_hex = ANY($1::text[]) FOR UPDATE`, [serials]);
      const rows = new Map(found.rows.map((r) => [r.serial_hex, r]));
      const missing = serials.find((x) => !rows.has(x));
      if (missing !== undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no X509-SVID with serial ${missing} is recorded (never issued here, or expired and pruned)`);
      const first = new Map<string, { serialHex: string; revokedAt: number; reason: string }>();
      for (const r of checked) if (!first.has(r.serialHex)) first.set(r.serialHex, r);
      const fresh = [...first.values()].filter((r) => rows.get(r.serialHex)?.revoked_at === null);
      if (fresh.length > 0) {
        const upd = await c.query<Row>(
          `UPDATE ${s.S}.x509_svids AS t SET revoked_at = u.revoked_at, reason = u.reason
           FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(serial_hex, revoked_at, reason)
           WHERE t.serial_hex = u.serial_hex AND t.revoked_at IS NULL RETURNING t.*`,
          [fresh.map((r) => r.serialHex), fresh.map((r) => r.revokedAt), fresh.map((r) => r.reason)],
        );
        for (const r of upd.rows) rows.set(r.serial_hex, r);
      }
      return checked.map((r) => revokedOf(rows.get(r.serialHex) as Row));
    });
  });
}

export function listRevokedX509Svids(s: PostgresStore): Promise<RevokedX509Svid[]> {
  return s.run(async () => {
    const r = await s.query<Row>(`SELECT * FROM ${s.S}.x509_svids WHERE revoked_at IS NOT NULL ORDER BY serial_hex`);
    return r.rows.map(revokedOf);
  });
}

export function pruneX509Svids(s: PostgresStore, before: number): Promise<number> {
  return s.run(async () => {
    checkTime(before, 'before');
    return (await s.query(`DELETE FROM ${s.S}.x509_svids WHERE not_after < $1`, [before])).rowCount ?? 0;
  });
}
