/**
 * @module attestors/workload/k8s
 *
 * The `k8s` workload attestor: the pod and container a calling process runs in, as the
 * kubelet of this node reports them. Selectors match SPIRE's k8s workload attestor:
 * `k8s:ns`, `k8s:sa`, `k8s:pod-name`, `k8s:pod-uid`, `k8s:node-name`,
 * `k8s:pod-label:<key>:<value>`, `k8s:pod-owner:<Kind>:<name>`,
 * `k8s:pod-owner-uid:<Kind>:<uid>`, `k8s:pod-image:<image>`, `k8s:pod-init-image:<image>`,
 * `k8s:pod-image-count:<n>`, `k8s:pod-init-image-count:<n>`, `k8s:container-name:<name>`
 * and `k8s:container-image:<image>` (images both as named in the spec and as the resolved
 * `imageID`, so entries can pin a digest).
 *
 * Threat: a workload claiming another pod's identity. The pod UID and container ID come
 * from the process's cgroup path, which the kernel reports for the pid read at accept
 * (see ./cgroup for the shapes accepted and why); the pod's facts come from the kubelet
 * (see ./kubelet), matched by UID and container ID, never by name. The attestor fails
 * closed: a kubelet that cannot be reached or answers garbage fails attestation
 * (ERR_ATTESTATION_FAILED) instead of yielding fewer selectors. A container the kubelet
 * does not list yet (it just started) is retried a bounded number of times with backoff,
 * then fails.
 *
 * A process that is not in a pod yields [] (no error): the unix attestor runs beside this one.
 */
import { readFile } from 'node:fs/promises';
import type { V1ContainerStatus } from '@kubernetes/client-node';
import { MayflyError } from '../../../spiffe/errors.js';
import { callerPid, type WorkloadAttestor, type WorkloadCaller, type WorkloadSelector } from '../attestor.js';
import { CgroupParseError, parseCgroupFile, type PodContainerRef } from './cgroup.js';
import { KubeletClient, KubeletError, type KubeletClientConfig, type KubeletPod } from './kubelet.js';

export const K8S_SELECTOR_TYPE = 'k8s';

/** Something that lists the node's pods; `KubeletClient` is the real one. */
export interface PodLister {
  listPods(): Promise<KubeletPod[]>;
  readonly url?: string;
}

export interface K8sWorkloadAttestorConfig {
  /** Root of the proc filesystem (tests point it at fixtures). Default /proc. */
  procRoot?: string;
  /** How to reach the kubelet (see KubeletClientConfig). */
  kubelet?: KubeletClientConfig;
  /** Use this instead of a KubeletClient built from `kubelet`. */
  podLister?: PodLister;
  /** Times the pod list is fetched while the container is not listed yet. Default 10. */
  maxPollAttempts?: number;
  /** First wait between polls (ms), doubled each time up to `pollMaxDelayMs`. Default 100. */
  pollInitialDelayMs?: number;
  /** Longest wait between polls (ms). Default 2000. */
  pollMaxDelayMs?: number;
  /** How to wait (tests may shorten it). Default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

function failed(pid: number, why: string, cause?: unknown): MayflyError {
  return new MayflyError('ERR_ATTESTATION_FAILED', `k8s attestor: process ${pid}: ${why}`, cause === undefined ? undefined : { cause });
}

/** The runtime-prefixed container ID (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`) without its prefix. */
function bareContainerId(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  const i = id.indexOf('://');
  return i < 0 ? id : id.slice(i + 3);
}

/** image and imageID of each status, deduplicated, empties dropped (SPIRE emits both). */
function images(statuses: readonly V1ContainerStatus[] | undefined): string[] {
  const out = new Set<string>();
  for (const s of statuses ?? []) {
    if (s.image) out.add(s.image);
    if (s.imageID) out.add(s.imageID);
  }
  return [...out];
}

/** The selectors of `pod` for the process in container `status`. */
export function podSelectors(pod: KubeletPod, status: V1ContainerStatus): WorkloadSelector[] {
  const values: string[] = [];
  const m = pod.metadata ?? {};
  const st = pod.status ?? {};
  if (pod.spec?.serviceAccountName) values.push(`sa:${pod.spec.serviceAccountName}`);
  values.push(`ns:${m.namespace}`);
  if (pod.spec?.nodeName) values.push(`node-name:${pod.spec.nodeName}`);
  values.push(`pod-uid:${m.uid}`, `pod-name:${m.name}`);
  values.push(`pod-image-count:${(st.containerStatuses ?? []).length}`, `pod-init-image-count:${(st.initContainerStatuses ?? []).length}`);
  for (const i of images(st.containerStatuses)) values.push(`pod-image:${i}`);
  for (const i of images(st.initContainerStatuses)) values.push(`pod-init-image:${i}`);
  for (const [k, v] of Object.entries(m.labels ?? {})) values.push(`pod-label:${k}:${v}`);
  for (const o of m.ownerReferences ?? []) values.push(`pod-owner:${o.kind}:${o.name}`, `pod-owner-uid:${o.kind}:${o.uid}`);
  values.push(`container-name:${status.name}`);
  for (const i of images([status])) values.push(`container-image:${i}`);
  return [...new Set(values)].map((value) => ({ type: K8S_SELECTOR_TYPE, value }));
}

/** The pod with UID `ref.podUid` and its status for container `ref.containerId`, if listed. */
export function findContainer(pods: readonly KubeletPod[], ref: PodContainerRef): { pod: KubeletPod; status: V1ContainerStatus } | undefined {
  for (const pod of pods) {
    if (pod.metadata?.uid !== ref.podUid) continue;
    const st = pod.status ?? {};
    for (const status of [...(st.containerStatuses ?? []), ...(st.initContainerStatuses ?? []), ...(st.ephemeralContainerStatuses ?? [])]) {
      if (bareContainerId(status.containerID) === ref.containerId) return { pod, status };
    }
  }
  return undefined;
}

export class K8sWorkloadAttestor implements WorkloadAttestor {
  readonly name = K8S_SELECTOR_TYPE;
  readonly #proc: string;
  readonly #pods: PodLister;
  readonly #attempts: number;
  readonly #delay0: number;
  readonly #delayMax: number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(cfg: K8sWorkloadAttestorConfig = {}) {
    this.#proc = cfg.procRoot ?? '/proc';
    this.#pods = cfg.podLister ?? new KubeletClient(cfg.kubelet ?? {});
    this.#attempts = cfg.maxPollAttempts ?? 10;
    if (!Number.isInteger(this.#attempts) || this.#attempts < 1 || this.#attempts > 1000) throw new TypeError('maxPollAttempts must be an integer from 1 to 1000');
    this.#delay0 = cfg.pollInitialDelayMs ?? 100;
    this.#delayMax = cfg.pollMaxDelayMs ?? 2000;
    this.#sleep = cfg.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  async attest(caller: WorkloadCaller): Promise<WorkloadSelector[]> {
    // A pod's cgroup survives exec, so nothing here depends on the executable.
    const pid = callerPid(caller);
    let text: string;
    try {
      text = await readFile(`${this.#proc}/${pid}/cgroup`, 'utf8');
    } catch (cause) {
      throw failed(pid, 'cannot read its cgroup file (has it exited?)', cause);
    }
    let ref: PodContainerRef | undefined;
    try {
      ref = parseCgroupFile(text);
    } catch (cause) {
      if (cause instanceof CgroupParseError) throw failed(pid, cause.message, cause);
      throw cause;
    }
    if (ref === undefined) return [];

    let delay = this.#delay0;
    for (let attempt = 1; ; attempt++) {
      let pods: KubeletPod[];
      try {
        pods = await this.#pods.listPods();
      } catch (cause) {
        if (cause instanceof KubeletError) throw failed(pid, `cannot get the pod list, so it cannot be attested: ${cause.message}`, cause);
        throw cause;
      }
      const hit = findContainer(pods, ref);
      if (hit !== undefined) return podSelectors(hit.pod, hit.status);
      if (attempt >= this.#attempts) {
        throw failed(pid, `pod ${ref.podUid} container ${ref.containerId} is not in the kubelet's pod list after ${attempt} attempts (not started yet, or not a container of that pod)`);
      }
      await this.#sleep(delay);
      delay = Math.min(delay * 2, this.#delayMax);
    }
  }
}
