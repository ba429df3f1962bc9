/**
 * `npm run demo` as a newcomer runs it: the compiled demo in its own process. It must
 * complete the whole road (server, agent, entries, SVIDs, mTLS, a refusal), exit 0 and
 * leave no temp directory behind.
 */
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

it('runs end to end and cleans up', async () => {
  const before = new Set((await readdir(tmpdir())).filter((n) => n.startsWith('mayfly-demo-')));
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'dist/src/cli/demo.js')], { timeout: 90_000 });
  expect(stdout).toMatch(/^1\. server up: trust domain example\.org/m);
  expect(stdout).toMatch(/^3\. agent attested as spiffe:\/\/example\.org\/spire\/agent\/join_token\//m);
  expect(stdout).toMatch(/^4\. frontend holds spiffe:\/\/example\.org\/demo\/frontend .* backend holds spiffe:\/\/example\.org\/demo\/backend$/m);
  expect(stdout).toContain('5. mTLS GET /hello → "hello spiffe://example.org/demo/frontend, this is spiffe://example.org/demo/backend"');
  expect(stdout).toMatch(/^6\. a caller presenting spiffe:\/\/example\.org\/demo\/backend was refused/m);
  // The server helper names the refused peer and why (not a bare ECONNRESET).
  expect(stdout).toMatch(/the backend says: refused TLS peer spiffe:\/\/example\.org\/demo\/backend from 127\.0\.0\.1:\d+: peer SPIFFE ID spiffe:\/\/example\.org\/demo\/backend is not the expected spiffe:\/\/example\.org\/demo\/frontend$/m);
  expect(stdout).toMatch(/^done: everything stopped/m);
  const after = (await readdir(tmpdir())).filter((n) => n.startsWith('mayfly-demo-') && !before.has(n));
  expect(after).toEqual([]);
});
