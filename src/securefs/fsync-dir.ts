/**
 * @module securefs/fsync-dir
 *
 * Durability of directory changes: after a rename, create or unlink inside a directory,
 * fsync on the directory itself is what makes the change survive a power loss.
 */
import { closeSync, constants, fsyncSync, openSync } from 'node:fs';

/** fsync on a directory makes a rename, create or unlink inside it durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
