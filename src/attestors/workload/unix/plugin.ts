/**
 * @module attestors/workload/unix/plugin
 *
 * Agent catalog registration of `WorkloadAttestor "unix"` (the agent's default): plugin_data
 * `discover_workload_path` (emit `unix:path` and `unix:sha256`) and `workload_size_limit`
 * (bytes), as SPIRE's.
 */
import { checkKeys } from '../../../config/accessors.js';
import { definePlugin, parsedConfig } from '../../../config/plugins.js';
import { Problems } from '../../../config/problems.js';
import { UnixWorkloadAttestor } from './unix.js';

export interface UnixPluginConfig {
  discoverWorkloadPath: boolean;
  workloadSizeLimit?: number;
}

export const unixWorkloadPlugin = definePlugin({
  kind: 'WorkloadAttestor',
  name: 'unix',
  parseConfig: (data, where) => {
    const p = new Problems();
    checkKeys(data, ['discover_workload_path', 'workload_size_limit'], where, p);
    const config: UnixPluginConfig = { discoverWorkloadPath: false };
    const discover = data.discover_workload_path;
    if (discover !== undefined) {
      if (typeof discover !== 'boolean') p.add(`${where}.discover_workload_path must be true or false`);
      else config.discoverWorkloadPath = discover;
    }
    const limit = data.workload_size_limit;
    if (limit !== undefined) {
      if (typeof limit !== 'number' || !Number.isInteger(limit)) p.add(`${where}.workload_size_limit must be an integer (bytes)`);
      else config.workloadSizeLimit = limit;
    }
    return parsedConfig(p, config);
  },
  defaultConfig: (): UnixPluginConfig => ({ discoverWorkloadPath: false }),
  build: (config) => new UnixWorkloadAttestor(config),
});
