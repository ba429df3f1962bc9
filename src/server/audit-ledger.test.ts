import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeRecordBody, type AuditRecord } from '../audit/record.js';
import { verifyAuditChain } from '../audit/verify.js';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { SpiffeId } from '../spiffe/id.js';
import { startServerAudit } from './audit-ledger.js';
import { DEFAULT_AUDIT } from './config-audit.js';
import { SILENT_LOGGER } from './ports.js';

const SERVER = SpiffeId.parse('spiffe://example.org/spire/server');
const ADMIN = { kind: 'admin', id: 'admin-socket' } as const;

async function all(ds: LevelDatastore): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for (;;) {
    const page = await ds.listAuditRecords({ afterSeq: out.at(-1)?.seq ?? 0, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}

describe('startServerAudit', () => {
  let dir: string;
  let ds: LevelDatastore;
  let ca: ServerCa;
  let clock = new Date('2030-01-01T00:00:00Z');
  const now = (): Date => clock;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mayfly-audit-ledger-'));
    ds = await openLevelDatastore({ path: join(dir, 'data'), now });
    ca = new ServerCa({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore(), now, caTtlSeconds: 10 * 365 * 86400 });
    await ca.init();
  });
  afterEach(async () => {
    ca.stop();
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the start with its JWT keys, checkpoints at once, and records CA steps with the new JWT key', async () => {
    const audit = await startServerAudit({ datastore: ds, ca, serverId: SERVER, instanceId: 's1', settings: DEFAULT_AUDIT, logger: SILENT_LOGGER, now });
    await ca.prepareAuthority('jwt');
    await new Promise((r) => setImmediate(r));
    await audit.stop();
    const bodies = (await all(ds)).map((r) => decodeRecordBody(r.body)!);
    expect(bodies.map((b) => b.kind)).toEqual(['server.started', 'checkpoint', 'authority', 'checkpoint']);
    const step = bodies[2] as { authority: string; step: string; publicJwk?: unknown };
    expect(step).toMatchObject({ authority: 'jwt', step: 'prepared' });
    expect(step.publicJwk).toBeDefined();
    const v = await verifyAuditChain({ records: await all(ds), trustedKeys: ca.getBundle().jwtAuthorities, signerId: SERVER.toString() });
    expect(v).toMatchObject({ ok: true, checkpoints: 2, unsignedTail: 0 });
  });

  it('prunes past the retention back to a checkpoint, and what is left verifies from it', async () => {
    const audit = await startServerAudit({ datastore: ds, ca, serverId: SERVER, instanceId: 's1', settings: { ...DEFAULT_AUDIT, checkpointEvery: 3, retentionSeconds: 86400 }, logger: SILENT_LOGGER, now });
    for (let i = 0; i < 7; i++) await audit.ledger.record(ADMIN, { kind: 'admin', method: 'Old', details: { i } });
    clock = new Date(clock.getTime() + 2 * 86400_000);
    for (let i = 0; i < 4; i++) await audit.ledger.record(ADMIN, { kind: 'admin', method: 'New', details: { i } });
    const before = await all(ds);
    const pruned = await audit.prune();
    expect(pruned).toBeGreaterThan(0);
    const after = await all(ds);
    expect(after.length).toBe(before.length - pruned);
    // The first record kept is a checkpoint written before the cutoff; nothing newer than the cutoff went.
    expect(decodeRecordBody(after[0]!.body)!.kind).toBe('checkpoint');
    expect(after.filter((r) => decodeRecordBody(r.body)!.kind === 'admin' && (decodeRecordBody(r.body) as { method: string }).method === 'New')).toHaveLength(4);
    const v = await verifyAuditChain({ records: after, trustedKeys: ca.getBundle().jwtAuthorities, signerId: SERVER.toString() });
    expect(v.ok).toBe(true);
    await audit.stop();
  });
});
