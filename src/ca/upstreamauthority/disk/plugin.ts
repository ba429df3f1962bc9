/**
 * @module ca/upstreamauthority/disk/plugin
 *
 * Server catalog registration of `UpstreamAuthority "disk" { cert_file_path key_file_path
 * bundle_file_path }`: the operator's CA from files (ca/upstream checks them when built).
 */
import { checkKeys, str } from '../../../config/accessors.js';
import { definePlugin, parsedConfig } from '../../../config/plugins.js';
import { Problems } from '../../../config/problems.js';
import { loadDiskUpstreamAuthority, type DiskUpstreamAuthorityConfig } from '../../upstream.js';

/** The files (the clock comes from the deps). */
export type DiskUpstreamAuthorityPluginConfig = Omit<DiskUpstreamAuthorityConfig, 'now'>;

export interface DiskUpstreamAuthorityPluginDeps {
  readonly now?: () => Date;
}

export const diskUpstreamAuthorityPlugin = definePlugin({
  kind: 'UpstreamAuthority',
  name: 'disk',
  parseConfig: (data, where) => {
    const p = new Problems();
    checkKeys(data, ['cert_file_path', 'key_file_path', 'bundle_file_path'], where, p);
    const certFile = str(data, 'cert_file_path', where, p);
    const keyFile = str(data, 'key_file_path', where, p);
    const bundleFile = str(data, 'bundle_file_path', where, p);
    if (certFile === undefined || keyFile === undefined) {
      p.add(`${where}.cert_file_path and key_file_path are required`);
      return parsedConfig<DiskUpstreamAuthorityPluginConfig>(p, undefined);
    }
    const config: DiskUpstreamAuthorityPluginConfig = bundleFile === undefined ? { certFile, keyFile } : { certFile, keyFile, bundleFile };
    return parsedConfig(p, config);
  },
  build: (config, deps: DiskUpstreamAuthorityPluginDeps) => loadDiskUpstreamAuthority(deps.now === undefined ? config : { ...config, now: deps.now }),
});
