/**
 * @module attestors/workload/testing
 *
 * Test support for workload attestors: the connect-time facts of a live process, as the
 * agent's peercred records them at accept. Not for production use.
 */
import { readFileSync, statSync } from 'node:fs';
import type { WorkloadCaller } from './attestor.js';
import { parseProcStatus } from './unix/unix.js';

/**
 * `pid` with the effective uid/gid and executable /proc reports for it now (a process in a
 * recorded /proc without an `exe` link gets no executable). `over` replaces any of them.
 */
export function callerOf(pid: number, over: Partial<WorkloadCaller> & { procRoot?: string } = {}): WorkloadCaller {
  const { procRoot = '/proc', ...rest } = over;
  let ids = { uid: 0, gid: 0 };
  try {
    ids = parseProcStatus(readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
  } catch {
    // gone, or a recorded /proc without a status file: uid/gid 0 unless given
  }
  let executable: string | undefined;
  try {
    const st = statSync(`${procRoot}/${pid}/exe`, { bigint: true });
    executable = `${st.dev}:${st.ino}`;
  } catch {
    executable = undefined;
  }
  const caller: WorkloadCaller = executable === undefined ? { pid, ...ids } : { pid, ...ids, executable };
  return { ...caller, ...rest };
}
