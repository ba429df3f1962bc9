import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLevelDatastore, type LevelDatastore } from '../../../datastore/level/level.js';
import { isMayflyError } from '../../../spiffe/errors.js';
import { TrustDomain } from '../../../spiffe/id.js';
import { generateJoinToken, JoinTokenAttestor, joinTokenSelector } from './join_token.js';

const td = TrustDomain.parse('example.org');
let dir: string;
let ds: LevelDatastore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-jt-'));
  ds = await openLevelDatastore({ path: join(dir, 'db') });
});

afterEach(async () => {
  await ds.close();
  rmSync(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return isMayflyError(err) ? err.code : String(err);
  }
}

describe('JoinTokenAttestor', () => {
  it('consumes the token once and mints an agent ID unrelated to it', async () => {
    const a = new JoinTokenAttestor({ datastore: ds });
    const now = new Date('2026-03-01T00:00:00Z');
    const token = generateJoinToken();
    await ds.createJoinToken({ token, expiresAt: now.getTime() / 1000 + 60 });
    const r = await a.attest(Buffer.from(token), { trustDomain: td, now });
    expect(r.agentId.toString()).toMatch(/^spiffe:\/\/example\.org\/spire\/agent\/join_token\/[0-9a-f-]{36}$/);
    expect(r.agentId.toString()).not.toContain(token);
    expect(r.selectors).toEqual([joinTokenSelector(token)]);
    expect(r.selectors[0]?.value).not.toContain(token);
    expect(r.canReattest).toBe(false);
    expect(await failure(a.attest(Buffer.from(token), { trustDomain: td, now }))).toBe('ERR_JOIN_TOKEN_INVALID');
  });

  it('of 20 concurrent attestations with one token exactly one wins', async () => {
    const a = new JoinTokenAttestor({ datastore: ds });
    const now = new Date();
    const token = generateJoinToken();
    await ds.createJoinToken({ token, expiresAt: Math.floor(now.getTime() / 1000) + 60 });
    const results = await Promise.all(Array.from({ length: 20 }, () => failure(a.attest(Buffer.from(token), { trustDomain: td, now }))));
    expect(results.filter((r) => r === undefined)).toHaveLength(1);
    expect(results.filter((r) => r === 'ERR_JOIN_TOKEN_INVALID')).toHaveLength(19);
  });

  it('refuses expired, unknown, empty, oversized and odd tokens the same way', async () => {
    const a = new JoinTokenAttestor({ datastore: ds });
    const now = new Date('2026-03-01T00:00:00Z');
    const token = generateJoinToken();
    await ds.createJoinToken({ token, expiresAt: now.getTime() / 1000 });
    for (const payload of [token, generateJoinToken(), '', 'x'.repeat(257), 'a b', 'tok\n']) {
      expect(await failure(a.attest(Buffer.from(payload), { trustDomain: td, now }))).toBe('ERR_JOIN_TOKEN_INVALID');
    }
  });
});
