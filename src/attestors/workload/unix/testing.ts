/**
 * @module attestors/workload/unix/testing
 *
 * Conformance fixture of `WorkloadAttestor "unix"` (with `discover_workload_path`): the
 * workload is a `sleep`, the other process a `cat` of the same user, told apart by the
 * executable's path and hash. Not for production use.
 */
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import type { WorkloadAttestorPluginFixture } from '../conformance.js';

const unix: WorkloadAttestorPluginFixture = {
  binary: 'agent',
  kind: 'WorkloadAttestor',
  name: 'unix',
  pluginData: () => 'discover_workload_path = true',
  deps: () => ({}),
  expectedValues: (pid) => [`uid:${process.geteuid?.() ?? 0}`, `gid:${process.getegid?.() ?? 0}`, `path:${readlinkSync(`/proc/${pid}/exe`)}`],
  other: { start: () => spawn('cat', [], { stdio: ['pipe', 'ignore', 'ignore'] }), differsIn: ['path:', 'sha256:'] },
  checksCallerIds: true,
};

export const pluginFixtures = [unix];
