/**
 * The k8s workload attestor against a loopback HTTPS "kubelet" (test/k8s/fake-cluster)
 * serving the recorded PodList shape (test/k8s/fixtures), with cgroup files presented
 * through a fixture proc root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../../spiffe/errors.js';
import { FakeKubelet } from '../../../../test/k8s/fake-cluster.js';
import { NODE_NAME, podList, variantPod, WEB_CONTAINER_ID, WEB_INIT_ID, WEB_POD_UID, webPod } from '../../../../test/k8s/fixtures.js';
import { makeTestPki, type TestPki } from '../../../../test/k8s/pki.js';
import { attestWorkload } from '../attestor.js';
import { runWorkloadAttestorConformance } from '../conformance.js';
import { callerOf } from '../testing.js';
import { UnixWorkloadAttestor } from '../unix/unix.js';
import { K8sWorkloadAttestor, type K8sWorkloadAttestorConfig } from './k8s.js';

const pki: TestPki = makeTestPki();
const SA_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bWF5Zmx5Om1heWZseS1hZ2VudCJ9.c2ln';
const tokenPath = join(pki.dir, 'token');
writeFileSync(tokenPath, `${SA_TOKEN}\n`);
const proc = mkdtempSync(join(tmpdir(), 'mayfly-k8s-proc-'));
const kubelet = new FakeKubelet(pki, SA_TOKEN);
const U_ = WEB_POD_UID.replaceAll('-', '_');
const webCgroup = (cid: string, uid = U_): string => `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid}.slice/cri-containerd-${cid}.scope\n`;

let nextPid = 100_000;
/** A fixture /proc/<pid>/cgroup; returns the pid. */
function fixturePid(cgroup: string, pid = nextPid++): number {
  mkdirSync(join(proc, String(pid)), { recursive: true });
  writeFileSync(join(proc, String(pid), 'cgroup'), cgroup);
  return pid;
}

function attestor(over: Partial<K8sWorkloadAttestorConfig> = {}, kubeletOver: Partial<NonNullable<K8sWorkloadAttestorConfig['kubelet']>> = {}): K8sWorkloadAttestor {
  return new K8sWorkloadAttestor({
    procRoot: proc,
    kubelet: { host: '127.0.0.1', securePort: kubelet.port, caPath: pki.caPath, tokenPath, ...kubeletOver },
    sleep: async () => {},
    ...over,
  });
}

beforeAll(async () => {
  await kubelet.start();
});
afterAll(async () => {
  await kubelet.stop();
  rmSync(proc, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

// The conformance suite's workload is a real process; its cgroup file is presented as a pod container's.
const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));
runWorkloadAttestorConformance('k8s', {
  attestor: () => {
    kubelet.answer = podList([webPod()]);
    return attestor();
  },
  startWorkload: () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    if (child.pid !== undefined) fixturePid(webCgroup(WEB_CONTAINER_ID), child.pid);
    return child;
  },
});

const values = (s: { value: string }[]): string[] => s.map((x) => x.value);

describe('k8s workload attestor', () => {
  it('attests a container as the pod the kubelet reports, with SPIRE\'s selectors', async () => {
    kubelet.answer = podList([webPod()]);
    const sels = await attestor().attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID))));
    expect(sels.every((s) => s.type === 'k8s')).toBe(true);
    expect(values(sels).sort()).toEqual(
      [
        'sa:web',
        'ns:shop',
        `node-name:${NODE_NAME}`,
        `pod-uid:${WEB_POD_UID}`,
        'pod-name:web-7d4b9c8f6d-q2x9z',
        'pod-image-count:2',
        'pod-init-image-count:1',
        'pod-image:docker.io/envoyproxy/envoy:v1.30.1',
        'pod-image:docker.io/envoyproxy/envoy@sha256:bf862e5f5eca0a73e7e538224578c5cf867ce2be91b5eaed22afc153c00363eb',
        'pod-image:docker.io/library/nginx:1.27',
        'pod-image:docker.io/library/nginx@sha256:0f04e4f646a3f14bf31d8bc8d885b6c951fdcf42589d06845f64d18aec6a3c4d',
        'pod-init-image:ghcr.io/example/migrate:1.4',
        'pod-init-image:ghcr.io/example/migrate@sha256:4c1e0d7a9b2f3e5d6c8a7b9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d',
        'pod-label:app:web',
        'pod-label:pod-template-hash:7d4b9c8f6d',
        'pod-owner:ReplicaSet:web-7d4b9c8f6d',
        'pod-owner-uid:ReplicaSet:e2a9c1d7-5b3f-4a80-9d16-3c7e8f0b2a41',
        'container-name:web',
        'container-image:docker.io/library/nginx:1.27',
        'container-image:docker.io/library/nginx@sha256:0f04e4f646a3f14bf31d8bc8d885b6c951fdcf42589d06845f64d18aec6a3c4d',
      ].sort(),
    );
    // It asked /pods with the service-account token.
    expect(kubelet.requests.at(-1)).toEqual({ path: '/pods', authorization: `Bearer ${SA_TOKEN}` });
  });

  it('names the container the process is in (init container here), not another of the pod', async () => {
    kubelet.answer = podList([webPod()]);
    const sels = values(await attestor().attest(callerOf(fixturePid(webCgroup(WEB_INIT_ID)))));
    expect(sels).toContain('container-name:migrate');
    expect(sels).not.toContain('container-name:web');
    expect(sels).toContain('container-image:ghcr.io/example/migrate:1.4');
  });

  it('matches by pod UID: a pod of the same name in another namespace is not taken', async () => {
    const uidB = '6a0e3c2d-8f1b-4d7e-b5a9-2c4f6e8a0b13';
    const cidB = 'f'.repeat(64);
    const decoy = variantPod({ name: 'web', namespace: 'other', uid: uidB, containerId: cidB, sa: 'intruder' });
    const mine = variantPod({ name: 'web', namespace: 'shop', uid: WEB_POD_UID, containerId: WEB_CONTAINER_ID, sa: 'web' });
    kubelet.answer = podList([decoy, mine]);
    const sels = values(await attestor().attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID)))));
    expect(sels).toContain('ns:shop');
    expect(sels).toContain('sa:web');
    expect(sels).not.toContain('ns:other');
    // The decoy's container ID under *our* pod UID is not a container of our pod.
    const err = await attestor({ maxPollAttempts: 2 }).attest(callerOf(fixturePid(webCgroup(cidB)))).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED')).toBe(true);
  });

  it('accepts CRI-O and Docker container ID prefixes in the pod list', async () => {
    const cid = 'c'.repeat(64);
    kubelet.answer = podList([variantPod({ name: 'db', namespace: 'shop', uid: WEB_POD_UID, containerId: cid, runtime: 'cri-o', containerName: 'pg' })]);
    expect(values(await attestor().attest(callerOf(fixturePid(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/crio-${cid}.scope\n`))))).toContain('container-name:pg');
  });

  it('polls with backoff while a just-started container is not listed yet, then attests', async () => {
    let calls = 0;
    kubelet.answer = () => (++calls < 4 ? podList([]) : podList([webPod()]));
    const delays: number[] = [];
    const a = attestor({ sleep: async (ms) => void delays.push(ms), pollInitialDelayMs: 100, pollMaxDelayMs: 300 });
    const sels = values(await a.attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID)))));
    expect(sels).toContain('container-name:web');
    expect(calls).toBe(4);
    expect(delays).toEqual([100, 200, 300]);
  });

  it('gives up after maxPollAttempts when the container never shows up', async () => {
    let calls = 0;
    kubelet.answer = () => {
      calls++;
      return podList([]);
    };
    const err = await attestor({ maxPollAttempts: 3 }).attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID)))).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/not in the kubelet's pod list after 3 attempts/);
    expect(calls).toBe(3);
  });

  it('yields no selectors and asks no kubelet for a process outside any pod (the real /proc)', async () => {
    const before = kubelet.requests.length;
    const a = new K8sWorkloadAttestor({ kubelet: { host: '127.0.0.1', securePort: kubelet.port, caPath: pki.caPath, tokenPath } });
    expect(await a.attest(callerOf(process.pid))).toEqual([]);
    expect(kubelet.requests.length).toBe(before);
  });

  it('runs beside the unix attestor: both sets of selectors for a pod container', async () => {
    kubelet.answer = podList([webPod()]);
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => child.once('spawn', r));
    fixturePid(webCgroup(WEB_CONTAINER_ID), child.pid!);
    const merged = await attestWorkload([new UnixWorkloadAttestor(), attestor()], callerOf(child.pid!));
    expect(merged).toContainEqual({ type: 'unix', value: `uid:${process.geteuid!()}` });
    expect(merged).toContainEqual({ type: 'k8s', value: 'ns:shop' });
  });

  describe('fails closed', () => {
    const expectFailure = async (a: K8sWorkloadAttestor, pattern: RegExp): Promise<void> => {
      const err = await a.attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID)))).catch((e: unknown) => e);
      expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(pattern);
    };

    it('when the kubelet is unreachable', async () => {
      const closed = new FakeKubelet(pki, SA_TOKEN);
      await closed.start();
      const port = closed.port;
      await closed.stop();
      await expectFailure(attestor({}, { securePort: port }), /cannot get the pod list.*unreachable/);
    });

    it('when the kubelet answers garbage, an error status, or another kind', async () => {
      kubelet.answer = '<html>oops</html>';
      await expectFailure(attestor(), /not JSON/);
      kubelet.answer = '{"kind":"Status","apiVersion":"v1","status":"Failure"}';
      await expectFailure(attestor(), /not a PodList/);
      kubelet.answer = '{"kind":"PodList","items":[{"metadata":{"name":"x"}}]}';
      await expectFailure(attestor(), /lacks metadata/);
      kubelet.answer = podList([webPod()]);
      kubelet.status = 500;
      try {
        await expectFailure(attestor(), /HTTP 500/);
      } finally {
        kubelet.status = 200;
      }
    });

    it('when the kubelet refuses the token', async () => {
      const wrong = join(pki.dir, 'wrong-token');
      writeFileSync(wrong, 'not-the-token');
      await expectFailure(attestor({}, { tokenPath: wrong }), /HTTP 401.*nodes\/proxy/);
    });

    it('when the kubelet certificate does not chain to the configured CA (and only skips that when told to)', async () => {
      kubelet.answer = podList([webPod()]);
      await expectFailure(attestor({}, { caPath: pki.otherCaPath }), /unreachable/);
      const sels = await attestor({}, { caPath: pki.otherCaPath, skipKubeletVerification: true }).attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID))));
      expect(values(sels)).toContain('ns:shop');
    });

    it('when the kubelet certificate does not name the expected node', async () => {
      kubelet.answer = podList([webPod()]);
      await expectFailure(attestor({}, { serverName: 'kind-worker' }), /unreachable.*kind-worker/);
      const sels = await attestor({}, { serverName: 'localhost' }).attest(callerOf(fixturePid(webCgroup(WEB_CONTAINER_ID))));
      expect(values(sels)).toContain('ns:shop');
    });

    it('when the kubelet answer exceeds the size limit', async () => {
      kubelet.answer = podList([webPod()]);
      await expectFailure(attestor({}, { maxResponseBytes: 1024 }), /larger than 1024 bytes/);
    });

    it('on a cgroup path that imitates a pod outside the kubepods hierarchy, without asking the kubelet', async () => {
      const before = kubelet.requests.length;
      const pid = fixturePid(`0::/user.slice/user-1000.slice/user@1000.service/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${WEB_CONTAINER_ID}.scope\n`);
      const err = await attestor().attest(callerOf(pid)).catch((e: unknown) => e);
      expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED')).toBe(true);
      expect(kubelet.requests.length).toBe(before);
    });
  });
});
