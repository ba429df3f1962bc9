/**
 * Recorded Kubernetes wire shapes for the k8s attestor tests.
 *
 * Where the shapes come from: the field layout of a kubelet `GET /pods` PodList, of Pod and
 * Node objects and of TokenReview answers follows what a kind v1.30 cluster (containerd
 * 1.7, cgroup v2, systemd driver) returns for `kubectl get --raw /api/v1/nodes/<node>/proxy/pods`,
 * `kubectl get pod -o json`, `kubectl get node -o json` and a `kubectl create -f tokenreview.json
 * -o json`, trimmed of fields nobody reads (managedFields, most conditions) and with IDs,
 * names and timestamps replaced. Field names and nesting are the Kubernetes v1 API's; the
 * TokenReview `extra` keys are those the API server sets for projected tokens
 * (`authentication.kubernetes.io/pod-name`, `pod-uid`, and from 1.30 `node-name`, `node-uid`,
 * `credential-id`). Error strings in failed TokenReviews are paraphrased from the API server.
 */
import type { V1Node, V1Pod, V1TokenReview } from '@kubernetes/client-node';

export const NODE_NAME = 'kind-worker';
export const NODE_UID = '5d3c1f0a-9b7e-4c2d-8a61-2f4e6b8d0c13';
export const WEB_POD_UID = '0b8f5d0e-3a41-4c6f-9e27-6d1c2b7a9f84';
export const WEB_CONTAINER_ID = 'a3f1c2d4e5b6978812345678901234567890abcdef1234567890abcdef123456';
export const WEB_SIDECAR_ID = '9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b';
export const WEB_INIT_ID = '1111222233334444555566667777888899990000aaaabbbbccccddddeeeeffff';
export const AGENT_POD_UID = 'c4a7e2b9-1d3f-4e58-a6b0-7f9d2e4c1a35';
export const AGENT_POD_NAME = 'mayfly-agent-x7k2p';

/** One pod as the kubelet's /pods lists it (a Deployment's pod with an init container and a sidecar). */
const RECORDED_WEB_POD = `{
  "metadata": {
    "name": "web-7d4b9c8f6d-q2x9z",
    "generateName": "web-7d4b9c8f6d-",
    "namespace": "shop",
    "uid": "${WEB_POD_UID}",
    "resourceVersion": "48211",
    "creationTimestamp": "2024-06-11T09:14:52Z",
    "labels": { "app": "web", "pod-template-hash": "7d4b9c8f6d" },
    "annotations": { "kubernetes.io/config.seen": "2024-06-11T09:14:52.730120375Z", "kubernetes.io/config.source": "api" },
    "ownerReferences": [
      { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d", "uid": "e2a9c1d7-5b3f-4a80-9d16-3c7e8f0b2a41", "controller": true, "blockOwnerDeletion": true }
    ]
  },
  "spec": {
    "volumes": [ { "name": "kube-api-access-8zq4m", "projected": { "sources": [ { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } } ], "defaultMode": 420 } } ],
    "initContainers": [ { "name": "migrate", "image": "ghcr.io/example/migrate:1.4", "resources": {}, "imagePullPolicy": "IfNotPresent" } ],
    "containers": [
      { "name": "web", "image": "docker.io/library/nginx:1.27", "ports": [ { "containerPort": 80, "protocol": "TCP" } ], "resources": {}, "imagePullPolicy": "IfNotPresent" },
      { "name": "envoy", "image": "docker.io/envoyproxy/envoy:v1.30.1", "resources": {}, "imagePullPolicy": "IfNotPresent" }
    ],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "web",
    "serviceAccount": "web",
    "nodeName": "${NODE_NAME}",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "priority": 0,
    "enableServiceLinks": true,
    "preemptionPolicy": "PreemptLowerPriority"
  },
  "status": {
    "phase": "Running",
    "conditions": [ { "type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-06-11T09:15:01Z" } ],
    "hostIP": "172.18.0.3",
    "hostIPs": [ { "ip": "172.18.0.3" } ],
    "podIP": "10.244.1.7",
    "podIPs": [ { "ip": "10.244.1.7" } ],
    "startTime": "2024-06-11T09:14:52Z",
    "initContainerStatuses": [
      { "name": "migrate", "state": { "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": "2024-06-11T09:14:55Z", "finishedAt": "2024-06-11T09:14:57Z", "containerID": "containerd://${WEB_INIT_ID}" } },
        "lastState": {}, "ready": true, "restartCount": 0, "image": "ghcr.io/example/migrate:1.4",
        "imageID": "ghcr.io/example/migrate@sha256:4c1e0d7a9b2f3e5d6c8a7b9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d", "containerID": "containerd://${WEB_INIT_ID}", "started": false }
    ],
    "containerStatuses": [
      { "name": "envoy", "state": { "running": { "startedAt": "2024-06-11T09:15:00Z" } }, "lastState": {}, "ready": true, "restartCount": 0,
        "image": "docker.io/envoyproxy/envoy:v1.30.1", "imageID": "docker.io/envoyproxy/envoy@sha256:bf862e5f5eca0a73e7e538224578c5cf867ce2be91b5eaed22afc153c00363eb",
        "containerID": "containerd://${WEB_SIDECAR_ID}", "started": true },
      { "name": "web", "state": { "running": { "startedAt": "2024-06-11T09:14:59Z" } }, "lastState": {}, "ready": true, "restartCount": 0,
        "image": "docker.io/library/nginx:1.27", "imageID": "docker.io/library/nginx@sha256:0f04e4f646a3f14bf31d8bc8d885b6c951fdcf42589d06845f64d18aec6a3c4d",
        "containerID": "containerd://${WEB_CONTAINER_ID}", "started": true }
    ],
    "qosClass": "BestEffort"
  }
}`;

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** The recorded web pod (fresh copy). */
export function webPod(): V1Pod {
  return JSON.parse(RECORDED_WEB_POD) as V1Pod;
}

/** A pod like the recorded one with another identity (same shape). */
export function variantPod(opts: { name: string; namespace: string; uid: string; sa?: string; containerId: string; containerName?: string; runtime?: string }): V1Pod {
  const p = clone(webPod());
  p.metadata = { ...p.metadata, name: opts.name, namespace: opts.namespace, uid: opts.uid, labels: { app: opts.name } };
  p.spec = { ...p.spec!, serviceAccountName: opts.sa ?? 'default', serviceAccount: opts.sa ?? 'default' };
  const st = p.status!.containerStatuses![1]!;
  st.name = opts.containerName ?? 'main';
  st.containerID = `${opts.runtime ?? 'containerd'}://${opts.containerId}`;
  p.status!.containerStatuses = [st];
  p.status!.initContainerStatuses = [];
  return p;
}

/** A kubelet /pods answer. */
export function podList(pods: readonly V1Pod[]): string {
  return JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: pods });
}

/** The agent's own pod as the API server returns it (`kubectl get pod -o json`). */
export function agentPod(opts: { uid?: string; name?: string; nodeName?: string; sa?: string; namespace?: string } = {}): V1Pod {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: opts.name ?? AGENT_POD_NAME,
      generateName: 'mayfly-agent-',
      namespace: opts.namespace ?? 'mayfly',
      uid: opts.uid ?? AGENT_POD_UID,
      resourceVersion: '51873',
      creationTimestamp: '2024-06-11T09:20:11Z' as unknown as Date,
      labels: { 'app.kubernetes.io/name': 'mayfly-agent', 'controller-revision-hash': '6b9f7c5d48', 'pod-template-generation': '1' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'mayfly-agent', uid: '3f2e1d0c-4b5a-4968-8776-5a4b3c2d1e0f', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      containers: [{ name: 'mayfly-agent', image: 'ghcr.io/mayfly/mayfly:0.1.0' }],
      serviceAccountName: opts.sa ?? 'mayfly-agent',
      serviceAccount: opts.sa ?? 'mayfly-agent',
      nodeName: opts.nodeName ?? NODE_NAME,
      hostPID: true,
    },
    status: { phase: 'Running', hostIP: '172.18.0.3', podIP: '172.18.0.3', qosClass: 'BestEffort' },
  };
}

/** A node as the API server returns it (`kubectl get node -o json`, trimmed). */
export function node(opts: { name?: string; uid?: string } = {}): V1Node {
  return {
    kind: 'Node',
    apiVersion: 'v1',
    metadata: {
      name: opts.name ?? NODE_NAME,
      uid: opts.uid ?? NODE_UID,
      resourceVersion: '50102',
      creationTimestamp: '2024-06-11T08:58:40Z' as unknown as Date,
      labels: {
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': opts.name ?? NODE_NAME,
        'kubernetes.io/os': 'linux',
        'topology.kubernetes.io/zone': 'zone-a',
      },
      annotations: { 'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///run/containerd/containerd.sock', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'], providerID: `kind://docker/kind/${opts.name ?? NODE_NAME}` },
    status: {
      addresses: [{ type: 'InternalIP', address: '172.18.0.3' }, { type: 'Hostname', address: opts.name ?? NODE_NAME }],
      nodeInfo: {
        machineID: '4b1f2b5c0d6e4f7a8b9c0d1e2f3a4b5c', systemUUID: '4b1f2b5c-0d6e-4f7a-8b9c-0d1e2f3a4b5c', bootID: 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f',
        kernelVersion: '6.5.0-35-generic', osImage: 'Debian GNU/Linux 12 (bookworm)', containerRuntimeVersion: 'containerd://1.7.15',
        kubeletVersion: 'v1.30.0', kubeProxyVersion: 'v1.30.0', operatingSystem: 'linux', architecture: 'amd64',
      },
    },
  };
}

/** An authenticated TokenReview answer, as the API server writes it for a projected token. */
export function tokenReviewOk(opts: { token: string; audiences: string[]; username: string; extra: Record<string, string[]> }): V1TokenReview {
  return {
    kind: 'TokenReview',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { creationTimestamp: null as unknown as Date },
    spec: { token: opts.token, audiences: opts.audiences },
    status: {
      authenticated: true,
      user: {
        username: opts.username,
        uid: '8e0c6d2a-7f41-4b93-a5d8-1c9e3b7f2a60',
        groups: ['system:serviceaccounts', `system:serviceaccounts:${opts.username.split(':')[2]}`, 'system:authenticated'],
        extra: opts.extra,
      },
      audiences: opts.audiences,
    },
  };
}

/** A refused TokenReview answer: no `authenticated`, an `error` string (HTTP 201 all the same). */
export function tokenReviewRefused(token: string, audiences: string[], error: string): V1TokenReview {
  return {
    kind: 'TokenReview',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { creationTimestamp: null as unknown as Date },
    spec: { token, audiences },
    status: { user: {}, error },
  };
}
