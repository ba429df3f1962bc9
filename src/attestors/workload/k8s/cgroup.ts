/**
 * @module attestors/workload/k8s/cgroup
 *
 * Finds the pod UID and container ID of a process from its `/proc/<pid>/cgroup` file.
 *
 * Threat: a process outside any pod (or in one pod) passing itself off as a container of
 * another pod. Neither ID is secret (any user on a node can read every process's cgroup
 * file), and cgroup v2 lets systemd delegate a subtree to an unprivileged user, who may
 * create directories named `kubepods-...-pod<uid>.slice/cri-containerd-<id>.scope` inside
 * it. So an ID is taken only from a path whose *whole* shape is a kubelet-managed one:
 *
 *   [root prefix] kubepods chain, pod segment, container segment
 *
 * - root prefix: nothing; `kubelet.slice` / `kubelet` (kind's `--cgroup-root`); a kind node
 *   seen from its host (`docker/<64 hex>` or `system.slice/docker-<64 hex>.scope`) followed
 *   by either of those; or a leading run of `..` (the agent in a private cgroup namespace,
 *   the default on cgroup v2, sees other pods relative to its own cgroup; only root can
 *   create cgroups at those places, so what follows must be the kubepods chain directly).
 * - kubepods chain: `kubepods[/burstable|/besteffort]` (cgroupfs driver) or
 *   `kubepods.slice[/kubepods-<qos>.slice]` (systemd driver, optionally `kubelet-`
 *   prefixed as in kind), the QoS class agreeing with the pod segment's.
 * - pod segment: `pod<uuid>` (cgroupfs, dashes) or `kubepods[-<qos>]-pod<uuid with
 *   underscores>.slice` (systemd). Only UUID-form pod UIDs are accepted, so static pods
 *   (whose UID is a 32-hex config hash) are not attested.
 * - container segment, last in the path: `<64 hex>` or `crio-<64 hex>` (cgroupfs), or
 *   `cri-containerd-|crio-|docker-<64 hex>.scope` (systemd); CRI-O on cgroup v2 may add a
 *   final `container` leaf under its scope. Nothing else (not `crio-conmon-…`, not a
 *   shorter or upper-case ID) is taken as a container ID.
 *
 * Lines (one per hierarchy on cgroup v1, one `0::` line on v2) that parse must all agree.
 * Lines that do not mention a pod are ignored. A line that looks like a pod path but does
 * not parse is ignored when another line parses, and is an error when none does: it is an
 * unknown layout or a forgery, and either way the attestor must not guess.
 *
 * mountinfo is not needed: the agent reads other processes' cgroup files, which the kernel
 * renders relative to the *agent's* cgroup namespace root (hence the `..` case above); the
 * target's own namespace does not change what the agent reads.
 */

/** Where a process sits in Kubernetes, as its cgroup path says. */
export interface PodContainerRef {
  /** Pod UID, lower case with dashes (`7f1a…-…`). */
  readonly podUid: string;
  /** Container ID: 64 lower-case hex digits, without the runtime prefix. */
  readonly containerId: string;
}

/** Thrown for a cgroup file that names a pod but not in a shape the attestor accepts. */
export class CgroupParseError extends Error {}

const HEX64 = '[0-9a-f]{64}';
const UUID_DASH = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const UUID_UNDERSCORE = '[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}';

const CGROUPFS_POD = new RegExp(`^pod(${UUID_DASH})$`);
const SYSTEMD_POD = new RegExp(`^(kubelet-)?kubepods(?:-(burstable|besteffort))?-pod(${UUID_UNDERSCORE})\\.slice$`);
const CGROUPFS_CONTAINER = new RegExp(`^(?:crio-)?(${HEX64})$`);
const SYSTEMD_CONTAINER = new RegExp(`^(?:cri-containerd|crio|docker)-(${HEX64})\\.scope$`);
const CRIO_SCOPE = new RegExp(`^crio-${HEX64}\\.scope$`);
const KIND_NODE_DOCKER = new RegExp(`^${HEX64}$`);
const KIND_NODE_SCOPE = new RegExp(`^docker-${HEX64}\\.scope$`);
/** Anything that looks like it wants to name a pod (to tell "not in a pod" from "unknown shape"). */
const POD_LIKE = /pod[0-9a-fA-F]{8}[-_]/;

type Parsed = { kind: 'pod'; ref: PodContainerRef } | { kind: 'none' } | { kind: 'unparsable'; why: string };

function suffixOf(segs: readonly string[], chain: readonly string[]): boolean {
  if (segs.length > chain.length) return false;
  const off = chain.length - segs.length;
  return segs.every((s, i) => s === chain[off + i]);
}

function equal(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/** Root prefixes the kubepods chain may hang from (see module doc). */
function allowedRoot(prefix: readonly string[], systemd: boolean, kindPrefix: boolean): boolean {
  const kubeletRoot = systemd ? ['kubelet.slice'] : ['kubelet'];
  // A systemd `kubelet-` slice prefix means kind's kubelet.slice root, and only then.
  const tails: string[][] = systemd ? (kindPrefix ? [kubeletRoot] : [[]]) : [[], kubeletRoot];
  for (const tail of tails) {
    if (equal(prefix, tail)) return true;
    const head = prefix.slice(0, prefix.length - tail.length);
    if (!equal(prefix.slice(head.length), tail)) continue;
    if (head.length === 2 && head[0] === 'docker' && KIND_NODE_DOCKER.test(head[1] as string)) return true;
    if (head.length === 2 && head[0] === 'system.slice' && KIND_NODE_SCOPE.test(head[1] as string)) return true;
  }
  return false;
}

/** Parses one cgroup path (the third field of a line). */
export function parseCgroupPath(path: string): Parsed {
  if (!path.startsWith('/')) return { kind: 'unparsable', why: `path ${JSON.stringify(path.slice(0, 200))} is not absolute` };
  const segs = path.split('/').filter((s) => s !== '');
  let ups = 0;
  while (segs[ups] === '..') ups++;
  const rest = segs.slice(ups);
  const podLike = POD_LIKE.test(path);
  const unparsable = (why: string): Parsed => (podLike ? { kind: 'unparsable', why: `${why} in ${JSON.stringify(path.slice(0, 300))}` } : { kind: 'none' });
  if (rest.some((s) => s === '.' || s === '..')) return unparsable('dot segment');
  if (rest.length > 0 && rest[rest.length - 1] === 'container' && CRIO_SCOPE.test(rest[rest.length - 2] ?? '')) rest.pop();
  if (rest.length < 2) return unparsable('too few segments');
  const last = rest[rest.length - 1] as string;
  const podSeg = rest[rest.length - 2] as string;
  const above = rest.slice(0, rest.length - 2);

  const fsPod = CGROUPFS_POD.exec(podSeg);
  if (fsPod) {
    const c = CGROUPFS_CONTAINER.exec(last);
    if (!c) return unparsable('no container ID of 64 hex digits after the pod segment');
    // cgroupfs: [kubelet] kubepods [burstable|besteffort] pod<uid> <id>
    const chainAt = above.lastIndexOf('kubepods');
    const chain = chainAt < 0 ? [] : above.slice(chainAt);
    const okChain = chain.length > 0 && (equal(chain, ['kubepods']) || equal(chain, ['kubepods', 'burstable']) || equal(chain, ['kubepods', 'besteffort']));
    let ok: boolean;
    if (ups > 0) ok = [['kubepods'], ['kubepods', 'burstable'], ['kubepods', 'besteffort']].some((c) => suffixOf(above, c));
    else ok = okChain && allowedRoot(above.slice(0, chainAt), false, false);
    if (!ok) return unparsable('the pod segment is not under a kubelet-managed kubepods hierarchy');
    return { kind: 'pod', ref: { podUid: fsPod[1] as string, containerId: c[1] as string } };
  }

  const sdPod = SYSTEMD_POD.exec(podSeg);
  if (sdPod) {
    const c = SYSTEMD_CONTAINER.exec(last);
    if (!c) return unparsable('no cri-containerd-/crio-/docker-<64 hex>.scope after the pod slice');
    const p = sdPod[1] ?? '';
    const qos = sdPod[2];
    const chain = qos === undefined ? [`${p}kubepods.slice`] : [`${p}kubepods.slice`, `${p}kubepods-${qos}.slice`];
    let ok: boolean;
    if (ups > 0) ok = suffixOf(above, chain);
    else {
      const prefix = above.slice(0, above.length - chain.length);
      ok = above.length >= chain.length && equal(above.slice(prefix.length), chain) && allowedRoot(prefix, true, p !== '');
    }
    if (!ok) return unparsable('the pod slice is not under a kubelet-managed kubepods slice');
    return { kind: 'pod', ref: { podUid: (sdPod[3] as string).replaceAll('_', '-'), containerId: c[1] as string } };
  }
  return unparsable('no pod segment right above the container segment');
}

/**
 * The pod and container of the process whose `/proc/<pid>/cgroup` is `text`; undefined when
 * it is not in a pod. Throws CgroupParseError when lines disagree, or when the only lines
 * naming a pod do not have an accepted shape.
 */
export function parseCgroupFile(text: string): PodContainerRef | undefined {
  let found: PodContainerRef | undefined;
  let firstProblem: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    // hierarchy-ID:controller-list:cgroup-path (the path may itself contain ':')
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (a < 0 || b < 0) throw new CgroupParseError(`malformed cgroup line ${JSON.stringify(line.slice(0, 200))}`);
    const parsed = parseCgroupPath(line.slice(b + 1));
    if (parsed.kind === 'unparsable') firstProblem ??= parsed.why;
    else if (parsed.kind === 'pod') {
      if (found !== undefined && (found.podUid !== parsed.ref.podUid || found.containerId !== parsed.ref.containerId)) {
        throw new CgroupParseError(`cgroup lines disagree: pod ${found.podUid} container ${found.containerId} vs pod ${parsed.ref.podUid} container ${parsed.ref.containerId}`);
      }
      found = parsed.ref;
    }
  }
  if (found === undefined && firstProblem !== undefined) {
    throw new CgroupParseError(`cgroup file names a pod in a layout the k8s attestor does not accept: ${firstProblem}`);
  }
  return found;
}
