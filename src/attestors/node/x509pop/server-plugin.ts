/**
 * @module attestors/node/x509pop/server-plugin
 *
 * Server catalog registration of `NodeAttestor "x509pop"` (plugin_data read by
 * `parseX509PopServerPluginData`: mode, ca_bundle_path(s), spiffe_prefix,
 * agent_path_template). In `spiffe` mode node certificates chain to the server's own trust
 * bundle, which the server offers as `serverX509Authorities`.
 */
import { definePlugin } from '../../../config/plugins.js';
import { parseX509PopServerPluginData } from './config.js';
import { X509POP_TYPE, X509PopAttestor } from './x509pop.js';

export interface X509PopPluginDeps {
  /** The server trust domain's X.509 authorities (DER), for `mode = "spiffe"`. */
  readonly serverX509Authorities?: () => Promise<readonly Uint8Array[]>;
}

export const x509PopServerPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: X509POP_TYPE,
  parseConfig: (data, where) => parseX509PopServerPluginData(data, where),
  build: (config, deps: X509PopPluginDeps) =>
    new X509PopAttestor({
      mode: config.mode,
      ...(config.caCertificates !== undefined ? { caCertificates: config.caCertificates } : {}),
      ...(config.spiffePrefix !== undefined ? { spiffePrefix: config.spiffePrefix } : {}),
      ...(config.agentPathTemplate !== undefined ? { agentPathTemplate: config.agentPathTemplate } : {}),
      ...(config.mode === 'spiffe' && deps.serverX509Authorities !== undefined ? { serverX509Authorities: deps.serverX509Authorities } : {}),
    }),
});
