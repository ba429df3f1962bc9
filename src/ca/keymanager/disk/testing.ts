/**
 * @module ca/keymanager/disk/testing
 *
 * Conformance fixture of `KeyManager "disk"`: each store in a fresh temporary directory,
 * named by `keys_path` as SPIRE's configs do. Not for production use.
 */
import { join } from 'node:path';
import type { KeyManagerFixture } from '../../conformance.js';
import { fixtureTempDir } from '../../../securefs/testing.js';

const disk: KeyManagerFixture = {
  binary: 'server',
  kind: 'KeyManager',
  name: 'disk',
  pluginData: () => `keys_path = "${join(fixtureTempDir('mayfly-disk-km-'), 'keys.json')}"`,
  dataDir: () => fixtureTempDir('mayfly-disk-km-data-'),
  deps: () => ({ warn: () => undefined }),
  persistent: true,
};

export const pluginFixtures = [disk];
