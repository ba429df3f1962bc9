/**
 * @module datastore/level/join-tokens
 *
 * Join tokens on LevelDB: created once, consumed once (inside the write queue, so two
 * attestations racing with one token cannot both win), purged when expired.
 *
 * Threat: tokens leaked from a copy of the data directory. A token is stored under its
 * SHA-256 (`t!<sha256(token)>`), never in clear.
 */
import { MayflyError } from '../../spiffe/errors.js';
import type { JoinToken } from '../datastore.js';
import { checkJoinToken, checkTime, DatastoreError } from '../records.js';
import { sha256, type Op } from './keys.js';
import type { LevelStore } from './store.js';

export async function createJoinToken(s: LevelStore, input: { token: string; expiresAt: number }): Promise<JoinToken> {
  s.check();
  if (typeof input !== 'object' || input === null) throw new TypeError('join token must be an object');
  const token = checkJoinToken(input.token);
  const expiresAt = checkTime(input.expiresAt, 'join token expiresAt');
  const key = `t!${sha256(token)}`;
  return s.exclusive(async () => {
    if ((await s.db.get(key)) !== undefined) throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', 'that join token already exists');
    const createdAt = s.seconds();
    await s.write([{ type: 'put', key, value: JSON.stringify({ expiresAt, createdAt }) }]);
    return { token, expiresAt, createdAt };
  });
}

export async function consumeJoinToken(s: LevelStore, token: string, now: number): Promise<JoinToken> {
  s.check();
  checkTime(now, 'now');
  const rejected = (): MayflyError => new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is unknown, already used or expired');
  if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw rejected();
  const key = `t!${sha256(token)}`;
  return s.exclusive(async () => {
    const v = await s.db.get(key);
    if (v === undefined) throw rejected();
    // Deleted whether valid or expired: an expired token is dead either way.
    await s.write([{ type: 'del', key }]);
    const rec = JSON.parse(v) as { expiresAt: number; createdAt: number };
    if (now >= rec.expiresAt) throw rejected();
    return { token, expiresAt: rec.expiresAt, createdAt: rec.createdAt };
  });
}

export async function purgeExpiredJoinTokens(s: LevelStore, before: number): Promise<number> {
  s.check();
  checkTime(before, 'before');
  return s.exclusive(async () => {
    const ops: Op[] = [];
    for await (const [k, v] of s.db.iterator({ gte: 't!', lt: 't"' })) {
      if ((JSON.parse(v) as { expiresAt: number }).expiresAt <= before) ops.push({ type: 'del', key: k });
    }
    if (ops.length > 0) await s.write(ops);
    return ops.length;
  });
}
