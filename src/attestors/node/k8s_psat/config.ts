/**
 * @module attestors/node/k8s_psat/config
 *
 * SPIRE's `NodeAttestor "k8s_psat"` server `plugin_data`, read into K8sPsatAttestorConfig:
 *
 *   clusters = {
 *     "prod" = {
 *       service_account_allow_list = ["mayfly:mayfly-agent"]
 *       audience = ["mayfly-server"]                 # default
 *       allowed_node_label_keys = ["topology.kubernetes.io/zone"]
 *       allowed_pod_label_keys = []
 *     }
 *   }
 *
 * The API server is reached with the pod's in-cluster configuration. SPIRE's
 * `kube_config_file` (to attest agents of another cluster) is not supported yet and is
 * reported as a problem rather than ignored. Every problem is returned, not thrown, so the
 * server's config loader can report them together with its own.
 */
import type { K8sPsatAgentConfig } from './agent.js';
import type { K8sPsatAttestorConfig, K8sPsatClusterConfig } from './k8s_psat.js';

const CLUSTER_KEYS = ['service_account_allow_list', 'audience', 'allowed_node_label_keys', 'allowed_pod_label_keys', 'kube_config_file'] as const;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown, where: string, problems: string[]): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) {
    problems.push(`${where} must be a list of non-empty strings`);
    return undefined;
  }
  return v as string[];
}

/** `data` is the plugin_data object; `where` prefixes messages (e.g. `plugins.NodeAttestor.k8s_psat.plugin_data`). */
export function parseK8sPsatPluginData(data: unknown, where = 'plugins.NodeAttestor.k8s_psat.plugin_data'): { config?: K8sPsatAttestorConfig; problems: string[] } {
  const problems: string[] = [];
  if (!isObj(data)) return { problems: [`${where} must be a block`] };
  for (const k of Object.keys(data)) if (k !== 'clusters') problems.push(`unknown key ${where}.${k} (known: clusters)`);
  const clusters = data.clusters;
  if (!isObj(clusters) || Object.keys(clusters).length === 0) {
    problems.push(`${where}.clusters must map at least one cluster name to its settings`);
    return { problems };
  }
  const out: Record<string, K8sPsatClusterConfig> = {};
  for (const [name, body] of Object.entries(clusters)) {
    const w = `${where}.clusters.${name}`;
    if (!isObj(body)) {
      problems.push(`${w} must be a block`);
      continue;
    }
    for (const k of Object.keys(body)) if (!(CLUSTER_KEYS as readonly string[]).includes(k)) problems.push(`unknown key ${w}.${k} (known: ${CLUSTER_KEYS.join(', ')})`);
    if (body.kube_config_file !== undefined && body.kube_config_file !== '') {
      problems.push(`${w}.kube_config_file: only the in-cluster API server is supported; run the server in the cluster whose agents it attests`);
    }
    const allow = strings(body.service_account_allow_list, `${w}.service_account_allow_list`, problems);
    if (allow === undefined || allow.length === 0) {
      if (body.service_account_allow_list === undefined) problems.push(`${w}.service_account_allow_list is required ("namespace:serviceaccount" of the agents)`);
      continue;
    }
    const c: K8sPsatClusterConfig = { serviceAccountAllowList: allow };
    const audience = strings(body.audience, `${w}.audience`, problems);
    if (audience !== undefined) c.audience = audience;
    const nodeKeys = strings(body.allowed_node_label_keys, `${w}.allowed_node_label_keys`, problems);
    if (nodeKeys !== undefined) c.allowedNodeLabelKeys = nodeKeys;
    const podKeys = strings(body.allowed_pod_label_keys, `${w}.allowed_pod_label_keys`, problems);
    if (podKeys !== undefined) c.allowedPodLabelKeys = podKeys;
    out[name] = c;
  }
  return problems.length > 0 ? { problems } : { config: { clusters: out }, problems };
}

/**
 * SPIRE's agent `NodeAttestor "k8s_psat"` `plugin_data`: `cluster` (required), `token_path`
 * (default /var/run/secrets/tokens/mayfly-agent) and Mayfly's `audience` (default
 * mayfly-server, checked locally for an early clear error).
 */
export function parseK8sPsatAgentPluginData(data: unknown, where = 'plugins.NodeAttestor.k8s_psat.plugin_data'): { config?: K8sPsatAgentConfig; problems: string[] } {
  const problems: string[] = [];
  if (!isObj(data)) return { problems: [`${where} must be a block`] };
  for (const k of Object.keys(data)) if (!['cluster', 'token_path', 'audience'].includes(k)) problems.push(`unknown key ${where}.${k} (known: cluster, token_path, audience)`);
  const s = (k: string): string | undefined => {
    const v = data[k];
    if (v !== undefined && (typeof v !== 'string' || v === '')) problems.push(`${where}.${k} must be a non-empty string`);
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const cluster = s('cluster');
  if (cluster === undefined && data.cluster === undefined) problems.push(`${where}.cluster is required (the name the server knows this cluster by)`);
  const tokenPath = s('token_path');
  const audience = s('audience');
  if (problems.length > 0 || cluster === undefined) return { problems };
  const config: K8sPsatAgentConfig = { cluster };
  if (tokenPath !== undefined) config.tokenPath = tokenPath;
  if (audience !== undefined) config.audience = audience;
  return { config, problems };
}
