/**
 * @module server/catalog
 *
 * The server's built-in plugins, one registration each (see config/plugins), and how the
 * server treats each kind. `resolveServerConfig` reads a file's `plugins` block through
 * this list and `ServerRunner` builds what it configured, so neither names a plugin.
 *
 * Adding a plugin, e.g. a node attestor `x509pop`:
 * 1. a folder `src/attestors/node/x509pop/` holding the attestor and its registration
 *    (`server-plugin.ts`: `definePlugin({ kind: 'NodeAttestor', name: 'x509pop', parseConfig,
 *    build })`, whose `build` declares the deps it needs), and a `testing.ts` exporting
 *    `pluginFixtures` for its kind's conformance suite (`catalog.test.ts` fails without one);
 * 2. one line in `SERVER_CATALOG` below.
 * `catalog.test.ts` ("a node attestor added in one folder and one line") does exactly that
 * with a test-only `NodeAttestor "test_static"` and a real server.
 */
import type { NodeAttestor } from '../attestors/node/attestor.js';
import { joinTokenServerPlugin, type JoinTokenPluginDeps } from '../attestors/node/join_token/server-plugin.js';
import { k8sPsatServerPlugin, type K8sPsatPluginDeps } from '../attestors/node/k8s_psat/server-plugin.js';
import { x509PopServerPlugin, type X509PopPluginDeps } from '../attestors/node/x509pop/server-plugin.js';
import { diskKeyManagerPlugin, type DiskKeyManagerPluginDeps } from '../ca/keymanager/disk/plugin.js';
import { memoryKeyManagerPlugin } from '../ca/keymanager/memory/plugin.js';
import type { KeyManager } from '../ca/key-manager.js';
import type { UpstreamAuthority } from '../ca/upstream.js';
import { diskUpstreamAuthorityPlugin, type DiskUpstreamAuthorityPluginDeps } from '../ca/upstreamauthority/disk/plugin.js';
import type { KindRule, Plugin, ConfiguredOf } from '../config/plugins.js';
import type { Datastore } from '../datastore/datastore.js';
import { sqlDataStorePlugin, type SqlDataStoreDeps } from '../datastore/sql/plugin.js';
import type { ChangeTopic } from './hub.js';
import type { Notifier } from './notifier/notifier.js';
import { k8sBundleNotifierPlugin, type K8sBundlePluginDeps } from './notifier/k8sbundle/plugin.js';

/** A datastore as the server runs it; one several servers share tells of the others' writes (`watch`). */
export interface RunnableDatastore extends Datastore {
  watch?(listener: (change: ChangeTopic) => void): () => void;
}

/** What the server offers each kind's `build`: each plugin takes the part it declares. */
export type DataStoreDeps = SqlDataStoreDeps;
export type KeyManagerDeps = DiskKeyManagerPluginDeps;
export type UpstreamAuthorityDeps = DiskUpstreamAuthorityPluginDeps;
export type NodeAttestorDeps = JoinTokenPluginDeps & K8sPsatPluginDeps & X509PopPluginDeps;
export type NotifierDeps = K8sBundlePluginDeps;

export type ServerPlugin =
  | Plugin<'DataStore', DataStoreDeps, Promise<RunnableDatastore>>
  | Plugin<'KeyManager', KeyManagerDeps, KeyManager>
  | Plugin<'UpstreamAuthority', UpstreamAuthorityDeps, UpstreamAuthority>
  | Plugin<'NodeAttestor', NodeAttestorDeps, NodeAttestor>
  | Plugin<'Notifier', NotifierDeps, Notifier>;

export type ServerPluginKind = ServerPlugin['kind'];
export type ConfiguredServerPlugin = ConfiguredOf<ServerPlugin>;

/** Kinds in the order they are read and built. */
export const SERVER_PLUGIN_KINDS: readonly KindRule[] = [
  { kind: 'DataStore', noun: 'datastore', cardinality: 'one', defaults: ['sql'], required: 'the server has nowhere to keep its state' },
  { kind: 'KeyManager', noun: 'key manager', cardinality: 'one', defaults: ['disk'], required: 'the CA has nowhere to keep its keys' },
  { kind: 'UpstreamAuthority', noun: 'upstream authority', cardinality: 'one' },
  { kind: 'NodeAttestor', noun: 'node attestor', cardinality: 'many', alwaysOn: ['join_token'], required: 'agents could never attest' },
  { kind: 'Notifier', noun: 'notifier', cardinality: 'many' },
];

export const SERVER_CATALOG: readonly ServerPlugin[] = [
  sqlDataStorePlugin,
  diskKeyManagerPlugin,
  memoryKeyManagerPlugin,
  diskUpstreamAuthorityPlugin,
  joinTokenServerPlugin,
  k8sPsatServerPlugin,
  x509PopServerPlugin,
  k8sBundleNotifierPlugin,
];
