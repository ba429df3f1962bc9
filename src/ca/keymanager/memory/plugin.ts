/**
 * @module ca/keymanager/memory/plugin
 *
 * Server catalog registration of `KeyManager "memory"`: CA keys that never touch the disk
 * (a restarted server starts a new CA). No plugin_data.
 */
import { definePlugin, parseNoConfig } from '../../../config/plugins.js';
import { MemoryKeyManager } from '../../key-manager.js';

export const memoryKeyManagerPlugin = definePlugin({
  kind: 'KeyManager',
  name: 'memory',
  parseConfig: parseNoConfig,
  build: () => new MemoryKeyManager(),
});
