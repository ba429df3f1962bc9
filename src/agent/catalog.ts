/**
 * @module agent/catalog
 *
 * The agent's built-in plugins, one registration each (see config/plugins), and how the
 * agent treats each kind. `resolveAgentConfig` reads a file's `plugins` block through this
 * list and `buildAgentPlugins` builds what it configured. Nothing here may load server,
 * CA or datastore code: the agent only talks to the server's API.
 *
 * Adding a plugin: its folder (the plugin, its `agent-plugin.ts` / `plugin.ts` registration
 * and a `testing.ts` exporting `pluginFixtures` for its kind's conformance suite), and one
 * line in `AGENT_CATALOG`.
 */
import { joinTokenAgentPlugin, type JoinTokenAgentDeps } from '../attestors/node/join_token/agent-plugin.js';
import { k8sPsatAgentPlugin, type K8sPsatAgentDeps } from '../attestors/node/k8s_psat/agent-plugin.js';
import { x509PopAgentPlugin } from '../attestors/node/x509pop/agent-plugin.js';
import type { WorkloadAttestor } from '../attestors/workload/attestor.js';
import { k8sWorkloadPlugin, type K8sWorkloadPluginDeps } from '../attestors/workload/k8s/plugin.js';
import { unixWorkloadPlugin } from '../attestors/workload/unix/plugin.js';
import { pluginsOfKind, type ConfiguredOf, type KindRule, type Plugin } from '../config/plugins.js';
import type { AgentNodeAttestor } from './attestation.js';

/** What the agent offers each kind's `build`. */
export type AgentNodeAttestorDeps = JoinTokenAgentDeps & K8sPsatAgentDeps;
export type WorkloadAttestorDeps = K8sWorkloadPluginDeps;

export type AgentPlugin =
  | Plugin<'NodeAttestor', AgentNodeAttestorDeps, AgentNodeAttestor | undefined>
  | Plugin<'WorkloadAttestor', WorkloadAttestorDeps, WorkloadAttestor>;

export type ConfiguredAgentPlugin = ConfiguredOf<AgentPlugin>;

/** Kinds in the order they are read and built. */
export const AGENT_PLUGIN_KINDS: readonly KindRule[] = [
  { kind: 'NodeAttestor', noun: 'node attestor', cardinality: 'one', defaults: ['join_token'] },
  {
    kind: 'KeyManager',
    noun: 'key manager',
    cardinality: 'one',
    ignored: { names: ['disk', 'memory'], why: 'the agent keeps its key in its data directory' },
  },
  { kind: 'WorkloadAttestor', noun: 'workload attestor', cardinality: 'many', defaults: ['unix'] },
];

export const AGENT_CATALOG: readonly AgentPlugin[] = [
  joinTokenAgentPlugin,
  k8sPsatAgentPlugin,
  x509PopAgentPlugin,
  unixWorkloadPlugin,
  k8sWorkloadPlugin,
];

/** The agent's running plugins. */
export interface AgentPlugins {
  /** Undefined when there is no evidence to send (a join token not given: the stored SVID is used). */
  nodeAttestor: AgentNodeAttestor | undefined;
  workloadAttestors: WorkloadAttestor[];
}

/** Builds the configured plugins (`settings.plugins` of agent/config). */
export function buildAgentPlugins(plugins: readonly ConfiguredAgentPlugin[], deps: AgentNodeAttestorDeps): AgentPlugins {
  const [node] = pluginsOfKind(plugins, 'NodeAttestor');
  return { nodeAttestor: node?.build(deps), workloadAttestors: pluginsOfKind(plugins, 'WorkloadAttestor').map((w) => w.build({})) };
}
