/**
 * @module datastore/postgres/testing
 *
 * A real, throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory,
 * a server listening only on a Unix socket inside it (no TCP port, nothing reachable
 * from outside), stopped with `pg_ctl stop -m immediate` and deleted afterwards.
 *
 * PostgreSQL refuses to run as root, so when the test process is root the binaries run
 * as the `postgres` system user (or `nobody` when there is none) through `setpriv`.
 *
 * The server runs with `fsync=off` to keep tests fast on a shared machine: the tests
 * kill Mayfly's processes, never the PostgreSQL server, so what they prove (an
 * acknowledged write was COMMITted) does not depend on the server's own flushing.
 *
 * Missing binaries are an error naming the fix, never a skip: `.ci/run` installs them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import type { PoolConfig } from 'pg';

const SUPERUSER = 'mayfly';

export interface TestPostgres {
  /** The directory holding the data directory, the log and the server's socket. */
  readonly dir: string;
  /** pg.Pool options reaching the cluster's `postgres` database as its superuser. */
  readonly poolConfig: PoolConfig;
  /** The same as a connection string (`postgresql://mayfly@/postgres?host=<dir>`). */
  readonly connectionString: string;
  /** A new, unused schema name for one test's store (`t_<n>`). */
  freshSchema(): string;
  /** Stops the server (immediate mode) and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

/** The directory holding initdb, pg_ctl and postgres; throws naming the fix when there is none. */
export function findPostgresBin(): string {
  const has = (d: string): boolean => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(d, b)));
  const fromEnv = process.env.MAYFLY_PG_BIN;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (has(fromEnv)) return fromEnv;
    throw new Error(`MAYFLY_PG_BIN=${fromEnv} does not hold initdb, pg_ctl and postgres`);
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (has(join(root, v, 'bin'))) return join(root, v, 'bin');
  }
  for (const d of (process.env.PATH ?? '').split(':')) {
    const initdb = join(d, 'initdb');
    if (d !== '' && existsSync(initdb)) {
      const real = dirname(realpathSync(initdb));
      if (has(real)) return real;
      if (has(d)) return d;
    }
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in /usr/lib/postgresql/*/bin or on PATH: ' +
      'install them (`apt-get install -y postgresql`, as .ci/run does) or set MAYFLY_PG_BIN to their directory',
  );
}

/** uid/gid to run PostgreSQL as when we are root; undefined when we are not root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && uid !== 0) return { uid, gid };
    } catch {
      // no such user: try the next
    }
  }
  throw new Error('running as root and there is neither a `postgres` nor a `nobody` user to run PostgreSQL as (it refuses root)');
}

function run(file: string, args: string[], as: { uid: number; gid: number } | undefined): Promise<void> {
  const [cmd, argv] = as === undefined ? [file, args] : ['setpriv', [`--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', file, ...args]];
  return new Promise((resolve, reject) => {
    // stdio is not piped: pg_ctl's server inherits it and would hold the pipes open.
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${err.slice(0, 2000)}`))));
  });
}

/** Creates and starts a throwaway cluster. */
export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = findPostgresBin();
  const as = runAs();
  const dir = await mkdtemp(join(tmpdir(), 'mayfly-pg-'));
  if (as !== undefined) await chown(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  let started = false;
  const stop = async (): Promise<void> => {
    if (started) {
      started = false;
      await run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], as).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run(join(bin, 'initdb'), ['-D', data, '-U', SUPERUSER, '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C'], as);
    const options = [`-k ${dir}`, "-c listen_addresses=''", '-c fsync=off', '-c full_page_writes=off', '-c max_connections=200'].join(' ');
    await run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '60', '-o', options, 'start'], as).catch(async (err: Error) => {
      const text = await readFile(log, 'utf8').catch(() => '');
      throw new Error(`${err.message}\nserver log:\n${text.slice(-2000)}`);
    });
    started = true;
  } catch (err) {
    await stop();
    throw err;
  }
  let n = 0;
  const poolConfig: PoolConfig = { host: dir, user: SUPERUSER, database: 'postgres' };
  return {
    dir,
    poolConfig,
    connectionString: `postgresql://${SUPERUSER}@/postgres?host=${encodeURIComponent(dir)}`,
    freshSchema: () => `t_${process.pid}_${++n}`,
    stop,
  };
}

/** Runs one statement on the cluster outside any datastore (to inspect or damage it). */
export async function sql(cluster: TestPostgres, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client(cluster.poolConfig);
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}
