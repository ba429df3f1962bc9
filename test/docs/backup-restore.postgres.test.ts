/**
 * docs/backup-restore.md's PostgreSQL restore, done for real against a throwaway cluster:
 * servers (`mayfly-server run -config`) whose `DataStore "sql"` is PostgreSQL; the backup is
 * `pg_dump -Fc` of the database plus exactly the data_dir paths the doc's table "PostgreSQL:
 * the files" names; the restore is `pg_restore` into a new, empty database and those files
 * in a new data_dir. The restored server must be the same CA with the same registrations
 * (as in backup-restore.test.ts), and the agent must resume against it without a token.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { findPostgresBin, sql, startTestPostgres, type TestPostgres } from '../../src/datastore/postgres/testing.js';
import { TrustDomain } from '../../src/spiffe/id.js';
import { parsePemCertificates } from '../../src/spiffe/x509/pem.js';
import { verifyX509Svid } from '../../src/spiffe/x509/verify.js';
import { children, copyBackup, documentedBackupPaths, runRestore, stop } from './restore-support.js';

const dir = mkdtempSync(join(tmpdir(), 'mayfly-restore-pg-'));
let cluster: TestPostgres;

beforeAll(async () => {
  cluster = await startTestPostgres();
});
afterAll(async () => {
  await Promise.all([...children].map((c) => stop(c, 'SIGKILL')));
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A server.conf whose datastore is database `db` of the cluster. */
function conf(name: string, db: string): string[] {
  const path = join(dir, `${name}.conf`);
  writeFileSync(
    path,
    `plugins {
       DataStore "sql" {
         plugin_data {
           database_type = "postgres"
           connection_string = "host=${cluster.dir} user=mayfly dbname=${db}"
         }
       }
     }\n`,
  );
  return ['-config', path];
}

it('a server restored from pg_dump and the files docs/backup-restore.md names is the same CA with the same registrations', async () => {
  const paths = documentedBackupPaths('PostgreSQL: the files');
  expect(paths).not.toContain('datastore/');
  await sql(cluster, 'CREATE DATABASE restored');
  const dump = join(dir, 'mayfly.dump');
  const bin = findPostgresBin();
  const r = await runRestore({
    dir,
    originalArgs: conf('original', 'postgres'),
    restoredArgs: conf('restored', 'restored'),
    backupAndRestore: async (from, to) => {
      await promisify(execFile)(join(bin, 'pg_dump'), ['-h', cluster.dir, '-U', 'mayfly', '-Fc', '-f', dump, 'postgres']);
      await promisify(execFile)(join(bin, 'pg_restore'), ['-h', cluster.dir, '-U', 'mayfly', '-d', 'restored', dump]);
      copyBackup(paths, from, to);
    },
  });
  expect(r.restoredLogMentionsNewAuthority).toBe(false);
  expect(r.after).toEqual(r.before);
  const restored = { trustDomain: TrustDomain.parse('example.org'), x509Authorities: parsePemCertificates(r.after.bundle as string) };
  expect(verifyX509Svid(r.workloadSvid, restored).spiffeId.toString()).toBe('spiffe://example.org/web');
  expect(verifyX509Svid(r.mintedSvid, restored).spiffeId.toString()).toBe('spiffe://example.org/minted');
  expect(verifyX509Svid(r.servedAfter, restored).spiffeId.toString()).toBe('spiffe://example.org/web');
  expect(r.agentLogAfter).toContain('resuming with the stored agent SVID');
});
