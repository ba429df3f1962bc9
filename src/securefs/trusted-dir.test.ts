import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { SOCKET_DIR_FIX } from '../wire/workload/socket-paths.js';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from './testing.js';
import { ensureTrustedDir } from './trusted-dir.js';

const dirs = tempDirs();
afterEach(() => dirs.cleanup());

function refusal(dir: string, mode = 0o755): Error {
  try {
    ensureTrustedDir(dir, { mode, fix: SOCKET_DIR_FIX });
  } catch (err) {
    return err as Error;
  }
  throw new Error(`ensureTrustedDir accepted ${dir}`);
}

describe('ensureTrustedDir (socket directories, judged from / down)', () => {
  it('creates missing components with exact modes whatever the umask: parents 0755, the last one as asked', () => {
    const base = dirs.make();
    const old = process.umask(0o077);
    try {
      ensureTrustedDir(join(base, 'mayfly', 'agent', 'public'), { mode: 0o755 });
      ensureTrustedDir(join(base, 'mayfly', 'server', 'private'), { mode: 0o700 });
    } finally {
      process.umask(old);
    }
    expect(modeOf(join(base, 'mayfly'))).toBe(0o755);
    expect(modeOf(join(base, 'mayfly', 'agent'))).toBe(0o755);
    expect(modeOf(join(base, 'mayfly', 'agent', 'public'))).toBe(0o755);
    expect(modeOf(join(base, 'mayfly', 'server', 'private'))).toBe(0o700);
  });

  it.skipIf(!asRoot)('refuses a directory another user created first, naming it, its owner and the fix', () => {
    const base = dirs.make();
    const planted = join(base, 'mayfly-agent', 'public');
    mkdirSync(planted, { recursive: true });
    giveToOtherUser(planted);
    const err = refusal(planted);
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect(err.message).toBe(`directory ${planted} is owned by uid ${OTHER_UID} (expected 0 (root)); ${SOCKET_DIR_FIX}`);
    // Another user's directory above one of ours is as bad as the socket's own: they can rename ours away.
    const above = join(base, 'above');
    mkdirSync(join(above, 'ours'), { recursive: true });
    giveToOtherUser(above);
    expect(refusal(join(above, 'ours', 'public')).message).toContain(`directory ${above} is owned by uid ${OTHER_UID}`);
    expect(existsSync(join(above, 'ours', 'public'))).toBe(false);
  });

  it('refuses a 0777 directory without the sticky bit, at the socket or above it', () => {
    const base = dirs.make();
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const err = refusal(open);
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect(err.message).toContain(`directory ${open} has mode 0777: group/other-writable without the sticky bit`);
    expect(err.message).toContain(SOCKET_DIR_FIX);
    expect(refusal(join(open, 'private'), 0o700).message).toContain(`directory ${open} has mode 0777`);
    expect(existsSync(join(open, 'private'))).toBe(false);
    chmodSync(open, 0o775);
    expect(refusal(open).message).toContain('mode 0775');
  });

  it('accepts sticky world-writable directories (/tmp itself, and a 1777 one of ours)', () => {
    expect(modeOf(tmpdir()) & 0o1000).toBe(0o1000);
    const base = dirs.make();
    expect(() => ensureTrustedDir(base, { mode: 0o700 })).not.toThrow();
    const sticky = join(base, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    expect(() => ensureTrustedDir(join(sticky, 'sock-dir'), { mode: 0o700 })).not.toThrow();
    expect(modeOf(join(sticky, 'sock-dir'))).toBe(0o700);
  });

  it.skipIf(!asRoot)('judges symlinks: another user\'s is refused, ours leading to their directory is refused, ours leading to ours is fine', () => {
    const base = dirs.make();
    const real = join(base, 'real');
    mkdirSync(real);
    const theirs = join(base, 'theirs');
    mkdirSync(theirs);
    giveToOtherUser(theirs);

    const linkByThem = join(base, 'link-by-them');
    symlinkSync(real, linkByThem);
    giveToOtherUser(linkByThem);
    expect(refusal(linkByThem).message).toBe(`symlink ${linkByThem} is owned by uid ${OTHER_UID} (expected 0 (root)); ${SOCKET_DIR_FIX}`);

    const ourLinkToThem = join(base, 'ours-to-theirs');
    symlinkSync(theirs, ourLinkToThem);
    expect(refusal(join(ourLinkToThem, 'public')).message).toContain(`directory ${theirs} is owned by uid ${OTHER_UID}`);

    const ourLink = join(base, 'ours');
    symlinkSync(real, ourLink);
    expect(() => ensureTrustedDir(join(ourLink, 'public'), { mode: 0o755 })).not.toThrow();
    expect(modeOf(join(real, 'public'))).toBe(0o755);
  });

  it('refuses a component that is a file, and with create: false a missing directory (creating nothing)', () => {
    const base = dirs.make();
    writeFileSync(join(base, 'file'), 'x');
    expect(isMayflyError(refusal(join(base, 'file')), 'ERR_FILE_NOT_DIRECTORY')).toBe(true);
    expect(isMayflyError(refusal(join(base, 'file', 'below')), 'ERR_FILE_NOT_DIRECTORY')).toBe(true);
    expect(() => ensureTrustedDir(join(base, 'missing'), { mode: 0o700, create: false })).toThrow(/does not exist/);
    expect(existsSync(join(base, 'missing'))).toBe(false);
  });

  it('refuses misuse with TypeError', () => {
    expect(() => ensureTrustedDir('', { mode: 0o700 })).toThrow(TypeError);
    expect(() => ensureTrustedDir('/tmp/x', { mode: 0o777 })).toThrow(TypeError);
    expect(() => ensureTrustedDir('/tmp/x', { mode: 0o1755 })).toThrow(TypeError);
  });
});
