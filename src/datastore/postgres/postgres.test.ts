import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EntryInput, RegistrationEntry } from '../../registration/entry.js';
import { isMayflyError, type ErrorCode } from '../../spiffe/errors.js';
import { runDatastoreConformance } from '../conformance.js';
import type { Datastore } from '../datastore.js';
import { expectAcknowledgedWrites, killWriterMidFlight } from '../testdata/kill-check.js';
import { openPostgresDatastore, POSTGRES_SCHEMA_VERSION, type DatastoreChange, type PostgresDatastore } from './postgres.js';
import { sql, startTestPostgres, type TestPostgres } from './testing.js';

const here = dirname(fileURLToPath(import.meta.url));

// One real cluster for this file; every store gets its own schema.
let cluster: TestPostgres;
beforeAll(async () => {
  cluster = await startTestPostgres();
});
afterAll(async () => {
  await cluster?.stop();
});

runDatastoreConformance('postgres', async () => {
  const schema = cluster.freshSchema();
  let current: Datastore = await openPostgresDatastore({ pool: cluster.poolConfig, schema });
  let sibling: Datastore | undefined;
  return {
    ds: current,
    reopen: async () => {
      current = await openPostgresDatastore({ pool: cluster.poolConfig, schema });
      return current;
    },
    // Another server's pool on the same schema.
    sibling: async () => (sibling ??= await openPostgresDatastore({ connectionString: cluster.connectionString, schema })),
    cleanup: async () => {
      await sibling?.close();
      await current.close();
      await sql(cluster, `DROP SCHEMA "${schema}" CASCADE`);
    },
  };
});

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (isMayflyError(err)) return err.code;
    throw err;
  }
}

const entry = (n: number, over: Partial<EntryInput> = {}): EntryInput => ({
  spiffeId: `spiffe://example.org/w/${n}`,
  parentId: 'spiffe://example.org/agent/1',
  selectors: [{ type: 'unix', value: `uid:${n}` }],
  ...over,
});

describe('PostgresDatastore', () => {
  const open: PostgresDatastore[] = [];
  afterEach(async () => {
    for (const ds of open.splice(0)) await ds.close();
  });
  /** Two datastores (two pools: two "servers") on one fresh schema. */
  const twoServers = async (): Promise<{ a: PostgresDatastore; b: PostgresDatastore; schema: string }> => {
    const schema = cluster.freshSchema();
    const [a, b] = await Promise.all([
      openPostgresDatastore({ pool: cluster.poolConfig, schema }),
      openPostgresDatastore({ connectionString: cluster.connectionString, schema }),
    ]);
    open.push(a, b);
    return { a, b, schema };
  };

  it('lets exactly one of racing duplicate creates across two servers win, and losers name the winner', async () => {
    const { a, b } = await twoServers();
    const settled = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).createEntry(entry(7))));
    const won = settled.filter((s) => s.status === 'fulfilled') as PromiseFulfilledResult<RegistrationEntry>[];
    expect(won).toHaveLength(1);
    for (const s of settled) {
      if (s.status === 'rejected') {
        expect(isMayflyError(s.reason, 'ERR_DATASTORE_ALREADY_EXISTS'), String(s.reason)).toBe(true);
        expect((s.reason as { existingEntryId?: string }).existingEntryId).toBe(won[0]!.value.entryId);
      }
    }
    expect(await a.countEntries()).toBe(1);
    expect(await b.getEntry(won[0]!.value.entryId)).toEqual(won[0]!.value);
  });

  it('creates each entry exactly once when two servers batch-create overlapping sets in opposite orders', async () => {
    const { a, b } = await twoServers();
    const inputs = Array.from({ length: 600 }, (_, i) => entry(i));
    const [ra, rb] = await Promise.all([a.createEntries(inputs), b.createEntries([...inputs].reverse())]);
    const rbInOrder = [...rb].reverse();
    for (let i = 0; i < inputs.length; i++) {
      const x = ra[i]!;
      const y = rbInOrder[i]!;
      // Exactly one of the two created it; the other names it.
      expect((x.entry === undefined) !== (y.entry === undefined), `entry ${i}`).toBe(true);
      const winner = (x.entry ?? y.entry)!;
      const loser = x.entry === undefined ? x : y;
      expect(loser.error?.code).toBe('ERR_DATASTORE_ALREADY_EXISTS');
      expect((loser.error as { existingEntryId?: string }).existingEntryId).toBe(winner.entryId);
    }
    expect(await a.countEntries()).toBe(600);
    expect(await b.verifyIndexes()).toEqual([]);
  });

  it('lets exactly one of 20 concurrent join-token consumes across two servers win', async () => {
    const { a, b } = await twoServers();
    await a.createJoinToken({ token: 'shared-race', expiresAt: 2000 });
    const settled = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).consumeJoinToken('shared-race', 1000)));
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
    for (const s of settled) if (s.status === 'rejected') expect(isMayflyError(s.reason, 'ERR_JOIN_TOKEN_INVALID')).toBe(true);
    expect(await codeOf(b.consumeJoinToken('shared-race', 1000))).toBe('ERR_JOIN_TOKEN_INVALID');
  });

  it('refuses a stale revision written through another server, and one of concurrent updates across servers wins', async () => {
    const { a, b } = await twoServers();
    const e = await a.createEntry(entry(1));
    const seenByA = (await a.getEntry(e.entryId))!;
    const viaB = await b.updateEntry({ ...e, hint: 'from b' }, { expectedRevision: 0 });
    expect(viaB.revision).toBe(1);
    expect(await codeOf(a.updateEntry({ ...seenByA, hint: 'from a' }, { expectedRevision: seenByA.revision }))).toBe('ERR_DATASTORE_CONFLICT');
    expect((await a.getEntry(e.entryId))!.hint).toBe('from b');

    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).updateEntry({ ...e, hint: `h${i}` }, { expectedRevision: 1 })));
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
    for (const s of settled) if (s.status === 'rejected') expect(isMayflyError(s.reason, 'ERR_DATASTORE_CONFLICT')).toBe(true);
    expect((await b.getEntry(e.entryId))!.revision).toBe(2);
  });

  it('sees the other server’s writes at once: agents, bundles, CA journal, deleteBundle guard', async () => {
    const { a, b } = await twoServers();
    await a.createAgent({ spiffeId: 'spiffe://example.org/agent/x', attestationType: 'join_token', serialNumber: '01', certNotAfter: 10 });
    expect(await codeOf(b.createAgent({ spiffeId: 'spiffe://example.org/agent/x', attestationType: 'join_token', serialNumber: '02', certNotAfter: 10 }))).toBe(
      'ERR_DATASTORE_ALREADY_EXISTS',
    );
    await b.setBundle({ trustDomain: 'other.org', bundle: '{"keys":[]}', sequence: 1 });
    await a.createEntry(entry(1, { federatesWith: ['other.org'] }));
    expect(await codeOf(b.deleteBundle('other.org'))).toBe('ERR_DATASTORE_CONFLICT');
    await b.setCaJournal(new Uint8Array([4, 5, 6]));
    expect([...(await a.getCaJournal())!]).toEqual([4, 5, 6]);
  });

  it("tells a watcher of every other server's committed changes, and only committed ones", async () => {
    const { a, b, schema } = await twoServers();
    const seen: DatastoreChange[] = [];
    let wake: (() => void) | undefined;
    b.watch((c) => {
      seen.push(c);
      wake?.();
    });
    const waitFor = async (pred: (c: DatastoreChange) => boolean): Promise<void> => {
      while (!seen.some(pred)) await new Promise<void>((r) => (wake = r));
    };
    // watch() connects in the background: write probes until one is heard.
    for (let n = 1000; !seen.some((c) => c.kind === 'entries'); n++) {
      await a.createEntry(entry(n));
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
    const probe = await a.createEntry(entry(0));
    // Notices arrive in commit order: once the agent's is heard, the probe's was too.
    await a.createAgent({ spiffeId: 'spiffe://example.org/agent/w', attestationType: 'join_token', serialNumber: '01', certNotAfter: 10 });
    await waitFor((c) => c.kind === 'agent' && c.agentId === 'spiffe://example.org/agent/w');
    seen.length = 0;
    await a.setBundle({ trustDomain: 'other.org', bundle: '{"keys":[]}', sequence: 1 });
    await waitFor((c) => c.kind === 'bundles');
    expect(seen).toEqual([{ kind: 'bundles' }]);
    await a.deleteEntry(probe.entryId);
    await waitFor((c) => c.kind === 'entries');

    // A transaction that rolls back announces nothing.
    seen.length = 0;
    await sql(cluster, `BEGIN; DELETE FROM "${schema}".entries; ROLLBACK`);
    await a.updateAgent('spiffe://example.org/agent/w', { banned: true });
    await waitFor((c) => c.kind === 'agent');
    expect(seen.filter((c) => c.kind === 'entries')).toEqual([]);

    // The listening connection dies: it reconnects and, since notices may have been
    // missed meanwhile, announces entries and bundles; later changes are heard again.
    const killed = await sql(cluster, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN "mayfly_${schema}"'`);
    expect(killed.rowCount).toBe(1);
    seen.length = 0;
    await waitFor((c) => c.kind === 'bundles');
    expect(seen).toEqual([{ kind: 'entries' }, { kind: 'bundles' }]);
    await a.updateAgent('spiffe://example.org/agent/w', { banned: false });
    await waitFor((c) => c.kind === 'agent');
  });

  it('creates the schema once when two servers open a fresh database together, and refuses a newer schema version', async () => {
    const { a, schema } = await twoServers();
    const v = await sql(cluster, `SELECT version FROM "${schema}".mayfly_schema_version`);
    expect(v.rows).toEqual([{ version: POSTGRES_SCHEMA_VERSION }]);
    await a.createEntry(entry(1));

    await sql(cluster, `UPDATE "${schema}".mayfly_schema_version SET version = $1`, [POSTGRES_SCHEMA_VERSION + 1]);
    const err = await openPostgresDatastore({ pool: cluster.poolConfig, schema }).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_DATASTORE_UNAVAILABLE'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`schema version ${POSTGRES_SCHEMA_VERSION + 1}, newer than this build's ${POSTGRES_SCHEMA_VERSION}`));
  });

  it('migrates a version 1 schema (before the audit ledger, federation relationships, issued X509-SVIDs and entry owners) to the current version, keeping its data', async () => {
    const schema = cluster.freshSchema();
    const first = await openPostgresDatastore({ pool: cluster.poolConfig, schema });
    const e = await first.createEntry(entry(1));
    await first.close();
    // What a version 1 database looks like: none of the tables later migrations add.
    for (const t of ['entry_usage', 'x509_svids', 'federation_relationships', 'audit_records']) await sql(cluster, `DROP TABLE "${schema}".${t}`);
    // ... nor the owner and label columns (issue 11), and entry bodies without owner, labels and purpose.
    await sql(cluster, `ALTER TABLE "${schema}".entries DROP COLUMN owner, DROP COLUMN labels`);
    await sql(cluster, `UPDATE "${schema}".entries SET body = (body::jsonb - 'owner' - 'labels' - 'purpose')::text`);
    await sql(cluster, `UPDATE "${schema}".mayfly_schema_version SET version = 1`);
    const ds = await openPostgresDatastore({ pool: cluster.poolConfig, schema });
    open.push(ds);
    expect((await sql(cluster, `SELECT version FROM "${schema}".mayfly_schema_version`)).rows).toEqual([{ version: POSTGRES_SCHEMA_VERSION }]);
    expect(await ds.getEntry(e.entryId)).toEqual(e);
    // Each migration's table works.
    expect((await ds.appendAuditRecords(['{"after":"migration"}'], () => 'a'.repeat(64)))[0]!.seq).toBe(1);
    const r = await ds.createFederationRelationship({ trustDomain: 'peer.org', bundleEndpointUrl: 'https://peer.org/', bundleEndpointProfile: 'https_web', endpointSpiffeId: '' });
    expect(await ds.getFederationRelationship('peer.org')).toEqual(r);
    const owned = await ds.updateEntry({ ...e, owner: 'team-a', labels: { env: 'prod' } }, { expectedRevision: 0 });
    expect((await ds.listEntries({ byOwner: 'team-a', byLabels: { env: 'prod' } })).items).toEqual([owned]);
    await ds.recordEntryUsage([{ entryId: e.entryId, issuanceCount: 1, firstIssuedAt: 5, lastIssuedAt: 5 }]);
    expect((await ds.listEntryUsage())[0]).toMatchObject({ entryId: e.entryId, issuanceCount: 1 });
    await ds.recordX509SvidIssuances([{ serialHex: '01', spiffeId: 'spiffe://example.org/a', entryId: e.entryId, authorityId: 'ab', notAfter: 10 }]);
    expect((await ds.revokeX509Svids([{ serialHex: '01', revokedAt: 1, reason: 'keyCompromise' }]))[0]).toMatchObject({ serialHex: '01', reason: 'keyCompromise' });
  });

  it("opens with a SPIRE-style keyword/value connection string", async () => {
    const ds = await openPostgresDatastore({ connectionString: `host=${cluster.dir} user=mayfly dbname=postgres`, schema: cluster.freshSchema() });
    open.push(ds);
    expect((await ds.createEntry(entry(1))).revision).toBe(0);
  });

  it('reports an unreachable server as ERR_DATASTORE_UNAVAILABLE, and rejects a bad config', async () => {
    const err = await openPostgresDatastore({ pool: { ...cluster.poolConfig, host: join(cluster.dir, 'no-such-dir') } }).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_DATASTORE_UNAVAILABLE'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/cannot open the PostgreSQL datastore/);
    await expect(openPostgresDatastore({ pool: cluster.poolConfig, schema: 'Robert"); DROP TABLE x;--' })).rejects.toThrow(TypeError);
    await expect(openPostgresDatastore({} as never)).rejects.toThrow(TypeError);
  });

  it('commits durably even for a role whose synchronous_commit default is off', async () => {
    await sql(cluster, 'CREATE ROLE lazy_writer LOGIN SUPERUSER');
    await sql(cluster, 'ALTER ROLE lazy_writer SET synchronous_commit = off');
    const lazy = await sql({ ...cluster, poolConfig: { ...cluster.poolConfig, user: 'lazy_writer' } }, 'SHOW synchronous_commit');
    expect(lazy.rows[0]).toEqual({ synchronous_commit: 'off' }); // the trap is really set
    const ds = await openPostgresDatastore({ pool: { ...cluster.poolConfig, user: 'lazy_writer' }, schema: cluster.freshSchema() });
    open.push(ds);
    expect(ds.synchronousCommit).toBe('on');
    await ds.createEntry(entry(1));
    const { a } = await twoServers();
    expect(a.synchronousCommit).toBe('on');
  });

  it('stores join tokens only as hashes and bundles byte-for-byte', async () => {
    const { a, schema } = await twoServers();
    await a.createJoinToken({ token: 'secret-token-value', expiresAt: 5000 });
    const rows = await sql(cluster, `SELECT * FROM "${schema}".join_tokens`);
    expect(JSON.stringify(rows.rows)).not.toContain('secret-token-value');
    const odd = '{"keys":[],"x":"\u0000 é 🙂"}';
    await a.setBundle({ trustDomain: 'odd.org', bundle: odd, sequence: 3 });
    expect((await a.getBundle('odd.org'))!.bundle).toBe(odd);
  });

  it('uses the injected clock, and its consistency check finds damage done behind its back', async () => {
    const schema = cluster.freshSchema();
    let t = 1_700_000_000_000;
    const ds = await openPostgresDatastore({ pool: cluster.poolConfig, schema, now: () => new Date(t) });
    open.push(ds);
    const made = await ds.createEntries(Array.from({ length: 50 }, (_, n) => entry(n, { federatesWith: n % 3 === 0 ? ['other.org'] : [] })));
    expect(made[0]!.entry!.createdAt).toBe(1_700_000_000);
    for (const [i, r] of made.entries()) {
      if (i % 2 === 0) await ds.updateEntry({ ...r.entry!, federatesWith: [], selectors: [{ type: 'unix', value: `gid:${i}` }] }, { expectedRevision: 0 });
      if (i % 5 === 0) await ds.deleteEntry(r.entry!.entryId);
    }
    const agent = await ds.createAgent({ spiffeId: 'spiffe://example.org/agent/a', attestationType: 'join_token', serialNumber: '01', certNotAfter: 1 });
    t += 5000;
    expect((await ds.updateAgent(agent.spiffeId, { banned: true })).updatedAt).toBe(1_700_000_005);
    expect(await ds.verifyIndexes()).toEqual([]);
    expect(await ds.countEntries()).toBe(40);

    const victim = made[1]!.entry!;
    await sql(cluster, `DELETE FROM "${schema}".entry_selectors WHERE entry_id = $1`, [victim.entryId]);
    const problems = await ds.verifyIndexes();
    expect(problems).toEqual([`entry ${victim.entryId}: selector rows disagree with the entry`]);
  });

  it('loses no acknowledged write when the writing server process is killed with SIGKILL mid-batch', async () => {
    const schema = cluster.freshSchema();
    // The child runs the compiled fixture from dist/ (built by test/build.global-setup.ts).
    const fixture = join(here, '../../../dist/src/datastore/postgres/testdata/kill-writer.fixture.js');
    const { lines, chunks } = await killWriterMidFlight(fixture, [cluster.connectionString, schema]);
    expect(chunks).toBeGreaterThan(1);
    const ds = await openPostgresDatastore({ pool: cluster.poolConfig, schema });
    open.push(ds);
    await expectAcknowledgedWrites(ds, lines);
  });
});
