/**
 * Every plugin the server's catalog registers passes its kind's conformance suite, built
 * the way `mayfly-server run` builds it: its plugin_data read from HCL through the catalog
 * (config/plugins), then `build(deps)`. The fixtures live in each plugin's folder
 * (`testing.ts`); a registration without one fails here.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { runNodeAttestorConformance, type NodeAttestorFixture } from '../attestors/node/conformance.js';
import { runKeyManagerConformance, runUpstreamAuthorityConformance, type KeyManagerFixture, type UpstreamAuthorityFixture } from '../ca/conformance.js';
import { catalogFixtureProblems, configureFromHcl, discoverPluginFixtures, fixturesOf, testPluginCore } from '../config/testing.js';
import { runDatastoreConformance, type DataStoreFixture } from '../datastore/conformance.js';
import { SERVER_CATALOG, SERVER_PLUGIN_KINDS, type DataStoreDeps, type KeyManagerDeps, type NodeAttestorDeps, type NotifierDeps, type ServerPluginKind, type UpstreamAuthorityDeps } from './catalog.js';
import { runNotifierConformance, type NotifierFixture } from './notifier/conformance.js';

const found = await discoverPluginFixtures();

/** `kind "name"` configured from `pluginData` through the server's catalog. */
const configured = <K extends ServerPluginKind>(kind: K, name: string, pluginData: string, dataDir?: string) =>
  configureFromHcl(SERVER_CATALOG, SERVER_PLUGIN_KINDS, kind, name, pluginData, testPluginCore(dataDir));

describe('the server catalog', () => {
  it('has a conformance fixture for every plugin it registers, and registers each name once', () => {
    expect(catalogFixtureProblems(SERVER_CATALOG, 'server', found)).toEqual([]);
  });
});

for (const plugin of SERVER_CATALOG) {
  for (const f of fixturesOf(found, 'server', plugin.kind, plugin.name)) {
    const label = `${plugin.kind} "${plugin.name}"${f.label === undefined ? '' : ` (${f.label})`}`;
    if (plugin.kind === 'NodeAttestor') {
      const fx = f as NodeAttestorFixture;
      runNodeAttestorConformance(label, fx, () => configured('NodeAttestor', plugin.name, fx.pluginData()).build(fx.deps() as NodeAttestorDeps));
    } else if (plugin.kind === 'KeyManager') {
      const fx = f as KeyManagerFixture;
      runKeyManagerConformance(label, fx, (data) => configured('KeyManager', plugin.name, data, fx.dataDir()).build(fx.deps() as KeyManagerDeps));
    } else if (plugin.kind === 'UpstreamAuthority') {
      const fx = f as UpstreamAuthorityFixture;
      runUpstreamAuthorityConformance(label, fx, (data) => configured('UpstreamAuthority', plugin.name, data).build(fx.deps() as UpstreamAuthorityDeps));
    } else if (plugin.kind === 'Notifier') {
      const fx = f as NotifierFixture;
      runNotifierConformance(label, fx, () => configured('Notifier', plugin.name, fx.pluginData()).build(fx.deps() as NotifierDeps));
    } else {
      const fx = f as unknown as DataStoreFixture;
      describe(label, () => {
        beforeAll(async () => fx.beforeAll?.());
        afterAll(async () => fx.afterAll?.());
        runDatastoreConformance(label, async () => {
          const store = await fx.freshStore();
          const c = configured('DataStore', plugin.name, store.pluginData, store.dataDir);
          const deps = fx.deps() as DataStoreDeps;
          let current = await c.build(deps);
          return {
            ds: current,
            reopen: async () => (current = await c.build(deps)),
            cleanup: async () => {
              await current.close();
              await store.drop();
            },
          };
        });
      });
    }
  }
}
