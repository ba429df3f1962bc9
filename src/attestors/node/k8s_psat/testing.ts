/**
 * @module attestors/node/k8s_psat/testing
 *
 * Conformance fixtures of `NodeAttestor "k8s_psat"` (server and agent side), over a
 * hand-written in-memory API server that answers TokenReviews for the tokens it issued
 * (projected-token shaped JWTs bound to a pod and node) and serves that pod and node.
 * The HTTPS fake of `test/k8s` judges real signatures; this one only keeps the contract.
 * Not for production use.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { V1Node, V1Pod, V1TokenReview } from '@kubernetes/client-node';
import type { AgentNodeAttestorFixture, NodeAttestorFixture } from '../conformance.js';
import type { KubernetesApi } from './apiserver.js';
import { EXTRA_NODE_NAME, EXTRA_NODE_UID, EXTRA_POD_NAME, EXTRA_POD_UID, K8sPsatAttestor } from './k8s_psat.js';
import { DEFAULT_K8S_PSAT_AUDIENCE, encodePsatPayload } from './payload.js';

const b64 = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An API server in memory: pods, nodes, and the TokenReviews of the tokens it issued. */
export class MemoryKubernetesApi implements KubernetesApi {
  readonly pods = new Map<string, V1Pod>();
  readonly nodes = new Map<string, V1Node>();
  readonly #reviews = new Map<string, { audiences: string[]; sa: string; pod: V1Pod; node: V1Node }>();

  /** A pod `ns/name` running as `sa` on a node of its own; returns a token bound to it. */
  issue(opts: { ns?: string; sa?: string; audience?: string; ttlSeconds?: number } = {}): string {
    const ns = opts.ns ?? 'mayfly';
    const sa = opts.sa ?? 'mayfly-agent';
    const node: V1Node = { metadata: { name: `node-${randomUUID().slice(0, 8)}`, uid: randomUUID() } };
    const pod: V1Pod = { metadata: { namespace: ns, name: `mayfly-agent-${randomUUID().slice(0, 5)}`, uid: randomUUID() }, spec: { containers: [], serviceAccountName: sa, nodeName: node.metadata?.name as string } };
    this.pods.set(`${ns}/${pod.metadata?.name}`, pod);
    this.nodes.set(node.metadata?.name as string, node);
    const audience = opts.audience ?? DEFAULT_K8S_PSAT_AUDIENCE;
    const exp = Math.floor(Date.now() / 1000) + (opts.ttlSeconds ?? 3600);
    const token = `${b64({ alg: 'RS256', kid: 'test' })}.${b64({ aud: [audience], exp, sub: `system:serviceaccount:${ns}:${sa}`, jti: randomUUID() })}.${b64({ sig: randomUUID() })}`;
    this.#reviews.set(token, { audiences: [audience], sa: `system:serviceaccount:${ns}:${sa}`, pod, node });
    return token;
  }

  async createTokenReview(token: string, audiences: readonly string[]): Promise<V1TokenReview> {
    const r = this.#reviews.get(token);
    const aud = (r?.audiences ?? []).filter((a) => audiences.includes(a));
    if (r === undefined || aud.length === 0) return { spec: { token }, status: { authenticated: false, error: 'invalid bearer token' } };
    const extra = { [EXTRA_POD_NAME]: [r.pod.metadata?.name as string], [EXTRA_POD_UID]: [r.pod.metadata?.uid as string], [EXTRA_NODE_NAME]: [r.node.metadata?.name as string], [EXTRA_NODE_UID]: [r.node.metadata?.uid as string] };
    return { spec: { token }, status: { authenticated: true, audiences: aud, user: { username: r.sa, extra } } };
  }

  async getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    return this.pods.get(`${namespace}/${name}`);
  }

  async getNode(name: string): Promise<V1Node | undefined> {
    return this.nodes.get(name);
  }
}

const CLUSTER = 'conformance';
const api = new MemoryKubernetesApi();
const payload = (token: string, cluster = CLUSTER): Uint8Array => encodePsatPayload({ cluster, token });
const PLUGIN_DATA = `clusters = { "${CLUSTER}" = { service_account_allow_list = ["mayfly:mayfly-agent"] } }`;
const serverSide = (): K8sPsatAttestor => new K8sPsatAttestor({ clusters: { [CLUSTER]: { serviceAccountAllowList: ['mayfly:mayfly-agent'], api } } });

const server: NodeAttestorFixture = {
  binary: 'server',
  kind: 'NodeAttestor',
  name: 'k8s_psat',
  pluginData: () => PLUGIN_DATA,
  deps: () => ({ kubernetesApi: () => api }),
  evidence: async () => payload(api.issue()),
  selectors: () => [`k8s_psat:cluster:${CLUSTER}`, 'k8s_psat:agent_ns:mayfly', 'k8s_psat:agent_sa:mayfly-agent'],
  canReattest: true,
  refused: {
    'a cluster this server does not attest': async () => payload(api.issue(), 'elsewhere'),
    'a token the API server does not authenticate': async () => payload(`${b64({ alg: 'none' })}.${b64({ sub: 'x' })}.${b64({})}`),
    'a token for another audience': async () => payload(api.issue({ audience: 'vault' })),
    'a service account not on the allow list': async () => payload(api.issue({ sa: 'default' })),
  },
};

let dir: string | undefined;
// Made on first use by a test of the importing file; removed when that file is done.
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
const inDir = (name: string): string => join((dir ??= mkdtempSync(join(tmpdir(), 'mayfly-psat-fixture-'))), name);

const agent: AgentNodeAttestorFixture = {
  binary: 'agent',
  kind: 'NodeAttestor',
  name: 'k8s_psat',
  pluginData: () => `cluster = "${CLUSTER}"\ntoken_path = "${inDir('token')}"`,
  deps: () => {
    // The kubelet rotates the projected token; the agent re-reads it for every attestation.
    writeFileSync(inDir('token'), `${api.issue()}\n`);
    return {};
  },
  canReattest: true,
  serverSide,
  unavailable: { pluginData: () => `cluster = "${CLUSTER}"\ntoken_path = "${inDir('not-mounted')}"`, deps: () => ({}) },
};

export const pluginFixtures = [server, agent];
