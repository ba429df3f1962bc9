import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { ensurePrivateDir } from './private-dir.js';
import { readPrivateFile, readRegularFile } from './read-file.js';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from './testing.js';

const dirs = tempDirs();
afterEach(() => dirs.cleanup());

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal');
}

describe('ensurePrivateDir', () => {
  it('creates a missing directory (and its parents) 0700 whatever the umask', () => {
    const base = dirs.make();
    const old = process.umask(0);
    try {
      ensurePrivateDir(join(base, 'data', 'datastore'));
    } finally {
      process.umask(old);
    }
    expect(modeOf(join(base, 'data'))).toBe(0o700);
    expect(modeOf(join(base, 'data', 'datastore'))).toBe(0o700);
  });

  it('tightens an existing 0755 directory of ours to 0700 and says so', () => {
    const dir = join(dirs.make(), 'data');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const told: string[] = [];
    ensurePrivateDir(dir, { onTightened: (m) => told.push(m) });
    expect(modeOf(dir)).toBe(0o700);
    expect(told).toEqual([`directory ${dir} had mode 0755, which let other users read what it holds; changed it to 0700`]);
    ensurePrivateDir(dir, { onTightened: (m) => told.push(m) });
    expect(told).toHaveLength(1);
  });

  it("with loose: 'refuse' leaves a 0755 directory alone and says what to run; allowSymlink: false refuses a symlink", () => {
    const base = dirs.make();
    const dir = join(base, 'keys');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const err = thrown(() => ensurePrivateDir(dir, { loose: 'refuse' }));
    expect(isMayflyError(err, 'ERR_FILE_PERMISSIONS')).toBe(true);
    expect(err.message).toContain(`chmod 700 ${dir}`);
    expect(modeOf(dir)).toBe(0o755);
    symlinkSync(dir, join(base, 'link'));
    expect(isMayflyError(thrown(() => ensurePrivateDir(join(base, 'link'), { allowSymlink: false })), 'ERR_FILE_NOT_DIRECTORY')).toBe(true);
    // Followed by default (a data directory on a volume): the directory it leads to is tightened.
    ensurePrivateDir(join(base, 'link'), { onTightened: () => undefined });
    expect(modeOf(dir)).toBe(0o700);
  });

  it.skipIf(!asRoot)('refuses a directory owned by another user, and a symlink they own, changing neither', () => {
    const base = dirs.make();
    const dir = join(base, 'data');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    giveToOtherUser(dir);
    const err = thrown(() => ensurePrivateDir(dir));
    expect(isMayflyError(err, 'ERR_FILE_PERMISSIONS')).toBe(true);
    expect(err.message).toBe(`directory ${dir} is owned by uid ${OTHER_UID}, not by this process's uid 0; chown it to the user running Mayfly`);
    expect(modeOf(dir)).toBe(0o755);

    const ours = join(base, 'ours');
    mkdirSync(ours, { mode: 0o700 });
    symlinkSync(ours, join(base, 'their-link'));
    giveToOtherUser(join(base, 'their-link'));
    expect(thrown(() => ensurePrivateDir(join(base, 'their-link'))).message).toContain(`symlink ${join(base, 'their-link')} is owned by uid ${OTHER_UID}`);
  });
});

describe('readPrivateFile / readRegularFile', () => {
  it('read regular files; refuse a symlink, and a FIFO without blocking', () => {
    const dir = dirs.make();
    writeFileSync(join(dir, 'key'), 'k', { mode: 0o600 });
    writeFileSync(join(dir, 'cert'), 'c', { mode: 0o644 });
    expect(readPrivateFile(join(dir, 'key'))?.toString()).toBe('k');
    expect(readRegularFile(join(dir, 'cert'))?.toString()).toBe('c');
    expect(readPrivateFile(join(dir, 'missing'))).toBeUndefined();
    symlinkSync(join(dir, 'key'), join(dir, 'link'));
    expect(isMayflyError(thrown(() => readPrivateFile(join(dir, 'link'))), 'ERR_FILE_NOT_REGULAR')).toBe(true);
    expect(thrown(() => readRegularFile(join(dir, 'link'))).message).toContain('symlinks are refused');
    if (spawnSync('mkfifo', [join(dir, 'fifo')]).status === 0) {
      expect(isMayflyError(thrown(() => readRegularFile(join(dir, 'fifo'))), 'ERR_FILE_NOT_REGULAR')).toBe(true);
    }
  });

  it('refuse a private file others can read, or (as root) one another user owns', () => {
    const dir = dirs.make();
    const key = join(dir, 'key');
    writeFileSync(key, 'k', { mode: 0o644 });
    chmodSync(key, 0o644);
    const err = thrown(() => readPrivateFile(key));
    expect(isMayflyError(err, 'ERR_FILE_PERMISSIONS')).toBe(true);
    expect(err.message).toContain(`chmod 600 ${key}`);
    if (asRoot) {
      chmodSync(key, 0o600);
      giveToOtherUser(key);
      expect(thrown(() => readPrivateFile(key)).message).toContain(`is owned by uid ${OTHER_UID}`);
    }
  });
});
