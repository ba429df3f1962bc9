/**
 * server/crl-publisher with an injected clock, a real CA and a real LevelDB store: CRLs
 * are re-issued when the revoked set changes and at half their lifetime (cRLNumber
 * increasing), not on every poll; an expired SVID leaves the CRL and the datastore; each
 * change is announced on the hub.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { parseCrl } from '../spiffe/x509/crl.js';
import { CrlPublisher } from './crl-publisher.js';
import { ChangeHub } from './hub.js';

describe('CrlPublisher', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-crl-publisher-'));
  let ds: LevelDatastore;
  let ca: ServerCa;
  let nowMs = Date.parse('2026-12-03T12:00:00Z');
  const now = (): Date => new Date(nowMs);
  const hub = new ChangeHub();
  let notices = 0;

  beforeAll(async () => {
    ds = await openLevelDatastore({ path: join(dir, 'db'), now });
    ca = new ServerCa({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore(), now });
    await ca.init();
    hub.subscribe((t) => {
      if (t.kind === 'crl') notices++;
    });
  });
  afterAll(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-issues on change and at half its lifetime, drops expired entries', async () => {
    const p = new CrlPublisher({ ca, datastore: ds, hub, now, lifetimeSeconds: 600 });
    await p.refresh();
    expect(p.current()).toHaveLength(1);
    const first = parseCrl(p.current()[0] as Buffer);
    expect(first.entries).toEqual([]);
    expect((first.nextUpdate as Date).getTime() - first.thisUpdate.getTime()).toBe(600_000);
    expect(notices).toBe(1);

    const authorityId = ca.authorityState('x509').active?.id as string;
    const sec = Math.floor(nowMs / 1000);
    await ds.recordX509SvidIssuances([
      { serialHex: '0a01', spiffeId: 'spiffe://example.org/a', entryId: 'e', authorityId, notAfter: sec + 100 },
      { serialHex: '0a02', spiffeId: 'spiffe://example.org/b', entryId: 'e', authorityId, notAfter: sec + 1000 },
    ]);
    await ds.revokeX509Svids([
      { serialHex: '0a01', revokedAt: sec, reason: 'keyCompromise' },
      { serialHex: '0a02', revokedAt: sec, reason: 'superseded' },
    ]);
    nowMs += 1000;
    await p.refresh();
    const second = parseCrl(p.current()[0] as Buffer);
    expect(second.entries.map((e) => [e.serialHex, e.reason])).toEqual([
      ['0a01', 'keyCompromise'],
      ['0a02', 'superseded'],
    ]);
    expect((second.crlNumber as bigint) > (first.crlNumber as bigint)).toBe(true);
    expect(notices).toBe(2);

    // A poll with nothing new, before half the lifetime: nothing re-issued, no notice.
    nowMs += 60_000;
    await p.refresh();
    expect(parseCrl(p.current()[0] as Buffer).crlNumber).toBe(second.crlNumber);
    expect(notices).toBe(2);

    // 0a01 expires: it leaves the CRL and the datastore.
    nowMs += 100_000;
    await p.refresh();
    const third = parseCrl(p.current()[0] as Buffer);
    expect(third.entries.map((e) => e.serialHex)).toEqual(['0a02']);
    expect(await ds.getX509SvidIssuance('0a01')).toBeUndefined();
    expect(notices).toBe(3);

    // Half the lifetime after the last issue: re-issued with the same entries, a new number.
    nowMs += 300_000;
    await p.refresh();
    const fourth = parseCrl(p.current()[0] as Buffer);
    expect(fourth.entries.map((e) => e.serialHex)).toEqual(['0a02']);
    expect((fourth.crlNumber as bigint) > (third.crlNumber as bigint)).toBe(true);
    expect(fourth.thisUpdate.getTime()).toBeGreaterThan(third.thisUpdate.getTime());
    expect(notices).toBe(4);
  });
});
