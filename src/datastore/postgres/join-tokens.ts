/**
 * @module datastore/postgres/join-tokens
 *
 * Join tokens on PostgreSQL: created once, consumed once, purged when expired.
 *
 * Threats it stops:
 * - join token replay across servers: consumption is one `DELETE ... RETURNING`, so of
 *   any number of concurrent consumers on any number of connections exactly one gets the row.
 * - tokens leaked from a database dump: they are stored as SHA-256 only.
 */
import { MayflyError } from '../../spiffe/errors.js';
import type { JoinToken } from '../datastore.js';
import { checkJoinToken, checkTime, DatastoreError } from '../records.js';
import { sha256, type PostgresStore } from './store.js';

export function createJoinToken(s: PostgresStore, input: { token: string; expiresAt: number }): Promise<JoinToken> {
  return s.run(async () => {
    if (typeof input !== 'object' || input === null) throw new TypeError('join token must be an object');
    const token = checkJoinToken(input.token);
    const expiresAt = checkTime(input.expiresAt, 'join token expiresAt');
    const createdAt = s.seconds();
    const r = await s.query(`INSERT INTO ${s.S}.join_tokens (token_sha256, expires_at, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [
      sha256(token),
      expiresAt,
      createdAt,
    ]);
    if (r.rowCount !== 1) throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', 'that join token already exists');
    return { token, expiresAt, createdAt };
  });
}

export function consumeJoinToken(s: PostgresStore, token: string, now: number): Promise<JoinToken> {
  return s.run(async () => {
    checkTime(now, 'now');
    const rejected = (): MayflyError => new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is unknown, already used or expired');
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw rejected();
    // One statement: of concurrent consumers on any connection, only one deletes the row.
    // Deleted whether valid or expired: an expired token is dead either way.
    const r = await s.query<{ expires_at: string; created_at: string }>(
      `DELETE FROM ${s.S}.join_tokens WHERE token_sha256 = $1 RETURNING expires_at, created_at`,
      [sha256(token)],
    );
    const row = r.rows[0];
    if (row === undefined || now >= Number(row.expires_at)) throw rejected();
    return { token, expiresAt: Number(row.expires_at), createdAt: Number(row.created_at) };
  });
}

export function purgeExpiredJoinTokens(s: PostgresStore, before: number): Promise<number> {
  return s.run(async () => {
    checkTime(before, 'before');
    return (await s.query(`DELETE FROM ${s.S}.join_tokens WHERE expires_at <= $1`, [before])).rowCount ?? 0;
  });
}
