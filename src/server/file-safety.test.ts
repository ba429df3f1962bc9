/**
 * Issue 16, findings 3 and 6(a), on a real server: the admin socket's directory is refused
 * when another user could have planted it (before any state is opened), created 0700 when
 * missing; the data directory and LevelDB's directory are 0700 before the store opens, a
 * loose one of ours is tightened (and logged), another user's is refused. Also the
 * operator's view: `mayfly-server run` exits non-zero with the message on stderr.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from '../securefs/testing.js';
import { isMayflyError } from '../spiffe/errors.js';
import { resolveServerConfig } from './config.js';
import { createServerLogger } from './observability.js';
import type { ServerLogger } from './ports.js';
import { ServerRunner } from './runner.js';
import { startTestServer, type TestServer } from './testing.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dirs = tempDirs('mayfly-server-files-');
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
  dirs.cleanup();
});

function logger(): ServerLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, error() {}, warn: (_f, m) => void warnings.push(m) };
}

function server(dataDir: string, adminSocketPath: string, log: ServerLogger = logger()): { start(): Promise<TestServer> } {
  const start = async (): Promise<TestServer> => {
    const s = await startTestServer({ trustDomain: 'files.test', dataDir, adminSocketPath, bindAddress: '127.0.0.1', port: 0, logger: log, csrWorkers: 0, drainMs: 100 });
    stops.push(() => s.stop());
    return s;
  };
  return { start };
}

describe('MayflyServer: the admin socket directory (finding 3)', () => {
  it.skipIf(!asRoot)('refuses one another user created first, naming it, before the data directory or any key exists', async () => {
    const base = dirs.make();
    const planted = join(base, 'mayfly-server', 'private');
    mkdirSync(planted, { recursive: true });
    giveToOtherUser(planted);
    const err = await server(join(base, 'data'), join(planted, 'api.sock')).start().catch((e: unknown) => e as Error);
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect((err as Error).message).toBe(`directory ${planted} is owned by uid ${OTHER_UID} (expected 0 (root)); remove it or choose another socket path with socket_path (-socketPath)`);
    expect(existsSync(join(base, 'data'))).toBe(false);
    expect(readdirSync(planted)).toEqual([]);
  });

  it('refuses a 0777 directory (no sticky bit) above the socket directory too', async () => {
    const base = dirs.make();
    const open = join(base, 'mayfly-server');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const err = await server(join(base, 'data'), join(open, 'private', 'api.sock')).start().catch((e: unknown) => e as Error);
    expect((err as Error).message).toContain(`directory ${open} has mode 0777: group/other-writable without the sticky bit`);
    expect(existsSync(join(open, 'private'))).toBe(false);
  });

  it('creates a missing one 0700 and binds there; the data directory and the datastore are 0700', async () => {
    const base = dirs.make();
    const sock = join(base, 'run', 'mayfly', 'server', 'private', 'api.sock');
    const old = process.umask(0o022);
    try {
      await server(join(base, 'data'), sock).start();
    } finally {
      process.umask(old);
    }
    expect(lstatSync(sock).isSocket()).toBe(true);
    expect(modeOf(join(base, 'run', 'mayfly', 'server', 'private'))).toBe(0o700);
    expect(modeOf(join(base, 'run', 'mayfly'))).toBe(0o755);
    expect(modeOf(join(base, 'data'))).toBe(0o700);
    expect(modeOf(join(base, 'data', 'datastore'))).toBe(0o700);
  });
});

describe('the data directory (finding 6a)', () => {
  it('an existing 0755 data directory and datastore of ours are tightened to 0700 before the store opens, and logged', async () => {
    const base = dirs.make();
    const data = join(base, 'data');
    mkdirSync(join(data, 'datastore'), { recursive: true });
    chmodSync(data, 0o755);
    chmodSync(join(data, 'datastore'), 0o755);
    const log = logger();
    await server(data, join(base, 'admin', 'api.sock'), log).start();
    expect(modeOf(data)).toBe(0o700);
    expect(modeOf(join(data, 'datastore'))).toBe(0o700);
    expect(log.warnings).toEqual([
      `directory ${data} had mode 0755, which let other users read what it holds; changed it to 0700`,
      `directory ${join(data, 'datastore')} had mode 0755, which let other users read what it holds; changed it to 0700`,
    ]);
  });

  it.skipIf(!asRoot)("the runner refuses a data directory owned by another user, writing nothing into it", async () => {
    const base = dirs.make();
    const data = join(base, 'data');
    mkdirSync(data);
    giveToOtherUser(data);
    const settings = resolveServerConfig(undefined, { dataDir: data, socketPath: join(base, 'admin', 'api.sock'), bindPort: 0 });
    settings.metrics.enabled = false;
    const runner = new ServerRunner({ settings, logger: createServerLogger('error') });
    stops.push(() => runner.stop());
    const err = await runner.start().catch((e: unknown) => e as Error);
    expect(isMayflyError(err, 'ERR_FILE_PERMISSIONS')).toBe(true);
    expect((err as Error).message).toContain(`directory ${data} is owned by uid ${OTHER_UID}`);
    expect(readdirSync(data)).toEqual([]);
  });
});

describe('mayfly-server run (real process)', () => {
  it('exits non-zero with one line naming the unsafe socket directory', async () => {
    const base = dirs.make();
    const open = join(base, 'private');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const args = [join(ROOT, 'bin', 'mayfly-server.js'), 'run', '-dataDir', join(base, 'data'), '-socketPath', join(open, 'api.sock'), '-serverPort', '0', '-metricsPort', '0'];
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, args, { cwd: base, timeout: 20_000 }, (err, _stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stderr });
      });
    });
    expect(r.code).not.toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('Error: '));
    expect(lines).toEqual([`Error: directory ${open} has mode 0777: group/other-writable without the sticky bit, so another user could replace what Mayfly puts there; remove it or choose another socket path with socket_path (-socketPath)`]);
    expect(existsSync(join(base, 'data'))).toBe(false);
  });
});
