/**
 * @module attestors/workload/k8s/testing
 *
 * Conformance fixture of `WorkloadAttestor "k8s"`: real processes whose cgroup files (in a
 * fixture proc root) place them in two different pods of a hand-written pod list, so the
 * attestor must tell them apart by pod. Not for production use.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { WorkloadAttestorPluginFixture } from '../conformance.js';
import type { KubeletPod } from './kubelet.js';

interface FixturePod {
  pod: KubeletPod;
  uid: string;
  containerId: string;
}

function fixturePod(name: string): FixturePod {
  const uid = randomUUID();
  const containerId = randomBytes(32).toString('hex');
  const pod: KubeletPod = {
    metadata: { name, namespace: 'shop', uid, labels: { app: name } },
    spec: { containers: [{ name: 'main', image: `registry.test/${name}:1` }], serviceAccountName: name, nodeName: 'node-1' },
    status: { containerStatuses: [{ name: 'main', image: `registry.test/${name}:1`, imageID: `registry.test/${name}@sha256:${'0'.repeat(64)}`, containerID: `containerd://${containerId}`, ready: true, restartCount: 0 }] },
  };
  return { pod, uid, containerId };
}

const pods = [fixturePod('web'), fixturePod('worker')];
let procRoot: string | undefined;
// Made on first use by a test of the importing file; removed when that file is done.
afterAll(() => {
  if (procRoot !== undefined) rmSync(procRoot, { recursive: true, force: true });
  procRoot = undefined;
});
const proc = (): string => (procRoot ??= mkdtempSync(join(tmpdir(), 'mayfly-k8s-fixture-proc-')));

/** A `sleep` whose fixture cgroup file puts it in `p`'s container. */
function startIn(p: FixturePod): ChildProcess {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const dir = join(proc(), String(child.pid));
  mkdirSync(dir, { recursive: true });
  const slice = p.uid.replaceAll('-', '_');
  writeFileSync(join(dir, 'cgroup'), `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${slice}.slice/cri-containerd-${p.containerId}.scope\n`);
  return child;
}

const [web, worker] = pods as [FixturePod, FixturePod];

const k8s: WorkloadAttestorPluginFixture = {
  binary: 'agent',
  kind: 'WorkloadAttestor',
  name: 'k8s',
  pluginData: () => 'node_name = "node-1"',
  deps: () => ({ procRoot: proc(), podLister: { listPods: async () => pods.map((p) => p.pod) } }),
  startWorkload: () => startIn(web),
  expectedValues: () => [`pod-uid:${web.uid}`, 'ns:shop', 'pod-name:web', 'container-name:main'],
  other: { start: () => startIn(worker), differsIn: ['pod-uid:', 'pod-name:', 'sa:'] },
};

export const pluginFixtures = [k8s];
