/**
 * @module datastore/sql/testing
 *
 * Conformance fixtures of `DataStore "sql"`: `database_type = "sqlite3"` (LevelDB in a
 * fresh data directory per store) and `"postgres"` (a fresh database per store on a
 * throwaway cluster, datastore/postgres/testing). Not for production use.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataStoreFixture } from '../conformance.js';
import { sql, startTestPostgres, type TestPostgres } from '../postgres/testing.js';

const of = { binary: 'server', kind: 'DataStore', name: 'sql', deps: (): object => ({ warn: () => undefined }) } as const;

const sqlite3: DataStoreFixture = {
  ...of,
  label: 'sqlite3 (LevelDB)',
  freshStore: async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mayfly-sql-level-'));
    return { pluginData: 'database_type = "sqlite3"', dataDir, drop: () => rm(dataDir, { recursive: true, force: true }) };
  },
};

let cluster: TestPostgres | undefined;
let databases = 0;

const postgres: DataStoreFixture = {
  ...of,
  label: 'postgres',
  beforeAll: async () => {
    cluster = await startTestPostgres();
  },
  afterAll: async () => {
    await cluster?.stop();
    cluster = undefined;
  },
  freshStore: async () => {
    const c = cluster;
    if (c === undefined) throw new TypeError('the postgres fixture needs its beforeAll first');
    const db = `conformance_${process.pid}_${++databases}`;
    await sql(c, `CREATE DATABASE "${db}"`);
    return {
      pluginData: `database_type = "postgres"\nconnection_string = "host=${c.dir} user=mayfly dbname=${db}"`,
      dataDir: '/nonexistent',
      drop: async () => void (await sql(c, `DROP DATABASE "${db}" WITH (FORCE)`)),
    };
  },
};

export const pluginFixtures = [sqlite3, postgres];
