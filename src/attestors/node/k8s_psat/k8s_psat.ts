/**
 * @module attestors/node/k8s_psat
 *
 * The `k8s_psat` node attestor (server side): an agent running as a pod presents its
 * projected service-account token; the server asks the cluster's API server whether the
 * token is good, and which pod and node it was issued for.
 *
 * Threats it stops:
 * - A stolen or replayed token from another purpose: the TokenReview names our audiences,
 *   and the answer's `status.audiences` must contain one of them (an authenticator that
 *   ignored the requested audiences would otherwise accept any service-account token).
 * - An expired token, or one for a deleted pod: the API server refuses it (bound tokens
 *   die with their pod); `authenticated` must be true.
 * - Any other service account's token: the username must be `system:serviceaccount:<ns>:<sa>`
 *   with `<ns>:<sa>` in the cluster's allow-list.
 * - A token that does not describe a live pod on a real node: the pod named in
 *   `status.user.extra["authentication.kubernetes.io/pod-name"]` must exist in the token's
 *   namespace with the UID of `.../pod-uid` and the token's service account, and be
 *   scheduled on a node that exists. When the token also names its node
 *   (`.../node-name`, `.../node-uid`: Kubernetes >= 1.30), both must match the pod's node;
 *   any mismatch is refused.
 * The agent ID names the cluster and the node UID
 * (`spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node-uid>`), so the agent pod of a node
 * gets the same ID after a restart and may attest again (`canReattest`), unlike join tokens.
 *
 * Node and pod labels become selectors only for keys the operator allowed
 * (`allowedNodeLabelKeys`, `allowedPodLabelKeys`): labels are often writable by more
 * people than should be able to choose an agent's selectors.
 */
import type { V1TokenReview } from '@kubernetes/client-node';
import type { Selector } from '../../../registration/selector.js';
import { MayflyError } from '../../../spiffe/errors.js';
import type { NodeAttestationContext, NodeAttestationResult, NodeAttestor } from '../attestor.js';
import { ApiServerClient, inClusterConfig, KubernetesApiError, type KubernetesApi } from './apiserver.js';
import { decodePsatPayload, DEFAULT_K8S_PSAT_AUDIENCE, K8S_PSAT_TYPE } from './payload.js';

export { DEFAULT_K8S_PSAT_AUDIENCE, K8S_PSAT_TYPE } from './payload.js';

export const EXTRA_POD_NAME = 'authentication.kubernetes.io/pod-name';
export const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';
export const EXTRA_NODE_NAME = 'authentication.kubernetes.io/node-name';
export const EXTRA_NODE_UID = 'authentication.kubernetes.io/node-uid';

/** The Kubernetes API calls this attestor makes, for RBAC (checked against deploy/k8s by a test). */
export const K8S_PSAT_API_CALLS = [
  { apiGroup: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' },
  { apiGroup: '', resource: 'pods', verb: 'get' },
  { apiGroup: '', resource: 'nodes', verb: 'get' },
] as const;

export interface K8sPsatClusterConfig {
  /** `namespace:serviceaccount` of agents allowed to attest. Required, non-empty. */
  serviceAccountAllowList: readonly string[];
  /** Audiences the token must be issued for. Default `[DEFAULT_K8S_PSAT_AUDIENCE]`. */
  audience?: readonly string[];
  /** Node label keys that become `agent_node_label` selectors. Default none. */
  allowedNodeLabelKeys?: readonly string[];
  /** Pod label keys that become `agent_pod_label` selectors. Default none. */
  allowedPodLabelKeys?: readonly string[];
  /** How to reach this cluster's API server. Default: in-cluster configuration. */
  api?: KubernetesApi;
}

export interface K8sPsatAttestorConfig {
  /** Cluster name → its settings. Cluster names appear in agent IDs: letters, digits, `.`, `_`, `-`. */
  clusters: Readonly<Record<string, K8sPsatClusterConfig>>;
}

const CLUSTER_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$/;
const SA_RE = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;
const NODE_UID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface Cluster {
  allow: ReadonlySet<string>;
  audience: readonly string[];
  nodeLabelKeys: ReadonlySet<string>;
  podLabelKeys: ReadonlySet<string>;
  api: () => Promise<KubernetesApi>;
}

function refused(why: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_ATTESTATION_FAILED', `k8s_psat: ${why}`, cause === undefined ? undefined : { cause });
}

/** The single value of a TokenReview `extra` key, or undefined when absent; several values are refused. */
function extraValue(review: V1TokenReview, key: string): string | undefined {
  const v = review.status?.user?.extra?.[key];
  if (v === undefined || v.length === 0) return undefined;
  if (v.length !== 1 || typeof v[0] !== 'string' || v[0] === '') throw refused(`TokenReview extra ${key} must hold one value`);
  return v[0];
}

export class K8sPsatAttestor implements NodeAttestor {
  readonly type = K8S_PSAT_TYPE;
  readonly #clusters = new Map<string, Cluster>();

  constructor(cfg: K8sPsatAttestorConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.clusters !== 'object') throw new TypeError('K8sPsatAttestor needs { clusters }');
    for (const [name, c] of Object.entries(cfg.clusters)) {
      if (!CLUSTER_RE.test(name)) throw new TypeError(`k8s_psat cluster name ${JSON.stringify(name)} must be letters, digits, '.', '_' or '-' (it becomes part of agent IDs)`);
      if (!Array.isArray(c.serviceAccountAllowList) || c.serviceAccountAllowList.length === 0) {
        throw new TypeError(`k8s_psat cluster ${name}: serviceAccountAllowList must list at least one "namespace:serviceaccount"`);
      }
      for (const sa of c.serviceAccountAllowList) {
        if (!SA_RE.test(`system:serviceaccount:${sa}`)) throw new TypeError(`k8s_psat cluster ${name}: ${JSON.stringify(sa)} is not "namespace:serviceaccount"`);
      }
      const audience = c.audience ?? [DEFAULT_K8S_PSAT_AUDIENCE];
      if (audience.length === 0 || audience.some((a) => typeof a !== 'string' || a === '')) throw new TypeError(`k8s_psat cluster ${name}: audience must be non-empty strings`);
      let api: Promise<KubernetesApi> | undefined = c.api === undefined ? undefined : Promise.resolve(c.api);
      this.#clusters.set(name, {
        allow: new Set(c.serviceAccountAllowList),
        audience: [...audience],
        nodeLabelKeys: new Set(c.allowedNodeLabelKeys ?? []),
        podLabelKeys: new Set(c.allowedPodLabelKeys ?? []),
        // In-cluster config is read at first use, so a server outside Kubernetes can still start.
        api: () => (api ??= inClusterConfig().then((k) => new ApiServerClient(k))),
      });
    }
  }

  async attest(payload: Uint8Array, ctx: NodeAttestationContext): Promise<NodeAttestationResult> {
    let data;
    try {
      data = decodePsatPayload(payload);
    } catch (err) {
      throw refused((err as Error).message, err);
    }
    const cluster = this.#clusters.get(data.cluster);
    if (cluster === undefined) throw refused(`cluster ${JSON.stringify(data.cluster.slice(0, 64))} is not configured on this server`);
    try {
      return await this.#attest(data.cluster, cluster, data.token, ctx);
    } catch (err) {
      if (err instanceof KubernetesApiError) throw refused(`cannot check the token with cluster ${data.cluster}: ${err.message}`, err);
      throw err;
    }
  }

  async #attest(clusterName: string, cluster: Cluster, token: string, ctx: NodeAttestationContext): Promise<NodeAttestationResult> {
    const api = await cluster.api();
    const review = await api.createTokenReview(token, cluster.audience);
    const st = review.status;
    if (st?.authenticated !== true) {
      throw refused(`the API server did not authenticate the token${st?.error ? `: ${st.error}` : ''} (expired, wrong audience, or its pod is gone)`);
    }
    if (!(st.audiences ?? []).some((a) => cluster.audience.includes(a))) {
      throw refused(`the token is not for audience ${cluster.audience.join(' or ')} (TokenReview audiences: ${(st.audiences ?? []).join(', ') || 'none'})`);
    }
    const username = st.user?.username ?? '';
    const m = SA_RE.exec(username);
    if (!m) throw refused(`the token does not belong to a service account (user ${JSON.stringify(username.slice(0, 120))})`);
    const ns = m[1] as string;
    const sa = m[3] as string;
    if (!cluster.allow.has(`${ns}:${sa}`)) throw refused(`service account ${ns}:${sa} is not allowed to attest in cluster ${clusterName}`);

    const podName = extraValue(review, EXTRA_POD_NAME);
    const podUid = extraValue(review, EXTRA_POD_UID);
    if (podName === undefined || podUid === undefined) throw refused('the token is not bound to a pod (use a projected service-account token, not a legacy secret)');
    const tokenNodeName = extraValue(review, EXTRA_NODE_NAME);
    const tokenNodeUid = extraValue(review, EXTRA_NODE_UID);

    const pod = await api.getPod(ns, podName);
    if (pod === undefined) throw refused(`pod ${ns}/${podName} named by the token does not exist`);
    if (pod.metadata?.uid !== podUid) throw refused(`pod ${ns}/${podName} has UID ${pod.metadata?.uid}, not the token's ${podUid}`);
    if ((pod.spec?.serviceAccountName ?? '') !== sa) throw refused(`pod ${ns}/${podName} runs as ${pod.spec?.serviceAccountName}, not ${sa}`);
    const nodeName = pod.spec?.nodeName ?? '';
    if (nodeName === '') throw refused(`pod ${ns}/${podName} is not scheduled on a node`);
    if (tokenNodeName !== undefined && tokenNodeName !== nodeName) throw refused(`the token is for node ${tokenNodeName} but pod ${ns}/${podName} is on ${nodeName}`);

    const node = await api.getNode(nodeName);
    if (node === undefined) throw refused(`node ${nodeName} of pod ${ns}/${podName} does not exist`);
    const nodeUid = node.metadata?.uid ?? '';
    if (!NODE_UID_RE.test(nodeUid)) throw refused(`node ${nodeName} has no usable UID`);
    if (tokenNodeUid !== undefined && tokenNodeUid !== nodeUid) throw refused(`the token is for node UID ${tokenNodeUid} but node ${nodeName} has UID ${nodeUid}`);

    const selectors: Selector[] = [];
    const add = (value: string): void => void selectors.push({ type: K8S_PSAT_TYPE, value });
    add(`cluster:${clusterName}`);
    add(`agent_ns:${ns}`);
    add(`agent_sa:${sa}`);
    add(`agent_pod_name:${podName}`);
    add(`agent_pod_uid:${podUid}`);
    add(`agent_node_name:${nodeName}`);
    add(`agent_node_uid:${nodeUid}`);
    for (const [k, v] of Object.entries(node.metadata?.labels ?? {})) if (cluster.nodeLabelKeys.has(k)) add(`agent_node_label:${k}:${v}`);
    for (const [k, v] of Object.entries(pod.metadata?.labels ?? {})) if (cluster.podLabelKeys.has(k)) add(`agent_pod_label:${k}:${v}`);
    return {
      agentId: ctx.trustDomain.idWithPath(`/spire/agent/${K8S_PSAT_TYPE}/${clusterName}/${nodeUid}`),
      selectors,
      canReattest: true,
    };
  }
}
