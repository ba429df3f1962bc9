import { describe, expect, it } from 'vitest';
import { CgroupParseError, parseCgroupFile } from './cgroup.js';

const UID = '2c48913c-b29f-11e7-9350-020968147796';
const U_ = UID.replaceAll('-', '_');
const CID = '9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961';
const NODE = 'b0d3e4f5a6978812345678901234567890abcdef1234567890abcdef12345678';
const want = { podUid: UID, containerId: CID };

/** cgroup v1: one line per hierarchy, every controller placing the process in the same cgroup. */
function v1(path: string, extra: string[] = []): string {
  const ctl = ['hugetlb', 'pids', 'net_cls,net_prio', 'perf_event', 'freezer', 'cpuset', 'devices', 'blkio', 'memory', 'cpu,cpuacct'];
  return [...ctl.map((c, i) => `${12 - i}:${c}:${path}`), ...extra, `1:name=systemd:${path}`, '0::/'].join('\n') + '\n';
}
const v2 = (path: string): string => `0::${path}\n`;

describe('parseCgroupFile: accepted layouts', () => {
  const cases: [string, string][] = [
    ['v1 cgroupfs, containerd/Docker (burstable)', v1(`/kubepods/burstable/pod${UID}/${CID}`)],
    ['v1 cgroupfs, guaranteed QoS', v1(`/kubepods/pod${UID}/${CID}`)],
    ['v1 cgroupfs, CRI-O', v1(`/kubepods/besteffort/pod${UID}/crio-${CID}`)],
    ['v1 systemd, Docker', v1(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/docker-${CID}.scope`)],
    ['v1 systemd, containerd', v1(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['v2 systemd, containerd', v2(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['v2 systemd, guaranteed QoS', v2(`/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['v2 systemd, CRI-O', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-${CID}.scope`)],
    ['v2 systemd, CRI-O nested "container" leaf', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-${CID}.scope/container`)],
    ['v2 systemd, Docker (cri-dockerd)', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/docker-${CID}.scope`)],
    ['v2 cgroupfs, containerd', v2(`/kubepods/besteffort/pod${UID}/${CID}`)],
    ['kind v2, inside the node (cgroup root /kubelet)', v2(`/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['kind v2 guaranteed, inside the node', v2(`/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['kind v2, seen from the host', v2(`/system.slice/docker-${NODE}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['kind v1 cgroupfs, seen from the host', v1(`/docker/${NODE}/kubepods/besteffort/pod${UID}/${CID}`)],
    ['kind v1 cgroupfs with --cgroup-root=/kubelet', v1(`/kubelet/kubepods/burstable/pod${UID}/${CID}`)],
    ['agent in a private cgroup namespace (v2 default), other QoS class', v2(`/../../../kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['agent in a private cgroup namespace, same QoS class', v2(`/../../kubepods-burstable-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['v1 with a name=systemd line in an unknown shape, other lines agree', v1(`/kubepods/burstable/pod${UID}/${CID}`).replace(/1:name=systemd:.*/, `1:name=systemd:/system.slice/containerd.service/kubepods-burstable-pod${U_}.slice:cri-containerd:${CID}`)],
  ];
  it.each(cases)('%s', (_name, text) => {
    expect(parseCgroupFile(text)).toEqual(want);
  });
});

describe('parseCgroupFile: not in a pod (no selectors, no error)', () => {
  const cases: [string, string][] = [
    ['v2 user session', v2('/user.slice/user-1000.slice/session-3.scope')],
    ['v2 root', v2('/')],
    ['v1 all root', v1('/')],
    ['plain Docker container (v1)', v1(`/docker/${CID}`)],
    ['plain Docker container (v2 systemd)', v2(`/system.slice/docker-${CID}.scope`)],
    ['a system service', v2('/system.slice/containerd.service')],
    ['static pod (UID is a 32-hex config hash, not a UUID)', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice/cri-containerd-${CID}.scope`)],
  ];
  it.each(cases)('%s', (_name, text) => {
    expect(parseCgroupFile(text)).toBeUndefined();
  });
});

describe('parseCgroupFile: refused (names a pod, but not in an accepted shape)', () => {
  const cases: [string, string][] = [
    ['forged pod path in a delegated user subtree (v2)', v2(`/user.slice/user-1000.slice/user@1000.service/app.slice/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['forged cgroupfs pod path under a user slice', v2(`/user.slice/user-1000.slice/user@1000.service/kubepods/besteffort/pod${UID}/${CID}`)],
    ['forged path seen through a private cgroup namespace', v2(`/../../../../user.slice/user-1000.slice/user@1000.service/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['container ID of 63 hex digits', v2(`/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID.slice(1)}.scope`)],
    ['container ID of 65 hex digits', v1(`/kubepods/pod${UID}/${CID}0`)],
    ['upper-case container ID', v1(`/kubepods/pod${UID}/${CID.toUpperCase()}`)],
    ['CRI-O conmon scope is not a container', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-conmon-${CID}.scope`)],
    ['unknown runtime prefix', v2(`/kubepods.slice/kubepods-pod${U_}.slice/runc-${CID}.scope`)],
    ['pod cgroup without a container (never pick the kind node ID above it)', v1(`/docker/${NODE}/kubepods/besteffort/pod${UID}`)],
    ['systemd slice with dashes in the pod UID (systemd escapes them)', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID}.slice/cri-containerd-${CID}.scope`)],
    ['cgroupfs pod with underscores', v1(`/kubepods/burstable/pod${U_}/${CID}`)],
    ['QoS class of the pod slice does not match its parent', v2(`/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['systemd pod slice missing its parent slices', v2(`/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['kind-prefixed slice without kubelet.slice root', v2(`/kubelet-kubepods.slice/kubelet-kubepods-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['dot-dot inside the path', v2(`/kubepods.slice/../kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope`)],
    ['systemd container scope under a cgroupfs pod', v1(`/kubepods/pod${UID}/cri-containerd-${CID}.scope`)],
    ['extra segment after the container', v2(`/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-${CID}.scope/sub`)],
  ];
  it.each(cases)('%s', (_name, text) => {
    expect(() => parseCgroupFile(text)).toThrow(CgroupParseError);
  });

  it('refuses v1 lines that name different containers', () => {
    const other = CID.replace(/^9/, '8');
    const text = `4:memory:/kubepods/pod${UID}/${CID}\n3:pids:/kubepods/pod${UID}/${other}\n`;
    expect(() => parseCgroupFile(text)).toThrow(/disagree/);
  });

  it('refuses a line without the hierarchy:controllers:path form', () => {
    expect(() => parseCgroupFile('garbage\n')).toThrow(CgroupParseError);
  });
});
