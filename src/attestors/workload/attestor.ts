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

export interface WorkloadAttestor {
  /** Plugin name, also the selector type it emits (`unix`, `k8s`). */
  readonly name: string;
  /**
   * Selectors for the process `pid`. Returns [] when the process is not one this attestor
   * can speak for (e.g. the k8s attestor and a process outside any pod); throws
   * MayflyError `ERR_ATTESTATION_FAILED` when it should be able to but cannot.
   */
  attest(pid: number): Promise<WorkloadSelector[]>;
}

/** Runs every attestor for `pid` and merges their selectors (deduplicated, stable order). */
export async function attestWorkload(attestors: readonly WorkloadAttestor[], pid: number): Promise<WorkloadSelector[]> {
  const results = await Promise.all(attestors.map((a) => a.attest(pid)));
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
