/**
 * Every plugin the agent's catalog registers passes its kind's conformance suite, built the
 * way `mayfly-agent run` builds it: its plugin_data read from HCL through the catalog
 * (config/plugins), then `build(deps)`. The fixtures live in each plugin's folder
 * (`testing.ts`); a registration without one fails here.
 */
import { describe, expect, it } from 'vitest';
import { runAgentNodeAttestorConformance, type AgentNodeAttestorFixture } from '../attestors/node/conformance.js';
import { runWorkloadAttestorConformance, type WorkloadAttestorPluginFixture } from '../attestors/workload/conformance.js';
import { catalogFixtureProblems, configureFromHcl, discoverPluginFixtures, fixturesOf } from '../config/testing.js';
import { AGENT_CATALOG, AGENT_PLUGIN_KINDS, type AgentNodeAttestorDeps, type WorkloadAttestorDeps } from './catalog.js';

const found = await discoverPluginFixtures();

const configured = <K extends 'NodeAttestor' | 'WorkloadAttestor'>(kind: K, name: string, pluginData: string) =>
  configureFromHcl(AGENT_CATALOG, AGENT_PLUGIN_KINDS, kind, name, pluginData);

describe('the agent catalog', () => {
  it('has a conformance fixture for every plugin it registers, and registers each name once', () => {
    expect(catalogFixtureProblems(AGENT_CATALOG, 'agent', found)).toEqual([]);
  });
});

for (const plugin of AGENT_CATALOG) {
  for (const f of fixturesOf(found, 'agent', plugin.kind, plugin.name)) {
    const label = `${plugin.kind} "${plugin.name}"${f.label === undefined ? '' : ` (${f.label})`}`;
    if (plugin.kind === 'NodeAttestor') {
      const fx = f as AgentNodeAttestorFixture;
      runAgentNodeAttestorConformance(label, fx, (data, deps) => configured('NodeAttestor', plugin.name, data).build(deps as AgentNodeAttestorDeps));
    } else {
      const fx = f as WorkloadAttestorPluginFixture;
      runWorkloadAttestorConformance(label, { ...fx, attestor: () => configured('WorkloadAttestor', plugin.name, fx.pluginData()).build(fx.deps() as WorkloadAttestorDeps) });
    }
  }
}
