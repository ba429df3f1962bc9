/**
 * Issue 16, finding 3, as the operator sees it: `mayfly-agent run` with a Workload API
 * socket directory another user could write to exits non-zero with one line naming it,
 * before it contacts the server or stores anything. (The server's counterpart is in
 * src/server/file-safety.test.ts.) The binary runs from dist/ (test/build.global-setup.ts).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDirs } from '../securefs/testing.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dirs = tempDirs('mayfly-cli-sockdir-');
afterEach(() => dirs.cleanup());

describe('mayfly-agent run (real process)', () => {
  it('exits non-zero with one line naming a 0777 socket directory', async () => {
    const base = dirs.make();
    const open = join(base, 'public');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const args = [
      join(ROOT, 'bin', 'mayfly-agent.js'), 'run', '-dataDir', join(base, 'data'), '-socketPath', join(open, 'api.sock'),
      '-joinToken', 'unused', '-insecureBootstrap', '-serverAddress', '127.0.0.1', '-serverPort', '1', '-logLevel', 'ERROR',
    ];
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, args, { cwd: base, timeout: 20_000 }, (err, _stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stderr });
      });
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('Error: '))).toEqual([
      `Error: directory ${open} has mode 0777: group/other-writable without the sticky bit, so another user could replace what Mayfly puts there; remove it or choose another socket path with socket_path (-socketPath)`,
    ]);
    expect(readdirSync(open)).toEqual([]);
    expect(existsSync(join(base, 'data'))).toBe(false);
  });
});
