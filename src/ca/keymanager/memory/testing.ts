/**
 * @module ca/keymanager/memory/testing
 *
 * Conformance fixture of `KeyManager "memory"`: no plugin_data, nothing kept. Not for
 * production use.
 */
import type { KeyManagerFixture } from '../../conformance.js';

const memory: KeyManagerFixture = {
  binary: 'server',
  kind: 'KeyManager',
  name: 'memory',
  pluginData: () => '',
  dataDir: () => '/nonexistent',
  deps: () => ({ warn: () => undefined }),
  persistent: false,
};

export const pluginFixtures = [memory];
