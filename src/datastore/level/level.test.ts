import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../spiffe/errors.js';
import { runDatastoreConformance } from '../conformance.js';
import type { Datastore } from '../datastore.js';
import { expectAcknowledgedWrites, killWriterMidFlight } from '../testdata/kill-check.js';
import { openLevelDatastore, type LevelDatastore } from './level.js';

const here = dirname(fileURLToPath(import.meta.url));

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mayfly-level-'));
}

runDatastoreConformance('level', async () => {
  const dir = await tempDir();
  let current: Datastore = await openLevelDatastore({ path: dir });
  return {
    ds: current,
    reopen: async () => {
      current = await openLevelDatastore({ path: dir });
      return current;
    },
    cleanup: async () => {
      await current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('LevelDatastore', () => {
  const dirs: string[] = [];
  const open: LevelDatastore[] = [];
  afterEach(async () => {
    for (const ds of open.splice(0)) await ds.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  const fresh = async (): Promise<{ dir: string; ds: LevelDatastore }> => {
    const dir = await tempDir();
    dirs.push(dir);
    const ds = await openLevelDatastore({ path: dir });
    open.push(ds);
    return { dir, ds };
  };

  it('refuses a second open of the same directory with ERR_DATASTORE_UNAVAILABLE', async () => {
    const { dir } = await fresh();
    const err = await openLevelDatastore({ path: dir }).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_DATASTORE_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/locked/);
  });

  it('refuses a second open from another process', async () => {
    const { dir } = await fresh();
    const script = `import { Level } from 'level';
      const db = new Level(process.argv[1]);
      try { await db.open(); console.log('opened'); } catch (e) { console.log(e.cause?.code ?? e.code); }`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], { cwd: here, stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(text.trim()));
    });
    expect(out).toBe('LEVEL_LOCKED');
  });

  it('refuses a LevelDB directory that is not a Mayfly datastore', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const raw = new Level<string, string>(dir);
    await raw.put('foreign', 'data');
    await raw.close();
    const err = await openLevelDatastore({ path: dir }).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_DATASTORE_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/not a Mayfly datastore/);
  });

  it('uses the injected clock for createdAt and updatedAt', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    let t = 1_700_000_000_000;
    const ds = await openLevelDatastore({ path: dir, now: () => new Date(t) });
    open.push(ds);
    const e = await ds.createEntry({ spiffeId: 'spiffe://example.org/a', parentId: 'spiffe://example.org/p', selectors: [{ type: 'unix', value: 'uid:1' }] });
    expect(e.createdAt).toBe(1_700_000_000);
    const a = await ds.createAgent({ spiffeId: 'spiffe://example.org/agent', attestationType: 'join_token', serialNumber: '01', certNotAfter: 1 });
    t += 5000;
    expect((await ds.updateAgent(a.spiffeId, { banned: true })).updatedAt).toBe(1_700_000_005);
  });

  it('keeps indexes consistent through creates, updates and deletes, and its checker finds damage', async () => {
    const { dir, ds } = await fresh();
    const made = await ds.createEntries(
      Array.from({ length: 300 }, (_, n) => ({
        spiffeId: `spiffe://example.org/w/${n}`,
        parentId: `spiffe://example.org/agent/${n % 5}`,
        selectors: [{ type: 'unix', value: `uid:${n}` }],
        federatesWith: n % 3 === 0 ? ['other.org'] : [],
      })),
    );
    for (const [i, r] of made.entries()) {
      if (i % 2 === 0) await ds.updateEntry({ ...r.entry!, federatesWith: [], selectors: [{ type: 'unix', value: `gid:${i}` }] }, { expectedRevision: 0 });
      if (i % 5 === 0) await ds.deleteEntry(r.entry!.entryId);
    }
    expect(await ds.verifyIndexes()).toEqual([]);
    expect(await ds.countEntries()).toBe(240);
    await ds.close();

    // Damage the store behind the datastore's back: the checker must notice.
    const raw = new Level<string, string>(dir);
    const victim = made[1]!.entry!;
    await raw.del(`s!${victim.spiffeId}\0${victim.entryId}`);
    await raw.put(`p!spiffe://example.org/ghost\0no-such-entry`, '');
    await raw.close();
    const again = await openLevelDatastore({ path: dir });
    open.push(again);
    const problems = await again.verifyIndexes();
    expect(problems).toHaveLength(2);
    expect(problems.join('\n')).toMatch(/missing/);
    expect(problems.join('\n')).toMatch(/no matching entry/);
  });

  it('loses no acknowledged write and no index consistency when the writer is killed with SIGKILL', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    // The child runs the compiled fixture from dist/ (built by test/build.global-setup.ts),
    // i.e. exactly the code `npm run build` ships.
    const { lines } = await killWriterMidFlight(join(here, '../../../dist/src/datastore/level/testdata/kill-writer.fixture.js'), [dir]);
    const ds = await openLevelDatastore({ path: dir });
    open.push(ds);
    await expectAcknowledgedWrites(ds, lines);
  });
});
