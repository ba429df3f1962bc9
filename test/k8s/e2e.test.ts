/**
 * End to end on loopback: the server assembled by ServerRunner from deploy/k8s's own
 * server.conf (resolveServerConfig: k8s_psat enabled there), its k8s_psat attestor talking
 * to a TLS "API server" that verifies real projected-token JWTs; the real MayflyAgent
 * configured from deploy/k8s's agent.conf (resolveAgentConfig), attesting with
 * K8sPsatAgentAttestor as its `nodeAttestor` (no join token, no seam) and serving the
 * Workload API with the k8s workload attestor, whose proc root presents a pod cgroup for
 * *this* process's pid while a TLS "kubelet" lists that pod. A grpc-js Workload API client
 * on the agent's socket (real SO_PEERCRED) then gets the SVID of an entry selected by
 * k8s:ns / k8s:sa and parented by a node alias over k8s_psat:cluster. Then the agent is
 * evicted and attests again by itself with a freshly rotated token.
 *
 * Test-only changes to the deploy configs: loopback addresses, temp paths, port 0, the
 * token path, and the API server and kubelet locations (in a pod these come from the
 * in-cluster environment and the node).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../../src/agent/agent.js';
import { resolveAgentConfig } from '../../src/agent/config.js';
import type { AgentLogger } from '../../src/agent/logger.js';
import { K8sPsatAgentAttestor } from '../../src/attestors/node/k8s_psat/agent.js';
import { ApiServerClient } from '../../src/attestors/node/k8s_psat/apiserver.js';
import { K8sWorkloadAttestor } from '../../src/attestors/workload/k8s/k8s.js';
import { UnixWorkloadAttestor } from '../../src/attestors/workload/unix/unix.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig, useServerPlugin } from '../../src/server/config.js';
import { parseConfigText } from '../../src/config/hcl.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { TrustDomain } from '../../src/spiffe/id.js';
import { splitDerCertificates } from '../../src/spiffe/x509/pem.js';
import { verifyX509Svid } from '../../src/spiffe/x509/verify.js';
import { workloadServiceDefinition } from '../../src/wire/workload/proto.js';
import { FakeApiServer, FakeKubelet, TokenIssuer } from './fake-cluster.js';
import { agentPod, node, NODE_UID, podList, WEB_CONTAINER_ID, WEB_POD_UID, webPod } from './fixtures.js';
import { makeTestPki } from './pki.js';

const td = TrustDomain.parse('example.org');
const deployDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'deploy', 'k8s');
const deployConf = (file: string, key: string): string => (parseYaml(readFileSync(join(deployDir, file), 'utf8')) as { data: Record<string, string> }).data[key] as string;

const warnings: { fields: Record<string, unknown>; msg: string }[] = [];
const logger: AgentLogger = {
  debug() {},
  info() {},
  warn: (fields, msg) => void warnings.push({ fields: fields as Record<string, unknown>, msg }),
  error: (fields, msg) => void warnings.push({ fields: fields as Record<string, unknown>, msg }),
};

interface X509SvidMsg {
  svids: { spiffe_id: string; x509_svid: Buffer; bundle: Buffer }[];
}

function fetchFirstX509(socketPath: string, timeoutMs = 20_000): Promise<X509SvidMsg> {
  const Ctor = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
  const client = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return new Promise((resolve, reject) => {
    const call = (client as unknown as { FetchX509SVID(r: object, m: grpc.Metadata): grpc.ClientReadableStream<X509SvidMsg> }).FetchX509SVID({}, md);
    const timer = setTimeout(() => {
      call.cancel();
      client.close();
      reject(new Error('no X509-SVID message in time'));
    }, timeoutMs);
    call.on('data', (m: X509SvidMsg) => {
      clearTimeout(timer);
      call.cancel();
      client.close();
      resolve(m);
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (e.code === grpc.status.CANCELLED) return;
      clearTimeout(timer);
      client.close();
      reject(e);
    });
  });
}

describe('Kubernetes end to end: k8s_psat agent attestation, node alias, k8s workload attestation', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-k8s-e2e-'));
  const pki = makeTestPki();
  const saToken = 'server-and-agent-sa-token';
  const saTokenPath = join(root, 'sa-token');
  const projectedPath = join(root, 'projected', 'mayfly-agent');
  const proc = join(root, 'proc');
  const socketPath = join(root, 'wl', 'api.sock');
  let apiServer: FakeApiServer;
  let kubelet: FakeKubelet;
  let runner: ServerRunner;
  let serverPort: number;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let issuer: TokenIssuer;

  beforeAll(async () => {
    writeFileSync(saTokenPath, saToken);
    issuer = await TokenIssuer.create();
    apiServer = await new FakeApiServer(pki, issuer, saToken).start();
    apiServer.addPod(agentPod());
    apiServer.addNode(node());
    kubelet = await new FakeKubelet(pki, saToken).start();
    kubelet.answer = podList([webPod()]);
    mkdirSync(join(root, 'projected'));
    writeFileSync(projectedPath, await issuer.projected({ audience: ['mayfly-server'], pod: agentPod(), node: node(), now: new Date() }));
    // This process is "the web container of pod web-7d4b9c8f6d-q2x9z" as far as the agent's proc root says.
    mkdirSync(join(proc, String(process.pid)), { recursive: true });
    writeFileSync(
      join(proc, String(process.pid), 'cgroup'),
      `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${WEB_POD_UID.replaceAll('-', '_')}.slice/cri-containerd-${WEB_CONTAINER_ID}.scope\n`,
    );

    // The server exactly as deploy/k8s configures it, but on loopback and temp paths.
    const settings = resolveServerConfig(parseConfigText(deployConf('server-configmap.yaml', 'server.conf')), {
      dataDir: join(root, 'server'),
      socketPath: join(root, 'admin', 'admin.sock'),
      bindAddress: '127.0.0.1',
      bindPort: 0,
    });
    expect(settings.nodeAttestors).toContain('k8s_psat');
    useServerPlugin(settings, 'KeyManager', 'memory');
    settings.metrics.enabled = false;
    settings.health.enabled = false;
    runner = new ServerRunner({
      settings,
      logger: createServerLogger('error'),
      drainMs: 200,
      kubernetesApi: () => new ApiServerClient({ server: `https://127.0.0.1:${apiServer.port}`, caPem: pki.caPem, tokenPath: saTokenPath }),
    });
    await runner.start();
    serverPort = runner.server!.port;
    admin = adminSocketClients(join(root, 'admin', 'admin.sock'));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    admin?.close();
    await runner?.stop();
    await kubelet?.stop();
    await apiServer?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  }, 60_000);

  const createEntries = async (entries: object[]): Promise<void> => {
    const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', { entries });
    for (const r of res.results) expect(r.status.code, r.status.message).toBe(0);
  };

  it('attests the agent with its projected token and serves the pod its SVID by namespace and service account', async () => {
    const alias = 'spiffe://example.org/k8s/demo-cluster/nodes';
    await createEntries([
      { spiffe_id: alias, parent_id: 'spiffe://example.org/spire/server', selectors: [{ type: 'k8s_psat', value: 'cluster:demo-cluster' }] },
      { spiffe_id: 'spiffe://example.org/ns/shop/sa/web', parent_id: alias, selectors: [{ type: 'k8s', value: 'ns:shop' }, { type: 'k8s', value: 'sa:web' }] },
      // Same alias, another namespace: must not reach this caller.
      { spiffe_id: 'spiffe://example.org/ns/other/sa/web', parent_id: alias, selectors: [{ type: 'k8s', value: 'ns:other' }, { type: 'k8s', value: 'sa:web' }] },
    ]);

    // The agent as deploy/k8s configures it: k8s_psat with the cluster name the server knows.
    const conf = resolveAgentConfig(parseConfigText(deployConf('agent-configmap.yaml', 'agent.conf')), { dataDir: join(root, 'agent'), socketPath }, { env: {} });
    expect(conf.nodeAttestor).toBe('k8s_psat');
    expect(conf.joinToken).toBeUndefined();
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${serverPort}`,
      trustDomain: conf.trustDomain,
      dataDir: conf.dataDir,
      socketPath: conf.socketPath,
      nodeAttestor: new K8sPsatAgentAttestor({ ...conf.k8sPsat!, tokenPath: projectedPath }),
      // deploy/k8s mounts the server's bundle from a ConfigMap; here trust on first use.
      insecureBootstrap: true,
      logger,
      workloadAttestors: [
        new UnixWorkloadAttestor(),
        new K8sWorkloadAttestor({ procRoot: proc, kubelet: { host: '127.0.0.1', securePort: kubelet.port, caPath: pki.caPath, tokenPath: saTokenPath, serverName: 'localhost' } }),
      ],
    });
    await agent.start();
    await agent.whenReady(20_000);
    expect(agent.agentSvid?.spiffeId).toBe(`spiffe://example.org/spire/agent/k8s_psat/demo-cluster/${NODE_UID}`);

    const msg = await fetchFirstX509(socketPath);
    expect(msg.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/ns/shop/sa/web']);
    const s = msg.svids[0]!;
    const v = verifyX509Svid(splitDerCertificates(s.x509_svid), { trustDomain: td, x509Authorities: splitDerCertificates(s.bundle) });
    expect(v.spiffeId.toString()).toBe('spiffe://example.org/ns/shop/sa/web');
    // The kubelet was asked, with the service-account token.
    expect(kubelet.requests.some((r) => r.authorization === `Bearer ${saToken}`)).toBe(true);
    // The server recorded the agent's node selectors.
    const got = await unaryCall<{ selectors: { type: string; value: string }[]; attestation_type: string; can_reattest: boolean }>(admin.Agent, 'GetAgent', { id: agent.agentSvid?.spiffeId });
    expect(got.attestation_type).toBe('k8s_psat');
    expect(got.can_reattest).toBe(true);
    expect(got.selectors).toContainEqual({ type: 'k8s_psat', value: 'agent_node_uid:' + NODE_UID });
  }, 60_000);

  it('attests again by itself, with the rotated projected token, after the server evicts it', async () => {
    const agentId = agent.agentSvid!.spiffeId;
    const before = agent.agentSvid!.serialHex;
    const reviewsBefore = apiServer.calls.filter((c) => c.includes('tokenreviews')).length;
    // The kubelet rotated the token; the agent reads the file afresh for each attestation.
    const rotated = await issuer.projected({ audience: ['mayfly-server'], pod: agentPod(), node: node(), now: new Date() });
    writeFileSync(projectedPath, rotated);
    await unaryCall(admin.Agent, 'DeleteAgent', { id: agentId });

    let got: { x509svid_serial_number: string; attestation_type: string } | undefined;
    for (let i = 0; i < 200; i++) {
      got = await unaryCall<{ x509svid_serial_number: string; attestation_type: string }>(admin.Agent, 'GetAgent', { id: agentId }).catch(() => undefined);
      if (got !== undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(got, 'the agent is attested again').toBeDefined();
    expect(got!.attestation_type).toBe('k8s_psat');
    expect(apiServer.calls.filter((c) => c.includes('tokenreviews')).length).toBeGreaterThan(reviewsBefore);
    await agent.whenReady(20_000);
    expect(agent.agentSvid!.spiffeId).toBe(agentId);
    expect(agent.agentSvid!.serialHex).not.toBe(before);
    expect(agent.state).toBe('ready');
    // And it serves the workload again through the re-opened stream.
    const msg = await fetchFirstX509(socketPath);
    expect(msg.svids.map((x) => x.spiffe_id)).toEqual(['spiffe://example.org/ns/shop/sa/web']);
  }, 60_000);

  it('fails the Workload API call closed when the kubelet stops answering', async () => {
    await kubelet.stop();
    const err = await fetchFirstX509(socketPath, 20_000).catch((e: unknown) => e);
    expect((err as grpc.ServiceError).code, String(err)).toBe(grpc.status.UNAVAILABLE);
    const w = warnings.find((x) => x.msg === 'workload attestation failed');
    expect(w, JSON.stringify(warnings.map((x) => x.msg))).toBeDefined();
    // Logged without a stack: the error's message (and code) only.
    expect(String(w?.fields.error)).toMatch(/k8s attestor: .*cannot get the pod list.*unreachable/);
  }, 30_000);
});
