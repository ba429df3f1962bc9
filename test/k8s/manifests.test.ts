/**
 * deploy/k8s holds together: every manifest parses (YAML), kustomization lists them all,
 * and names, namespaces, ports, paths, audiences, images and RBAC agree with each other
 * and with the code's exported defaults, so changing a default without the manifests (or
 * the reverse) fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { buildWorkloadAttestors } from '../../src/cli/agent-run.js';
import { parseK8sPsatAgentPluginData, parseK8sPsatPluginData } from '../../src/attestors/node/k8s_psat/config.js';
import { K8S_PSAT_API_CALLS } from '../../src/attestors/node/k8s_psat/k8s_psat.js';
import { DEFAULT_K8S_PSAT_AUDIENCE, DEFAULT_K8S_PSAT_TOKEN_PATH } from '../../src/attestors/node/k8s_psat/payload.js';
import { parseK8sWorkloadPluginData } from '../../src/attestors/workload/k8s/config.js';
import { DEFAULT_KUBELET_SECURE_PORT, KUBELET_API_CALLS, SERVICE_ACCOUNT_DIR } from '../../src/attestors/workload/k8s/kubelet.js';
import { DEFAULT_BIND_PORT, resolveServerConfig } from '../../src/server/config.js';
import { defaultSocketCandidates, defaultSocketPath } from '../../src/securefs/index.js';
import { parseConfigText, type HclObject } from '../../src/config/hcl.js';
import { ENDPOINT_ENV } from '../../src/sdk/endpoint.js';
import { K8S_BUNDLE_API_CALLS } from '../../src/server/notifier/k8sbundle/configmaps.js';

// The containers run as root: the defaults are root's (/run/mayfly/...).
const AGENT_SOCKET_PATH = defaultSocketPath('agent', { uid: 0 });
const SERVER_ADMIN_SOCKET = defaultSocketPath('server', { uid: 0 });

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(repo, 'deploy', 'k8s');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

// Loose shapes: these are checked, not trusted.
/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = any;

function load(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJSON() as Obj).filter((o) => o !== null);
}

const kustomization = load('kustomization.yaml')[0];
const objects: Obj[] = (kustomization.resources as string[]).flatMap((f) => load(f));
const find = (kind: string, name: string, namespace?: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name && (namespace === undefined || x.metadata?.namespace === namespace));
  if (o === undefined) throw new Error(`no ${kind} ${namespace ? `${namespace}/` : ''}${name} in deploy/k8s`);
  return o;
};
const pick = (kind: string, name: string): Obj => find(kind, name);

const server = pick('StatefulSet', 'mayfly-server');
const agent = pick('DaemonSet', 'mayfly-agent');
const sample = pick('Deployment', 'sample-workload');
const serverPod = server.spec.template.spec;
const agentPod = agent.spec.template.spec;
const samplePod = sample.spec.template.spec;
const serverCtr = serverPod.containers[0];
const agentCtr = agentPod.containers[0];

function configFile(ctr: Obj, pod: Obj, ns: string): { text: string; path: string } {
  const i = ctr.args.indexOf('-config');
  expect(i, 'the container passes -config <file>').toBeGreaterThan(0);
  const path = ctr.args[i + 1] as string;
  const mount = ctr.volumeMounts.find((m: Obj) => path.startsWith(`${m.mountPath}/`));
  expect(mount, `a volume is mounted where ${path} lives`).toBeDefined();
  const vol = pod.volumes.find((v: Obj) => v.name === mount.name);
  const cm = find('ConfigMap', vol.configMap.name, ns);
  const key = path.slice(mount.mountPath.length + 1);
  expect(cm.data[key], `ConfigMap ${cm.metadata.name} has key ${key}`).toBeTypeOf('string');
  return { text: cm.data[key], path };
}

const serverConf = parseConfigText(configFile(serverCtr, serverPod, 'mayfly').text) as Obj;
const agentConf = parseConfigText(configFile(agentCtr, agentPod, 'mayfly').text) as Obj;

function rulesOf(roleName: string, saName: string, ns: string): { apiGroup: string; resource: string; verb: string }[] {
  const binding = objects.find((o) => o.kind === 'ClusterRoleBinding' && o.roleRef?.name === roleName);
  expect(binding, `a ClusterRoleBinding for ${roleName}`).toBeDefined();
  expect(binding.roleRef.kind).toBe('ClusterRole');
  expect(binding.subjects).toContainEqual({ kind: 'ServiceAccount', name: saName, namespace: ns });
  find('ServiceAccount', saName, ns);
  const role = find('ClusterRole', roleName);
  return role.rules.flatMap((r: Obj) => r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => ({ apiGroup: g, resource: res, verb: v })))));
}

function portByName(ctr: Obj, name: string): number {
  const p = ctr.ports?.find((x: Obj) => x.name === name);
  expect(p, `container ${ctr.name} has a port named ${name}`).toBeDefined();
  return p.containerPort;
}

describe('deploy/k8s manifests', () => {
  it('parse, and kustomization.yaml lists every manifest in the folder', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
    expect([...kustomization.resources].sort()).toEqual(files);
    expect(objects.length).toBeGreaterThan(10);
    for (const o of objects) {
      expect(o.apiVersion, JSON.stringify(o).slice(0, 80)).toBeTypeOf('string');
      expect(o.metadata?.name).toBeTypeOf('string');
    }
  });

  it('put every namespaced object in a namespace the manifests create', () => {
    const namespaces = new Set(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objects) {
      if (clusterScoped.has(o.kind)) expect(o.metadata.namespace).toBeUndefined();
      else expect(namespaces.has(o.metadata.namespace), `${o.kind} ${o.metadata.name} in ${o.metadata.namespace}`).toBe(true);
    }
  });

  it('use one image, tagged with the package version, for every container', () => {
    const images = [serverPod, agentPod, samplePod].flatMap((p) => p.containers.map((c: Obj) => c.image));
    expect(new Set(images)).toEqual(new Set([`ghcr.io/mayfly/mayfly:${pkg.version}`]));
    expect(kustomization.images).toContainEqual({ name: 'ghcr.io/mayfly/mayfly', newTag: pkg.version });
    expect(serverCtr.args.slice(0, 2)).toEqual(['mayfly-server', 'run']);
    expect(agentCtr.args.slice(0, 2)).toEqual(['mayfly-agent', 'run']);
    for (const c of [serverCtr, agentCtr, samplePod.containers[0]]) expect(Object.keys(pkg.bin)).toContain(c.args[0]);
  });

  it('select their pods by the labels the pod templates carry', () => {
    for (const w of [server, agent, sample]) {
      for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) expect(w.spec.template.metadata.labels[k]).toBe(v);
    }
    const svc = find('Service', 'mayfly-server', 'mayfly');
    expect(server.spec.serviceName).toBe(svc.metadata.name);
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(serverPod.containers && server.spec.template.metadata.labels[k]).toBe(v);
  });

  describe('server', () => {
    it('listens on the default agent API port, published by the Service', () => {
      const svc = find('Service', 'mayfly-server', 'mayfly');
      expect(Number(serverConf.server.bind_port)).toBe(DEFAULT_BIND_PORT);
      expect(serverConf.server.bind_address).toBe('0.0.0.0');
      const sp = svc.spec.ports.find((p: Obj) => p.name === 'grpc');
      expect(sp.port).toBe(DEFAULT_BIND_PORT);
      expect(portByName(serverCtr, sp.targetPort)).toBe(DEFAULT_BIND_PORT);
    });

    it('keeps its data on the persistent volume and its admin socket at the default path', () => {
      const claim = server.spec.volumeClaimTemplates[0].metadata.name;
      const mount = serverCtr.volumeMounts.find((m: Obj) => m.name === claim);
      expect(String(serverConf.server.data_dir).startsWith(`${mount.mountPath}/`)).toBe(true);
      expect(String(serverConf.plugins.KeyManager.disk.plugin_data.keys_path).startsWith(`${mount.mountPath}/`)).toBe(true);
      // `kubectl exec mayfly-server-0 -- mayfly-server entry create ...` finds it without flags.
      expect(serverConf.server.socket_path ?? SERVER_ADMIN_SOCKET).toBe(SERVER_ADMIN_SOCKET);
    });

    it('probes the health listener it configures', () => {
      const hc = serverConf.health_checks;
      expect(hc.listener_enabled).toBe(true);
      expect(hc.bind_address).toBe('0.0.0.0');
      expect(portByName(serverCtr, serverCtr.livenessProbe.httpGet.port)).toBe(Number(hc.bind_port));
      expect(portByName(serverCtr, serverCtr.readinessProbe.httpGet.port)).toBe(Number(hc.bind_port));
      expect(serverCtr.livenessProbe.httpGet.path).toBe(hc.live_path);
      expect(serverCtr.readinessProbe.httpGet.path).toBe(hc.ready_path);
    });

    it('has a config the server accepts, k8s_psat included', () => {
      const settings = resolveServerConfig(serverConf as HclObject);
      expect(settings.bindPort).toBe(DEFAULT_BIND_PORT);
      expect(settings.trustDomain).toBe(agentConf.agent.trust_domain);
      expect(settings.nodeAttestors).toContain('k8s_psat');
      const clusterName = agentConf.plugins.NodeAttestor.k8s_psat.plugin_data.cluster;
      expect(settings.k8sPsat?.clusters[clusterName]?.serviceAccountAllowList).toContain(`${agent.metadata.namespace}:${agentPod.serviceAccountName}`);
    });

    it('has RBAC for exactly the API calls k8s_psat makes', () => {
      const rules = rulesOf('mayfly-server', serverPod.serviceAccountName, 'mayfly');
      expect(new Set(rules.map((r) => JSON.stringify(r)))).toEqual(new Set(K8S_PSAT_API_CALLS.map((c) => JSON.stringify(c))));
    });

    it('allows the agent service account, with the audience its projected token carries', () => {
      const { config, problems } = parseK8sPsatPluginData(serverConf.plugins.NodeAttestor.k8s_psat.plugin_data);
      expect(problems).toEqual([]);
      const clusterName = agentConf.plugins.NodeAttestor.k8s_psat.plugin_data.cluster;
      const cluster = config!.clusters[clusterName];
      expect(cluster, `server knows cluster ${clusterName}`).toBeDefined();
      expect(cluster!.serviceAccountAllowList).toContain(`${agent.metadata.namespace}:${agentPod.serviceAccountName}`);
      const projected = agentPod.volumes.find((v: Obj) => v.projected).projected.sources[0].serviceAccountToken;
      expect(cluster!.audience ?? [DEFAULT_K8S_PSAT_AUDIENCE]).toContain(projected.audience);
    });
  });

  describe('agent', () => {
    it('has a config the agent accepts: k8s_psat node attestation, k8s and unix workload attestors', () => {
      const settings = resolveAgentConfig(agentConf as HclObject, {}, { env: {} });
      expect(settings.nodeAttestor).toBe('k8s_psat');
      expect(settings.joinToken).toBeUndefined();
      expect(settings.k8sPsat?.cluster).toBe(agentConf.plugins.NodeAttestor.k8s_psat.plugin_data.cluster);
      expect(settings.workloadAttestors).toEqual(['k8s', 'unix']);
      expect(buildWorkloadAttestors(settings).map((a) => a.name)).toEqual(['k8s', 'unix']);
      expect(settings.socketPath).toBe(AGENT_SOCKET_PATH);
      expect(settings.serverPort).toBe(DEFAULT_BIND_PORT);
      expect(settings.trustBundlePath).toBe(agentConf.agent.trust_bundle_path);
      // The node name the kubelet's certificate is checked against comes from the env the DaemonSet sets.
      const envName = agentConf.plugins.WorkloadAttestor.k8s.plugin_data.node_name_env;
      expect(resolveAgentConfig(agentConf as HclObject, {}, { env: { [envName]: 'kind-worker' } }).k8s?.kubelet?.serverName).toBe('kind-worker');
    });

    it('reaches the server through its Service, in the same trust domain', () => {
      const svc = find('Service', 'mayfly-server', 'mayfly');
      expect(agentConf.agent.server_address).toBe(`${svc.metadata.name}.${svc.metadata.namespace}.svc`);
      expect(Number(agentConf.agent.server_port)).toBe(svc.spec.ports[0].port);
      expect(agentConf.agent.trust_domain).toBe(serverConf.server.trust_domain);
    });

    it('presents a projected token with the default audience, at the default token path', () => {
      const { config, problems } = parseK8sPsatAgentPluginData(agentConf.plugins.NodeAttestor.k8s_psat.plugin_data);
      expect(problems).toEqual([]);
      const vol = agentPod.volumes.find((v: Obj) => v.projected);
      const sat = vol.projected.sources[0].serviceAccountToken;
      const mount = agentCtr.volumeMounts.find((m: Obj) => m.name === vol.name);
      expect(`${mount.mountPath}/${sat.path}`).toBe(config!.tokenPath);
      expect(config!.tokenPath).toBe(DEFAULT_K8S_PSAT_TOKEN_PATH);
      expect(sat.audience).toBe(DEFAULT_K8S_PSAT_AUDIENCE);
      expect(config!.audience ?? DEFAULT_K8S_PSAT_AUDIENCE).toBe(sat.audience);
    });

    it('serves the Workload API at the default socket path, in a host directory the sample workload mounts', () => {
      expect(agentConf.agent.socket_path).toBe(AGENT_SOCKET_PATH);
      expect(defaultSocketCandidates('agent', { uid: 0 })).toEqual([AGENT_SOCKET_PATH]);
      const sockDir = dirname(AGENT_SOCKET_PATH);
      const mount = agentCtr.volumeMounts.find((m: Obj) => m.mountPath === sockDir);
      expect(mount, `the agent mounts a volume at ${sockDir}`).toBeDefined();
      const hostPath = agentPod.volumes.find((v: Obj) => v.name === mount.name).hostPath.path;
      const wl = samplePod.containers[0];
      const wlVol = samplePod.volumes.find((v: Obj) => v.hostPath?.path === hostPath);
      expect(wlVol, 'the sample workload mounts the same host directory').toBeDefined();
      const wlMount = wl.volumeMounts.find((m: Obj) => m.name === wlVol.name);
      expect(wlMount.readOnly).toBe(true);
      const endpoint = wl.env.find((e: Obj) => e.name === ENDPOINT_ENV).value;
      expect(endpoint).toBe(`unix://${wlMount.mountPath}/${basename(AGENT_SOCKET_PATH)}`);
    });

    it('runs in the host PID namespace and reaches the kubelet on the node, verifying it', () => {
      expect(agentPod.hostPID).toBe(true);
      const { config, problems } = parseK8sWorkloadPluginData(agentConf.plugins.WorkloadAttestor.k8s.plugin_data, { env: {} });
      expect(problems).toEqual([]);
      const k = config!.kubelet!;
      if (k.host === '127.0.0.1' || k.host === undefined) expect(agentPod.hostNetwork).toBe(true);
      expect(k.securePort ?? DEFAULT_KUBELET_SECURE_PORT).toBe(DEFAULT_KUBELET_SECURE_PORT);
      expect(k.readOnlyPort).toBeUndefined();
      expect(k.skipKubeletVerification).not.toBe(true);
      expect(k.caPath).toBe(`${SERVICE_ACCOUNT_DIR}/ca.crt`);
      expect(k.tokenPath).toBe(`${SERVICE_ACCOUNT_DIR}/token`);
      expect(agentPod.automountServiceAccountToken).not.toBe(false);
      // The node name the kubelet certificate must carry comes from the downward API.
      const envName = agentConf.plugins.WorkloadAttestor.k8s.plugin_data.node_name_env;
      expect(agentCtr.env).toContainEqual({ name: envName, valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    });

    it('has RBAC for the kubelet call the k8s attestor makes', () => {
      const rules = rulesOf('mayfly-agent', agentPod.serviceAccountName, 'mayfly');
      for (const c of KUBELET_API_CALLS) expect(rules).toContainEqual(c);
      expect(rules.every((r) => r.verb === 'get' && r.resource.startsWith('nodes/'))).toBe(true);
    });

    it('mounts its data directory and the trust bundle it is told to read', () => {
      expect(agentCtr.volumeMounts.map((m: Obj) => m.mountPath)).toContain(agentConf.agent.data_dir);
      const bundleDir = dirname(agentConf.agent.trust_bundle_path);
      const mount = agentCtr.volumeMounts.find((m: Obj) => m.mountPath === bundleDir);
      const vol = agentPod.volumes.find((v: Obj) => v.name === mount.name);
      expect(vol.configMap.name).toBe('mayfly-bundle');
      expect(agentConf.agent.insecure_bootstrap).toBeUndefined();
    });

    it("bootstraps from the ConfigMap the server's k8sbundle notifier keeps current, with RBAC for exactly its calls", () => {
      const settings = resolveServerConfig(serverConf as HclObject);
      const notifier = settings.plugins.find((p) => p.kind === 'Notifier' && p.name === 'k8sbundle');
      expect(notifier, 'server.conf configures Notifier "k8sbundle"').toBeDefined();
      const cfg = notifier!.config as { namespace: string; configMap: string; configMapKey: string };
      const bundleDir = dirname(agentConf.agent.trust_bundle_path);
      const mount = agentCtr.volumeMounts.find((m: Obj) => m.mountPath === bundleDir);
      const vol = agentPod.volumes.find((v: Obj) => v.name === mount.name);
      expect({ namespace: agent.metadata.namespace, configMap: vol.configMap.name, configMapKey: basename(agentConf.agent.trust_bundle_path) }).toEqual(cfg);
      // The notifier only updates the ConfigMap: the manifests create it.
      find('ConfigMap', cfg.configMap, cfg.namespace);
      const binding = objects.find((o) => o.kind === 'RoleBinding' && o.metadata.namespace === cfg.namespace && o.subjects?.some((x: Obj) => x.name === serverPod.serviceAccountName));
      expect(binding, 'a RoleBinding for the server in the bundle namespace').toBeDefined();
      const role = find('Role', binding.roleRef.name, cfg.namespace);
      const rules = role.rules.flatMap((r: Obj) => r.verbs.map((verb: string) => ({ resource: r.resources[0], name: r.resourceNames?.[0], verb })));
      expect(rules).toEqual(K8S_BUNDLE_API_CALLS.map((c) => ({ resource: c.resource, name: cfg.configMap, verb: c.verb })));
    });
  });

  describe('prometheus-operator variant', () => {
    const variant = join(dir, 'prometheus-operator');
    const kz = parseAllDocuments(readFileSync(join(variant, 'kustomization.yaml'), 'utf8'))[0]!.toJSON() as Obj;
    const monitor = parseAllDocuments(readFileSync(join(variant, 'server-servicemonitor.yaml'), 'utf8'))[0]!.toJSON() as Obj;

    it('is the base plus every manifest in its folder', () => {
      const files = readdirSync(variant).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
      expect(kz.resources).toEqual(['../', ...files]);
    });

    // ServiceMonitor is prometheus-operator's CRD, not in Kubernetes' schemas (test/k8s/schemas.test.ts):
    // the fields it is scraped by are checked here.
    it("has a ServiceMonitor that scrapes the server's Prometheus listener through the Service", () => {
      expect(monitor).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { namespace: 'mayfly' } });
      const svc = find('Service', 'mayfly-server', 'mayfly');
      for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) expect(svc.metadata.labels[k], `Service label ${k}`).toBe(v);
      expect(monitor.spec.namespaceSelector.matchNames).toEqual([svc.metadata.namespace]);
      const [endpoint] = monitor.spec.endpoints;
      expect(endpoint.path).toBe('/metrics');
      const sp = svc.spec.ports.find((p: Obj) => p.name === endpoint.port);
      expect(sp, `the Service has a port named ${endpoint.port}`).toBeDefined();
      const settings = resolveServerConfig(serverConf as HclObject);
      expect(settings.metrics).toMatchObject({ enabled: true, host: '0.0.0.0' });
      expect(portByName(serverCtr, sp.targetPort)).toBe(settings.metrics.port);
      // The pod annotations (annotation-based Prometheus) name the same port and path.
      const ann = server.spec.template.metadata.annotations;
      expect(Number(ann['prometheus.io/port'])).toBe(settings.metrics.port);
      expect(ann['prometheus.io/path']).toBe(endpoint.path);
    });
  });

  describe('SPIFFE CSI driver variant', () => {
    const variant = join(dir, 'csi');
    const kz = parseAllDocuments(readFileSync(join(variant, 'kustomization.yaml'), 'utf8'))[0]!.toJSON() as Obj;
    const extra: Obj[] = (kz.resources as string[]).filter((f) => f !== '../').flatMap((f) => load(join('csi', f)));
    const of = (kind: string): Obj => {
      const o = extra.find((x) => x.kind === kind);
      expect(o, `a ${kind} in deploy/k8s/csi`).toBeDefined();
      return o;
    };
    const driver = of('CSIDriver');
    const ds = of('DaemonSet');
    const wl = of('Deployment');
    const dsPod = ds.spec.template.spec;
    const argOf = (ctr: Obj, flag: string): string => ctr.args[ctr.args.indexOf(flag) + 1];
    const csiCtr = dsPod.containers.find((c: Obj) => c.name === 'spiffe-csi-driver');
    const registrar = dsPod.containers.find((c: Obj) => c.name === 'node-driver-registrar');

    it('is the base plus every manifest in its folder, images tagged as the base', () => {
      const files = readdirSync(variant).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
      expect(kz.resources[0]).toBe('../');
      expect([...kz.resources.slice(1)].sort()).toEqual(files);
      expect(kz.images).toEqual(kustomization.images);
      expect(wl.spec.template.spec.containers[0].image).toBe(`ghcr.io/mayfly/mayfly:${pkg.version}`);
    });

    it('registers csi.spiffe.io for ephemeral inline volumes, under the name the driver and the registrar use', () => {
      expect(driver.metadata.name).toBe('csi.spiffe.io');
      expect(driver.spec).toMatchObject({ attachRequired: false, podInfoOnMount: true, fsGroupPolicy: 'None', volumeLifecycleModes: ['Ephemeral'] });
      expect(argOf(csiCtr, '-plugin-name')).toBe(driver.metadata.name);
      const csiSock = argOf(csiCtr, '-csi-socket-path');
      expect(argOf(registrar, '-csi-address')).toBe(csiSock);
      // The kubelet reaches the driver's socket at the host path of the directory it is in.
      const sockMount = csiCtr.volumeMounts.find((m: Obj) => m.mountPath === dirname(csiSock));
      const hostDir = dsPod.volumes.find((v: Obj) => v.name === sockMount.name).hostPath.path;
      expect(argOf(registrar, '-kubelet-registration-path')).toBe(`${hostDir}/${basename(csiSock)}`);
      expect(hostDir).toBe(`/var/lib/kubelet/plugins/${driver.metadata.name}`);
    });

    it("hands workloads the agent's socket directory, read-only, and the sample workload finds the socket in it", () => {
      const agentSockMount = agentCtr.volumeMounts.find((m: Obj) => m.mountPath === dirname(AGENT_SOCKET_PATH));
      const agentHostDir = agentPod.volumes.find((v: Obj) => v.name === agentSockMount.name).hostPath.path;
      const wlDir = argOf(csiCtr, '-workload-api-socket-dir');
      const m = csiCtr.volumeMounts.find((x: Obj) => x.mountPath === wlDir);
      expect(m.readOnly).toBe(true);
      expect(dsPod.volumes.find((v: Obj) => v.name === m.name).hostPath.path).toBe(agentHostDir);
      const wlPod = wl.spec.template.spec;
      const vol = wlPod.volumes.find((v: Obj) => v.csi !== undefined);
      expect(vol.csi).toEqual({ driver: driver.metadata.name, readOnly: true });
      expect(wlPod.volumes.some((v: Obj) => v.hostPath !== undefined)).toBe(false);
      const wlCtr = wlPod.containers[0];
      const wlMount = wlCtr.volumeMounts.find((x: Obj) => x.name === vol.name);
      expect(wlMount.readOnly).toBe(true);
      expect(wlCtr.env.find((e: Obj) => e.name === ENDPOINT_ENV).value).toBe(`unix://${wlMount.mountPath}/${basename(AGENT_SOCKET_PATH)}`);
      // Same namespace and service account as the base sample: the documented registration selects it.
      expect(wl.metadata.namespace).toBe(sample.metadata.namespace);
      expect(wlPod.serviceAccountName).toBe(samplePod.serviceAccountName);
    });
  });

  it('documents the sample workload\'s registration by its namespace and service account', () => {
    const text = readFileSync(join(dir, 'sample-workload.yaml'), 'utf8');
    expect(text).toContain(`-selector k8s:ns:${sample.metadata.namespace}`);
    expect(text).toContain(`-selector k8s:sa:${samplePod.serviceAccountName}`);
    find('ServiceAccount', samplePod.serviceAccountName, sample.metadata.namespace);
  });
});
