/**
 * @module securefs/testing
 *
 * For tests only: temporary directories, and what another local user would plant in
 * them (files and directories chowned to `nobody`, which needs root: tests that plant
 * use `asRoot` to skip elsewhere).
 */
import { chownSync, lchownSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The uid/gid of `nobody`: "another user" in these tests. */
export const OTHER_UID = 65534;

/** True when this process can chown files to another user. */
export const asRoot = process.getuid?.() === 0;

/** A fresh 0700 directory under the OS temp dir; `cleanup()` removes every one made. */
export function tempDirs(prefix = 'mayfly-securefs-'): { make(): string; cleanup(): void } {
  const made: string[] = [];
  return {
    make() {
      const d = mkdtempSync(join(tmpdir(), prefix));
      made.push(d);
      return d;
    },
    cleanup() {
      for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** Gives `path` (not what a symlink points to) to another user, as an attacker's own file would be. */
export function giveToOtherUser(path: string): void {
  if (lstatSync(path).isSymbolicLink()) lchownSync(path, OTHER_UID, OTHER_UID);
  else chownSync(path, OTHER_UID, OTHER_UID);
}

/** Permission bits of `path` (not following a symlink), e.g. 0o700 or 0o1777. */
export function modeOf(path: string): number {
  return lstatSync(path).mode & 0o7777;
}

const fixtureDirs = new Set<string>();

/**
 * A temporary directory for a test fixture (a plugin's pluginFixtures, a recorded /proc):
 * removed after the test file that made it, by `test/setup.ts`.
 */
export function fixtureTempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  fixtureDirs.add(d);
  return d;
}

/** Removes every `fixtureTempDir` made so far (test/setup.ts runs it after each test file). */
export function removeFixtureTempDirs(): void {
  for (const d of fixtureDirs) rmSync(d, { recursive: true, force: true });
  fixtureDirs.clear();
}
