/**
 * @module attestors/workload/attestor
 *
 * The seam every workload attestor implements. An attestor judges facts about a calling
 * process that the kernel reported (its pid, read with SO_PEERCRED at accept) and returns
 * selectors; it stores nothing and trusts nothing the caller sent. Several attestors may
 * run for one caller; their selectors are merged.
 */

/** A selector as attestors produce it: `unix:uid:1000` is `{ type: 'unix', value: 'uid:1000' }`. */
export interface WorkloadSelector {
  readonly type: string;
  readonly value: string;
}

/**
 * A Workload API caller as the kernel described it: the pid and effective uid/gid that
 * `SO_PEERCRED` recorded at `connect()`, and the executable the agent saw at accept. An
 * attestor reads everything else from /proc for `pid`, and must not emit a fact that
 * contradicts these (a process may `exec` a setuid binary after connecting; see
 * `src/agent/peercred`).
 */
export interface WorkloadCaller {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** `<dev>:<ino>` of `/proc/<pid>/exe` at accept; undefined when it could not be read. */
  readonly executable?: string;
}

export interface WorkloadAttestor {
  /** Plugin name, also the selector type it emits (`unix`, `k8s`). */
  readonly name: string;
  /**
   * Selectors for the process `caller.pid`. Returns [] when the process is not one this
   * attestor can speak for (e.g. the k8s attestor and a process outside any pod); throws
   * MayflyError `ERR_ATTESTATION_FAILED` when it should be able to but cannot, and
   * `ERR_CALLER_CHANGED` when what it reads contradicts the connect-time facts.
   */
  attest(caller: WorkloadCaller): Promise<WorkloadSelector[]>;
}

/** The caller's pid, after checking the caller is well-formed (misuse is a TypeError). */
export function callerPid(caller: WorkloadCaller): number {
  if (typeof caller !== 'object' || caller === null) throw new TypeError('attest needs the caller (pid, uid, gid)');
  const { pid, uid, gid } = caller;
  if (!Number.isInteger(pid) || pid <= 0) throw new TypeError(`pid must be a positive integer, got ${pid}`);
  if (!Number.isInteger(uid) || uid < 0 || !Number.isInteger(gid) || gid < 0) throw new TypeError(`uid and gid must be non-negative integers, got ${uid}/${gid}`);
  return pid;
}

/** Runs every attestor for `caller` and merges their selectors (deduplicated, stable order). */
export async function attestWorkload(attestors: readonly WorkloadAttestor[], caller: WorkloadCaller): Promise<WorkloadSelector[]> {
  const results = await Promise.all(attestors.map((a) => a.attest(caller)));
  const seen = new Set<string>();
  const merged: WorkloadSelector[] = [];
  for (const list of results) {
    for (const s of list) {
      const key = `${s.type}:${s.value}`;
      if (!seen.has(key)) {
        seen.add(key);
        merged.push(s);
      }
    }
  }
  return merged;
}
