/**
 * @module datastore/sql/plugin
 *
 * Server catalog registration of `DataStore "sql"` (the server's default), as SPIRE's
 * configs name it:
 * - `database_type = "sqlite3"` (or none): Mayfly's LevelDB datastore in
 *   `<data_dir>/datastore`; a `connection_string` is not used (a notice says so). A LevelDB
 *   directory belongs to one server process.
 * - `database_type = "postgres"`: the PostgreSQL datastore at `connection_string` (URL or
 *   libpq keyword/value form), which several servers of one trust domain may share.
 */
import { join } from 'node:path';
import { checkKeys, str } from '../../config/accessors.js';
import { definePlugin, parsedConfig, type PluginCore } from '../../config/plugins.js';
import { Problems } from '../../config/problems.js';
import { openLevelDatastore } from '../level/level.js';
import { openPostgresDatastore } from '../postgres/postgres.js';

export type SqlDataStoreConfig = { databaseType: 'sqlite3'; path: string } | { databaseType: 'postgres'; connectionString: string };

export interface SqlDataStoreDeps {
  readonly now?: () => Date;
  /** Told when a directory of ours was looser than 0700 and got tightened. */
  readonly warn: (fields: Record<string, unknown>, message: string) => void;
}

const levelConfig = (core: PluginCore): SqlDataStoreConfig => ({ databaseType: 'sqlite3', path: join(core.dataDir, 'datastore') });

export const sqlDataStorePlugin = definePlugin({
  kind: 'DataStore',
  name: 'sql',
  parseConfig: (data, where, core) => {
    const p = new Problems();
    checkKeys(data, ['database_type', 'connection_string'], where, p);
    const dbType = str(data, 'database_type', where, p);
    const conn = str(data, 'connection_string', where, p);
    if (dbType === 'postgres') {
      if (conn !== undefined && conn.trim() !== '') return parsedConfig(p, { databaseType: 'postgres', connectionString: conn });
      if (data.connection_string === undefined || conn !== undefined) p.add(`${where}.connection_string is required with database_type "postgres"`);
      return parsedConfig(p, undefined);
    }
    if (dbType !== undefined && dbType !== 'sqlite3') p.add(`${where}.database_type: "sqlite3" (stored in LevelDB) or "postgres"; got ${JSON.stringify(dbType)}`);
    const config = levelConfig(core);
    if (dbType === 'sqlite3' && config.databaseType === 'sqlite3') core.notice(`${where}.database_type "sqlite3" means Mayfly's LevelDB datastore in ${config.path}: no SQLite database is opened, and a SPIRE datastore.sqlite3 is not read`);
    if (data.connection_string !== undefined && config.databaseType === 'sqlite3') core.notice(`${where}.connection_string is not used: the datastore is LevelDB in ${config.path}`);
    return parsedConfig(p, config);
  },
  defaultConfig: levelConfig,
  build: (config: SqlDataStoreConfig, deps: SqlDataStoreDeps) => {
    const now = deps.now === undefined ? {} : { now: deps.now };
    if (config.databaseType === 'postgres') return openPostgresDatastore({ connectionString: config.connectionString, ...now });
    const path = config.path;
    return openLevelDatastore({ path, warn: (msg) => deps.warn({ dir: path }, msg), ...now });
  },
});
