/**
 * @module securefs
 *
 * Files, directories and socket paths that other local users must not be able to read,
 * redirect or take over. Every place in Mayfly that writes key material or state, reads
 * a private file, keeps a private directory or places a listening socket goes through
 * this room. It leans on nothing of ours but `spiffe/errors` (the server, the agent, the
 * CA and the CLI all use it; it uses none of them).
 *
 * Threats stopped, and where:
 * - a socket directory (or one above it) created first by another user, who then moves
 *   the real socket aside and binds their own: every component from `/` down must be
 *   ours or root's and not writable by others without the sticky bit (`trusted-dir`);
 *   defaults live under `/run/mayfly` or `$XDG_RUNTIME_DIR`, not `/tmp` (`socket-paths`);
 *   clients apply the same check to a default socket before connecting (`locate-socket`);
 * - other users reading private state through a 0755/0644 directory: private
 *   directories are created 0700, loose ones tightened or refused, foreign ones refused
 *   (`private-dir`);
 * - a symlink or planted file at a name we write: exclusive, no-follow, 0600-at-creation
 *   temporary files with random names, fsync, rename over the target, fsync the
 *   directory; a target that is a symlink or not a regular file is refused; so is an
 *   output directory another user can change (`write-file`, `output-dir`);
 * - a symlink or FIFO where a key is read, or a key others can read: O_NOFOLLOW open,
 *   fstat judged on the open descriptor (`read-file`);
 * - a crash half way through a write leaving a truncated key (`write-file`).
 *
 * Not covered: directories above an output or data directory are not judged (only the
 * socket paths are walked from `/`); Node has no openat/mkdirat, so a check and the use
 * that follows it are separate system calls. The check is sound where it matters because
 * each component is judged before anything is created in it: a directory only we or root
 * can change cannot be swapped between the check and the use by anyone else.
 */
export { SecureFsError, isTrustedOwner, processUid } from './ownership.js';
export { ensureTrustedDir, type TrustedDirOptions } from './trusted-dir.js';
export { ensurePrivateDir, type PrivateDirOptions } from './private-dir.js';
export { checkOutputDir, ensureOutputDir } from './output-dir.js';
export { readPrivateFile, readRegularFile } from './read-file.js';
export { writeFileAtomic, removeFile, type WriteFileOptions } from './write-file.js';
export { fsyncDir } from './fsync-dir.js';
export { defaultSocketCandidates, defaultSocketPath, runtimeDir, ROOT_RUNTIME_DIR, SOCKET_DIR_FIX, type SocketPathContext, type SocketRole } from '../wire/workload/socket-paths.js';
export { locateDefaultSocket, type LocatedSocket } from './locate-socket.js';
