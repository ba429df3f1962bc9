/**
 * Issue 16, finding 6(a): LevelDB creates its directory with the umask's 0755, so the
 * datastore makes (or tightens) it 0700 before LevelDB opens it; real LevelDB files.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from '../../securefs/testing.js';
import { isMayflyError } from '../../spiffe/errors.js';
import { openLevelDatastore, type LevelDatastore } from './level.js';

const dirs = tempDirs('mayfly-level-dir-');
const open: LevelDatastore[] = [];
afterEach(async () => {
  for (const ds of open.splice(0)) await ds.close();
  dirs.cleanup();
});

describe('openLevelDatastore: its directory', () => {
  it('is created 0700 (parents too) under a 022 umask; LevelDB writes its files inside', async () => {
    const path = join(dirs.make(), 'data', 'datastore');
    const old = process.umask(0o022);
    try {
      open.push(await openLevelDatastore({ path }));
    } finally {
      process.umask(old);
    }
    expect(modeOf(join(path, '..'))).toBe(0o700);
    expect(modeOf(path)).toBe(0o700);
    expect(readdirSync(path)).toContain('LOCK');
  });

  it('an existing 0755 one of ours is tightened to 0700, and the caller told', async () => {
    const path = join(dirs.make(), 'datastore');
    mkdirSync(path);
    chmodSync(path, 0o755);
    const told: string[] = [];
    open.push(await openLevelDatastore({ path, warn: (m) => told.push(m) }));
    expect(modeOf(path)).toBe(0o700);
    expect(told).toEqual([`directory ${path} had mode 0755, which let other users read what it holds; changed it to 0700`]);
  });

  it.skipIf(!asRoot)('one owned by another user is refused, and LevelDB never opens it', async () => {
    const path = join(dirs.make(), 'datastore');
    mkdirSync(path);
    giveToOtherUser(path);
    const err = await openLevelDatastore({ path }).catch((e: unknown) => e as Error);
    expect(isMayflyError(err, 'ERR_FILE_PERMISSIONS')).toBe(true);
    expect((err as Error).message).toContain(`directory ${path} is owned by uid ${OTHER_UID}`);
    expect(existsSync(join(path, 'LOCK'))).toBe(false);
  });
});
