import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { checkOutputDir, ensureOutputDir } from './output-dir.js';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from './testing.js';
import { writeFileAtomic } from './write-file.js';

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

const KEY = '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n';

describe('writeFileAtomic', () => {
  it('durable: false skips only the fsyncs: the same atomic replace, mode and refusals', () => {
    const dir = dirs.make();
    writeFileAtomic(join(dir, 'state.json'), 'one', { durable: false });
    writeFileAtomic(join(dir, 'state.json'), 'two', { durable: false });
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('two');
    expect(modeOf(join(dir, 'state.json'))).toBe(0o600);
    symlinkSync(join(dir, 'state.json'), join(dir, 'link.json'));
    expect(thrown(() => writeFileAtomic(join(dir, 'link.json'), 'x', { durable: false }))).toMatchObject({ code: 'ERR_FILE_NOT_REGULAR' });
    expect(readdirSync(dir).sort()).toEqual(['link.json', 'state.json']);
  });

  it('creates exactly 0600 or 0644 whatever the umask, and leaves no temporary file behind', () => {
    const dir = dirs.make();
    const old = process.umask(0o077);
    try {
      writeFileAtomic(join(dir, 'cert.pem'), 'cert', { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    writeFileAtomic(join(dir, 'key.pem'), KEY);
    expect(modeOf(join(dir, 'cert.pem'))).toBe(0o644);
    expect(modeOf(join(dir, 'key.pem'))).toBe(0o600);
    writeFileAtomic(join(dir, 'key.pem'), 'second');
    expect(readFileSync(join(dir, 'key.pem'), 'utf8')).toBe('second');
    expect(readdirSync(dir).sort()).toEqual(['cert.pem', 'key.pem']);
  });

  it('refuses a symlink planted at the target: the file it points to is untouched and no key is written anywhere', () => {
    const dir = dirs.make();
    const elsewhere = join(dirs.make(), 'victim');
    writeFileSync(elsewhere, 'original', { mode: 0o644 });
    const target = join(dir, 'svid.0.key');
    symlinkSync(elsewhere, target);
    const err = thrown(() => writeFileAtomic(target, KEY));
    expect(isMayflyError(err, 'ERR_FILE_NOT_REGULAR')).toBe(true);
    expect(err.message).toContain(`${target} exists and is a symlink`);
    expect(readFileSync(elsewhere, 'utf8')).toBe('original');
    expect(modeOf(elsewhere)).toBe(0o644);
    expect(lstatSync(target).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir)).toEqual(['svid.0.key']);
  });

  it('refuses a FIFO or a directory at the target', () => {
    const dir = dirs.make();
    mkdirSync(join(dir, 'd'));
    expect(isMayflyError(thrown(() => writeFileAtomic(join(dir, 'd'), KEY)), 'ERR_FILE_NOT_REGULAR')).toBe(true);
    if (spawnSync('mkfifo', [join(dir, 'fifo')]).status === 0) {
      expect(thrown(() => writeFileAtomic(join(dir, 'fifo'), KEY)).message).toContain('is a FIFO');
    }
  });

  it.skipIf(!asRoot)("replaces a file another user planted at the target instead of writing into it: a new inode, ours, 0600", () => {
    const dir = dirs.make();
    const target = join(dir, 'key.pem');
    writeFileSync(target, 'planted');
    chmodSync(target, 0o666);
    giveToOtherUser(target);
    const before = statSync(target);
    writeFileAtomic(target, KEY);
    const after = statSync(target);
    expect(after.ino).not.toBe(before.ino);
    expect(after.uid).toBe(process.getuid?.());
    expect(after.mode & 0o7777).toBe(0o600);
    expect(readFileSync(target, 'utf8')).toBe(KEY);
  });

  it.skipIf(!asRoot)('refuses a directory owned by another user, or writable by others without the sticky bit; accepts a sticky one', () => {
    const theirs = join(dirs.make(), 'theirs');
    mkdirSync(theirs);
    giveToOtherUser(theirs);
    const err = thrown(() => writeFileAtomic(join(theirs, 'key.pem'), KEY));
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect(err.message).toContain(`directory ${theirs} is owned by uid ${OTHER_UID}`);
    expect(readdirSync(theirs)).toEqual([]);

    const open = join(dirs.make(), 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(thrown(() => writeFileAtomic(join(open, 'key.pem'), KEY)).message).toContain(`directory ${open} has mode 0777`);
    expect(readdirSync(open)).toEqual([]);

    chmodSync(open, 0o1777);
    writeFileAtomic(join(open, 'key.pem'), KEY);
    expect(modeOf(join(open, 'key.pem'))).toBe(0o600);
    expect(() => checkOutputDir(tmpdir())).not.toThrow();
  });
});

describe('ensureOutputDir', () => {
  it('creates a missing directory 0755 whatever the umask; refuses a file or a 0777 directory', () => {
    const base = dirs.make();
    const old = process.umask(0o077);
    try {
      ensureOutputDir(join(base, 'a', 'out'));
    } finally {
      process.umask(old);
    }
    expect(modeOf(join(base, 'a', 'out'))).toBe(0o755);
    writeFileSync(join(base, 'file'), '');
    expect(isMayflyError(thrown(() => ensureOutputDir(join(base, 'file'))), 'ERR_FILE_NOT_DIRECTORY')).toBe(true);
    chmodSync(join(base, 'a', 'out'), 0o777);
    expect(isMayflyError(thrown(() => ensureOutputDir(join(base, 'a', 'out'))), 'ERR_PATH_UNTRUSTED')).toBe(true);
  });
});
