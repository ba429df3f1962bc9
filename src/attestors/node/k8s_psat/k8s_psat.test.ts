/**
 * k8s_psat against a loopback HTTPS "API server" (test/k8s/fake-cluster) that verifies real
 * projected service-account JWTs (signed by a test issuer) as kube-apiserver does and
 * answers with the recorded TokenReview, Pod and Node shapes (test/k8s/fixtures).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../../spiffe/errors.js';
import { TrustDomain } from '../../../spiffe/id.js';
import { FakeApiServer, TokenIssuer } from '../../../../test/k8s/fake-cluster.js';
import { AGENT_POD_NAME, AGENT_POD_UID, agentPod, node, NODE_NAME, NODE_UID } from '../../../../test/k8s/fixtures.js';
import { makeTestPki } from '../../../../test/k8s/pki.js';
import { K8sPsatAgentAttestor } from './agent.js';
import { ApiServerClient, type KubernetesApi } from './apiserver.js';
import { K8sPsatAttestor, type K8sPsatClusterConfig } from './k8s_psat.js';
import { decodePsatPayload, encodePsatPayload } from './payload.js';

const pki = makeTestPki();
const SERVER_SA_TOKEN = 'server-sa-token';
const serverTokenPath = join(pki.dir, 'server-token');
writeFileSync(serverTokenPath, SERVER_SA_TOKEN);
const td = TrustDomain.parse('example.org');
const NOW = new Date('2024-06-11T10:00:00Z');
const ctx = { trustDomain: td, now: NOW };
let issuer: TokenIssuer;
let apiServer: FakeApiServer;
let api: ApiServerClient;

beforeAll(async () => {
  issuer = await TokenIssuer.create();
  apiServer = await new FakeApiServer(pki, issuer, SERVER_SA_TOKEN).start();
  apiServer.now = () => NOW;
  api = new ApiServerClient({ server: `https://127.0.0.1:${apiServer.port}`, caPem: pki.caPem, tokenPath: serverTokenPath });
});
afterAll(async () => {
  await apiServer.stop();
  rmSync(pki.dir, { recursive: true, force: true });
});
beforeEach(() => {
  apiServer.pods.clear();
  apiServer.nodes.clear();
  apiServer.ignoreRequestedAudiences = false;
  apiServer.addPod(agentPod());
  apiServer.addNode(node());
});

function attestor(over: Partial<K8sPsatClusterConfig> = {}, clusterApi: KubernetesApi = api): K8sPsatAttestor {
  return new K8sPsatAttestor({ clusters: { 'kind-test': { serviceAccountAllowList: ['mayfly:mayfly-agent'], api: clusterApi, ...over } } });
}

async function token(opts: { audience?: string[]; withNode?: boolean; ttlSeconds?: number; pod?: ReturnType<typeof agentPod>; nodeOverride?: ReturnType<typeof node> } = {}): Promise<string> {
  const withNode = opts.withNode ?? true;
  return issuer.projected({
    audience: opts.audience ?? ['mayfly-server'],
    pod: opts.pod ?? agentPod(),
    ...(withNode ? { node: opts.nodeOverride ?? node() } : {}),
    now: new Date(NOW.getTime() - 60_000),
    ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
  });
}

const payload = (t: string, cluster = 'kind-test'): Buffer => encodePsatPayload({ cluster, token: t });

async function refusal(a: K8sPsatAttestor, p: Uint8Array): Promise<string> {
  const err = await a.attest(p, ctx).catch((e: unknown) => e);
  expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED'), String(err)).toBe(true);
  return (err as Error).message;
}

describe('k8s_psat server attestor', () => {
  it('attests an agent pod: agent ID by cluster and node UID, selectors, re-attestable', async () => {
    const res = await attestor({ allowedNodeLabelKeys: ['topology.kubernetes.io/zone'], allowedPodLabelKeys: ['app.kubernetes.io/name'] }).attest(payload(await token()), ctx);
    expect(res.agentId.toString()).toBe(`spiffe://example.org/spire/agent/k8s_psat/kind-test/${NODE_UID}`);
    expect(res.canReattest).toBe(true);
    expect(res.selectors.map((s) => `${s.type}:${s.value}`)).toEqual([
      'k8s_psat:cluster:kind-test',
      'k8s_psat:agent_ns:mayfly',
      'k8s_psat:agent_sa:mayfly-agent',
      `k8s_psat:agent_pod_name:${AGENT_POD_NAME}`,
      `k8s_psat:agent_pod_uid:${AGENT_POD_UID}`,
      `k8s_psat:agent_node_name:${NODE_NAME}`,
      `k8s_psat:agent_node_uid:${NODE_UID}`,
      'k8s_psat:agent_node_label:topology.kubernetes.io/zone:zone-a',
      'k8s_psat:agent_pod_label:app.kubernetes.io/name:mayfly-agent',
    ]);
    // The calls made are exactly the ones the RBAC in deploy/k8s grants.
    expect(apiServer.calls.slice(-3)).toEqual([
      'POST /apis/authentication.k8s.io/v1/tokenreviews',
      `GET /api/v1/namespaces/mayfly/pods/${AGENT_POD_NAME}`,
      `GET /api/v1/nodes/${NODE_NAME}`,
    ]);
  });

  it('emits no label selectors for keys the operator did not allow', async () => {
    const res = await attestor().attest(payload(await token()), ctx);
    expect(res.selectors.some((s) => s.value.startsWith('agent_node_label:') || s.value.startsWith('agent_pod_label:'))).toBe(false);
  });

  it('attests with a token from a cluster before 1.30 (no node extras), using the pod\'s node', async () => {
    const res = await attestor().attest(payload(await token({ withNode: false })), ctx);
    expect(res.agentId.toString()).toBe(`spiffe://example.org/spire/agent/k8s_psat/kind-test/${NODE_UID}`);
  });

  it('attests again after a restart of the agent pod: same agent ID', async () => {
    const first = await attestor().attest(payload(await token()), ctx);
    apiServer.pods.clear();
    const restarted = agentPod({ name: 'mayfly-agent-b9q4w', uid: '7e6d5c4b-3a29-4817-9f0e-1d2c3b4a5f60' });
    apiServer.addPod(restarted);
    const second = await attestor().attest(payload(await token({ pod: restarted })), ctx);
    expect(second.agentId.toString()).toBe(first.agentId.toString());
  });

  it('refuses a token for another audience (the API server refuses it)', async () => {
    expect(await refusal(attestor(), payload(await token({ audience: ['vault'] })))).toMatch(/did not authenticate.*audiences/);
  });

  it('refuses when the TokenReview answer does not carry our audience (authenticator ignored spec.audiences)', async () => {
    apiServer.ignoreRequestedAudiences = true;
    expect(await refusal(attestor(), payload(await token({ audience: ['https://kubernetes.default.svc.cluster.local'] })))).toMatch(/not for audience mayfly-server/);
  });

  it('checks the audience configured for the cluster', async () => {
    const t = await token({ audience: ['mayfly-prod'] });
    expect(await refusal(attestor(), payload(t))).toMatch(/did not authenticate/);
    const res = await attestor({ audience: ['mayfly-prod'] }).attest(payload(t), ctx);
    expect(res.selectors[0]?.value).toBe('cluster:kind-test');
  });

  it('refuses an expired token', async () => {
    expect(await refusal(attestor(), payload(await token({ ttlSeconds: 30 })))).toMatch(/expired/);
  });

  it('refuses a token not signed by the cluster issuer', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await issuer.projected({ audience: ['mayfly-server'], pod: agentPod(), node: node(), now: NOW, key: privateKey });
    expect(await refusal(attestor(), payload(forged))).toMatch(/did not authenticate/);
  });

  it('refuses a service account that is not allowed, including the same name in another namespace', async () => {
    const intruder = agentPod({ sa: 'default', name: 'debug', uid: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d' });
    apiServer.addPod(intruder);
    expect(await refusal(attestor(), payload(await token({ pod: intruder })))).toMatch(/mayfly:default is not allowed/);
    const otherNs = agentPod({ namespace: 'other', name: 'mayfly-agent-zzz', uid: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e' });
    apiServer.addPod(otherNs);
    expect(await refusal(attestor(), payload(await token({ pod: otherNs })))).toMatch(/other:mayfly-agent is not allowed/);
  });

  it('refuses when the token names a node the pod is not on', async () => {
    const t = await token({ nodeOverride: node({ name: 'kind-worker2', uid: '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a' }) });
    expect(await refusal(attestor(), payload(t))).toMatch(/token is for node kind-worker2 but pod .* is on kind-worker/);
  });

  it('refuses when the token\'s node UID is not the node\'s (node replaced under the same name)', async () => {
    const t = await token({ nodeOverride: node({ uid: '0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f' }) });
    expect(await refusal(attestor(), payload(t))).toMatch(/node UID .* but node kind-worker has UID/);
  });

  it('refuses when the pod\'s node does not exist', async () => {
    apiServer.nodes.clear();
    expect(await refusal(attestor(), payload(await token()))).toMatch(/node kind-worker of pod .* does not exist/);
  });

  it('refuses when the pod is gone or was replaced between review and lookup', async () => {
    const t = await token();
    const gone: KubernetesApi = { createTokenReview: (x, a) => api.createTokenReview(x, a), getPod: async () => undefined, getNode: (n) => api.getNode(n) };
    expect(await refusal(attestor({}, gone), payload(t))).toMatch(/does not exist/);
    const replaced: KubernetesApi = { ...gone, getPod: async () => agentPod({ uid: '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f' }) };
    expect(await refusal(attestor({}, replaced), payload(t))).toMatch(/has UID .* not the token's/);
    const otherSa: KubernetesApi = { ...gone, getPod: async () => agentPod({ sa: 'default' }) };
    expect(await refusal(attestor({}, otherSa), payload(t))).toMatch(/runs as default/);
  });

  it('refuses a legacy (unbound) token without pod extras', async () => {
    const unbound: KubernetesApi = {
      ...api,
      createTokenReview: async (x, a) => {
        const r = await api.createTokenReview(x, a);
        delete r.status?.user?.extra?.['authentication.kubernetes.io/pod-name'];
        return r;
      },
      getPod: (n, p) => api.getPod(n, p),
      getNode: (n) => api.getNode(n),
    };
    expect(await refusal(attestor({}, unbound), payload(await token()))).toMatch(/not bound to a pod/);
  });

  it('refuses an unknown cluster and malformed payloads', async () => {
    const t = await token();
    expect(await refusal(attestor(), payload(t, 'prod'))).toMatch(/cluster "prod" is not configured/);
    expect(await refusal(attestor(), Buffer.from('not json'))).toMatch(/not JSON/);
    expect(await refusal(attestor(), Buffer.from('{"cluster":"kind-test","token":"abc"}'))).toMatch(/not a compact JWT/);
    expect(await refusal(attestor(), new Uint8Array())).toMatch(/empty/);
  });

  it('fails closed when the API server is unreachable or refuses the server\'s own credentials', async () => {
    const t = await token();
    const down = new ApiServerClient({ server: 'https://127.0.0.1:1', caPem: pki.caPem, tokenPath: serverTokenPath });
    expect(await refusal(attestor({}, down), payload(t))).toMatch(/cannot check the token with cluster kind-test.*unreachable/);
    const badCred = join(pki.dir, 'bad-cred');
    writeFileSync(badCred, 'nope');
    const unauth = new ApiServerClient({ server: `https://127.0.0.1:${apiServer.port}`, caPem: pki.caPem, tokenPath: badCred });
    expect(await refusal(attestor({}, unauth), payload(t))).toMatch(/HTTP 401/);
    const wrongCa = new ApiServerClient({ server: `https://127.0.0.1:${apiServer.port}`, caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', tokenPath: serverTokenPath });
    await expect(attestor({}, wrongCa).attest(payload(t), ctx)).rejects.toThrow();
  });

  it('validates its configuration', () => {
    expect(() => new K8sPsatAttestor({ clusters: { 'a/b': { serviceAccountAllowList: ['a:b'] } } })).toThrow(TypeError);
    expect(() => new K8sPsatAttestor({ clusters: { ok: { serviceAccountAllowList: [] } } })).toThrow(TypeError);
    expect(() => new K8sPsatAttestor({ clusters: { ok: { serviceAccountAllowList: ['no-colon'] } } })).toThrow(TypeError);
    expect(() => new K8sPsatAttestor({ clusters: { '..': { serviceAccountAllowList: ['a:b'] } } })).toThrow(TypeError);
  });
});

describe('k8s_psat agent side', () => {
  const tokenFile = join(pki.dir, 'projected-token');

  it('reads the projected token and builds the payload the server attestor accepts', async () => {
    writeFileSync(tokenFile, await token());
    const agent = new K8sPsatAgentAttestor({ cluster: 'kind-test', tokenPath: tokenFile, now: () => NOW });
    const data = await agent.attestationData();
    expect(data.type).toBe('k8s_psat');
    expect(decodePsatPayload(data.payload).cluster).toBe('kind-test');
    const res = await attestor().attest(data.payload, ctx);
    expect(res.agentId.toString()).toBe(`spiffe://example.org/spire/agent/k8s_psat/kind-test/${NODE_UID}`);
  });

  it('re-reads the token file each time (the kubelet rotates it)', async () => {
    const agent = new K8sPsatAgentAttestor({ cluster: 'kind-test', tokenPath: tokenFile, now: () => NOW });
    writeFileSync(tokenFile, await token());
    const a = decodePsatPayload((await agent.attestationData()).payload).token;
    writeFileSync(tokenFile, await token({ ttlSeconds: 7200 }));
    const b = decodePsatPayload((await agent.attestationData()).payload).token;
    expect(a).not.toBe(b);
  });

  it('says clearly when the token is missing, for another audience, or expired', async () => {
    const missing = new K8sPsatAgentAttestor({ cluster: 'kind-test', tokenPath: join(pki.dir, 'nope') });
    await expect(missing.attestationData()).rejects.toThrow(/projected volume mounted.*ENOENT/);
    writeFileSync(tokenFile, await token({ audience: ['vault'] }));
    const agent = new K8sPsatAgentAttestor({ cluster: 'kind-test', tokenPath: tokenFile, now: () => NOW });
    await expect(agent.attestationData()).rejects.toThrow(/audience vault, not mayfly-server/);
    writeFileSync(tokenFile, await token({ ttlSeconds: 30 }));
    await expect(agent.attestationData()).rejects.toThrow(/expired/);
    writeFileSync(tokenFile, 'garbage');
    await expect(agent.attestationData()).rejects.toThrow(/does not hold a JWT/);
  });
});
