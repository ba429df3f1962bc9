/**
 * @module ca/keymanager/disk/plugin
 *
 * Server catalog registration of `KeyManager "disk" { keys_path }` (the server's default):
 * CA keys in `<dirname(keys_path)>/keys/`, one PKCS#8 file per key, mode 0600 (see
 * ca/disk-key-manager). Unconfigured, the keys go to `<data_dir>/keys/`. The directory is
 * made 0700 before any key is written; a loose one of ours is tightened and logged.
 */
import { dirname } from 'node:path';
import { checkKeys, str } from '../../../config/accessors.js';
import { definePlugin, parsedConfig } from '../../../config/plugins.js';
import { Problems } from '../../../config/problems.js';
import { ensurePrivateDir } from '../../../securefs/index.js';
import { DiskKeyManager } from '../../disk-key-manager.js';

export interface DiskKeyManagerPluginConfig {
  /** Keys go to `<dataDir>/keys/`. */
  dataDir: string;
}

export interface DiskKeyManagerPluginDeps {
  /** Told when a directory of ours was looser than 0700 and got tightened. */
  readonly warn: (fields: Record<string, unknown>, message: string) => void;
}

export const diskKeyManagerPlugin = definePlugin({
  kind: 'KeyManager',
  name: 'disk',
  parseConfig: (data, where) => {
    const p = new Problems();
    checkKeys(data, ['keys_path'], where, p);
    const keysPath = str(data, 'keys_path', where, p);
    if (keysPath === undefined) p.add(`${where}.keys_path is required`);
    return parsedConfig(p, keysPath === undefined ? undefined : { dataDir: dirname(keysPath) });
  },
  defaultConfig: (core): DiskKeyManagerPluginConfig => ({ dataDir: core.dataDir }),
  build: (config: DiskKeyManagerPluginConfig, deps: DiskKeyManagerPluginDeps) => {
    ensurePrivateDir(config.dataDir, { onTightened: (msg) => deps.warn({ dir: config.dataDir }, msg) });
    return new DiskKeyManager({ dataDir: config.dataDir });
  },
});
