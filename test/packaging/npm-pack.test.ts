/**
 * Issue 13, item 4: the package installs and runs from its `npm pack` tarball. The tarball of
 * this checkout (dist/ as the suite's global setup built it; `--ignore-scripts` so that
 * `prepack` does not rebuild dist/ under the other tests) is installed into a temporary
 * project with `npm ci --offline`: no network. The lockfile of that project is this
 * repository's, less its dev dependencies, plus the tarball, so npm takes every dependency
 * from its cache by integrity (the cache `npm ci` of this checkout filled). Then
 * `npx --offline mayfly-server --version` and `mayfly-agent --version` run from it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string>; dependencies: Record<string, string> };
const npm = (args: string[], cwd: string): string => execFileSync('npm', args, { cwd, encoding: 'utf8', timeout: 240_000, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } });

interface LockEntry { dev?: boolean; link?: boolean }

describe('npm pack tarball', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-pack-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('installs offline and both bins answer --version', () => {
    const packed = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root)) as Array<{ filename: string; files: { path: string }[] }>;
    const tarball = packed[0]?.filename as string;
    const files = packed[0]?.files.map((f) => f.path) ?? [];
    expect(files).toEqual(expect.arrayContaining(['bin/mayfly-server.js', 'bin/mayfly-agent.js', 'dist/src/cli/server.js', 'dist/src/cli/agent.js', 'dist/src/sdk/index.js', 'proto/workload.proto', 'proto/server.json', 'dist/src/cli/server.bundle.js']));
    expect(files.filter((f) => /\.test\.|\/testing\.|\/testdata\//.test(f))).toEqual([]);

    const app = join(dir, 'app');
    const spec = `file:../${tarball}`;
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const packages: Record<string, unknown> = {
      '': { name: 'pack-check', version: '1.0.0', dependencies: { [pkg.name]: spec } },
      [`node_modules/${pkg.name}`]: { version: pkg.version, resolved: spec, dependencies: pkg.dependencies, bin: pkg.bin },
    };
    for (const [path, entry] of Object.entries(lock.packages)) if (path !== '' && !entry.dev && !entry.link) packages[path] = entry;
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pack-check', version: '1.0.0', private: true, dependencies: { [pkg.name]: spec } }));
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'pack-check', version: '1.0.0', lockfileVersion: 3, requires: true, packages }));
    npm(['ci', '--offline'], app);

    for (const bin of ['mayfly-server', 'mayfly-agent']) {
      expect(execFileSync('npx', ['--offline', '--no-install', bin, '--version'], { cwd: app, encoding: 'utf8', timeout: 60_000 }).trim()).toBe(pkg.version);
    }
    // A client command runs from the bundled entry (bin/mayfly-server.js): loaded, parsed, and
    // refused with the unreachable exit code for a socket that is not there.
    const none = join(dir, 'no-server.sock');
    const hc = spawnSync('npx', ['--offline', '--no-install', 'mayfly-server', 'healthcheck', '-socketPath', none], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(hc.stderr).toContain(`Error: cannot reach the server's admin socket at ${none}`);
    expect(hc.status).toBe(5);
  }, 300_000);
});
