/**
 * @module datastore/postgres/audit
 *
 * The audit ledger on PostgreSQL, one chain for every server sharing the database.
 *
 * Threat: two servers appending at once and forking the chain (both linking to the same
 * head). Each append runs in one transaction that first takes a transaction-scoped advisory
 * lock on the ledger, then reads the head and inserts after it; `seq` is the primary key, so
 * even a lock bypassed by hand cannot store two records at one position.
 */
import type { AuditAppendOptions, AuditLink, AuditRecordRow } from '../datastore.js';
import { checkAuditBodies, checkExpectedLast, checkAuditQuery, checkAuditSeq, linkAuditRecords } from '../audit-checks.js';
import type { PostgresStore } from './store.js';
import { checkIssuances, insertIssuances } from './svids.js';

interface Row {
  seq: string;
  prev_hash: string;
  hash: string;
  body: string;
}

const rowOf = (r: Row): AuditRecordRow => ({ seq: Number(r.seq), prevHash: r.prev_hash, hash: r.hash, body: r.body });

export function appendAuditRecords(s: PostgresStore, bodies: readonly string[], link: AuditLink, opts: AuditAppendOptions = {}): Promise<AuditRecordRow[]> {
  return s.run(async () => {
    const checked = checkAuditBodies(bodies, link);
    const issuances = opts.x509Issuances === undefined || opts.x509Issuances.length === 0 ? [] : checkIssuances(opts.x509Issuances);
    return s.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mayfly-audit:${s.S}`]);
      const head = await c.query<Row>(`SELECT seq, prev_hash, hash, body FROM ${s.S}.audit_records ORDER BY seq DESC LIMIT 1`);
      const last = head.rows[0] === undefined ? undefined : rowOf(head.rows[0]);
      checkExpectedLast(last, opts);
      const rows = linkAuditRecords(last, checked, link);
      for (let i = 0; i < rows.length; i += 1000) {
        const chunk = rows.slice(i, i + 1000);
        const params: unknown[] = [];
        const values = chunk.map((r, j) => {
          params.push(r.seq, r.prevHash, r.hash, r.body);
          return `($${4 * j + 1}, $${4 * j + 2}, $${4 * j + 3}, $${4 * j + 4})`;
        });
        await c.query(`INSERT INTO ${s.S}.audit_records (seq, prev_hash, hash, body) VALUES ${values.join(', ')}`, params);
      }
      // The issuance records commit with the audit records: never one without the other.
      if (issuances.length > 0) await insertIssuances(c, s.S, issuances);
      return rows;
    });
  });
}

export function listAuditRecords(s: PostgresStore, query: { afterSeq?: number; limit?: number }): Promise<AuditRecordRow[]> {
  return s.run(async () => {
    const q = checkAuditQuery(query);
    const r = await s.query<Row>(`SELECT seq, prev_hash, hash, body FROM ${s.S}.audit_records WHERE seq > $1 ORDER BY seq LIMIT $2`, [q.afterSeq, q.limit]);
    return r.rows.map(rowOf);
  });
}

export function lastAuditRecord(s: PostgresStore): Promise<AuditRecordRow | undefined> {
  return s.run(async () => {
    const r = await s.query<Row>(`SELECT seq, prev_hash, hash, body FROM ${s.S}.audit_records ORDER BY seq DESC LIMIT 1`);
    return r.rows[0] === undefined ? undefined : rowOf(r.rows[0]);
  });
}

export function pruneAuditRecords(s: PostgresStore, beforeSeq: number): Promise<number> {
  return s.run(async () => {
    checkAuditSeq(beforeSeq, 'beforeSeq');
    const r = await s.query(
      `DELETE FROM ${s.S}.audit_records WHERE seq < $1 AND seq < (SELECT coalesce(max(seq), 0) FROM ${s.S}.audit_records)`,
      [beforeSeq],
    );
    return r.rowCount ?? 0;
  });
}
