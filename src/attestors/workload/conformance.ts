/**
 * @module attestors/workload/conformance
 *
 * The checks every workload attestor passes, whatever platform facts it reads:
 * - it speaks for the fixture's own workload: at least one selector, each of its own type
 *   and well-formed, including any the fixture names, the same answer twice;
 * - it tells workloads apart: a second process the fixture says differs gets different
 *   selectors of the kinds the fixture names (a suite an attestor could pass by returning
 *   nothing would be no test);
 * - it takes a `WorkloadCaller` `{ pid, uid, gid, executable? }`: anything else is caller
 *   misuse (TypeError), a process that is gone fails `ERR_ATTESTATION_FAILED` or yields
 *   nothing, and an attestor that reads the caller's ids refuses connect-time facts the
 *   process contradicts (`ERR_CALLER_CHANGED`).
 * Each attestor's test file calls `runWorkloadAttestorConformance`, and the agent's catalog
 * test runs it on every registered workload attestor with the fixtures in its folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginFixture } from '../../config/testing.js';
import { isMayflyError } from '../../spiffe/errors.js';
import type { WorkloadAttestor, WorkloadCaller } from './attestor.js';
import { callerOf } from './testing.js';

export interface WorkloadAttestorFixture {
  attestor: () => WorkloadAttestor;
  /** Starts a long-lived process the attestor can attest. Defaults to `sleep 60`. */
  startWorkload?: () => ChildProcess;
  /** Selector values (without the type) the workload's attestation must include. */
  expectedValues?: (pid: number) => readonly string[];
  /**
   * A second process, and the selector kinds (value prefixes such as `path:` or
   * `pod-uid:`) whose values must differ from the first workload's.
   */
  other?: { start: () => ChildProcess; differsIn: readonly string[] };
  /** The attestor checks the caller's uid/gid against the process (unix does; k8s reads only the cgroup). */
  checksCallerIds?: boolean;
}

/** A workload attestor's fixture, as its plugin folder's `testing.ts` keeps it for the catalog test. */
export interface WorkloadAttestorPluginFixture extends PluginFixture, Omit<WorkloadAttestorFixture, 'attestor'> {
  readonly binary: 'agent';
  readonly kind: 'WorkloadAttestor';
  pluginData(): string;
  /** What the agent offers its `build` (test seams such as a proc root). */
  deps(): object;
}

function waitSpawned(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid ?? -1));
    child.once('error', reject);
  });
}

const values = (s: readonly { value: string }[]): string[] => s.map((x) => x.value);

/** Callers that are not `WorkloadCaller`s, by what is wrong. */
function misuse(pid: number): Record<string, unknown> {
  return {
    'no caller': undefined,
    'null': null,
    'a bare pid': pid,
    'a pid as a string': { pid: String(pid), uid: 0, gid: 0 },
    'a negative pid': { pid: -1, uid: 0, gid: 0 },
    'a fractional pid': { pid: 1.5, uid: 0, gid: 0 },
    'pid 0': { pid: 0, uid: 0, gid: 0 },
    'a negative uid': { pid, uid: -1, gid: 0 },
    'no gid': { pid, uid: 0 },
    'a fractional gid': { pid, uid: 0, gid: 0.5 },
  };
}

export function runWorkloadAttestorConformance(name: string, fixture: WorkloadAttestorFixture): void {
  describe(`workload attestor conformance: ${name}`, () => {
    const children: ChildProcess[] = [];
    let pid: number;
    let otherPid: number | undefined;

    beforeAll(async () => {
      const child = fixture.startWorkload ? fixture.startWorkload() : spawn('sleep', ['60'], { stdio: 'ignore' });
      children.push(child);
      pid = await waitSpawned(child);
      if (fixture.other !== undefined) {
        const o = fixture.other.start();
        children.push(o);
        otherPid = await waitSpawned(o);
      }
    });
    afterAll(() => {
      for (const c of children) c.kill('SIGKILL');
    });

    it('speaks for its workload: at least one selector, each of its own type and well-formed', async () => {
      const a = fixture.attestor();
      const selectors = await a.attest(callerOf(pid));
      expect(selectors.length).toBeGreaterThan(0);
      for (const s of selectors) {
        expect(s.type).toBe(a.name);
        expect(s.value.length).toBeGreaterThan(0);
        expect([...s.value].some((c) => c.charCodeAt(0) < 0x20)).toBe(false);
      }
      expect(values(selectors)).toEqual(expect.arrayContaining([...(fixture.expectedValues?.(pid) ?? [])]));
    });

    it('gives the same answer twice for the same process', async () => {
      const a = fixture.attestor();
      expect(await a.attest(callerOf(pid))).toEqual(await a.attest(callerOf(pid)));
    });

    const other = fixture.other;
    if (other !== undefined) {
      it(`tells another process apart by ${other.differsIn.join(', ')}`, async () => {
        const a = fixture.attestor();
        const mine = values(await a.attest(callerOf(pid)));
        const theirs = values(await a.attest(callerOf(otherPid as number)));
        for (const prefix of other.differsIn) {
          const of = (list: string[]): string[] => list.filter((v) => v.startsWith(prefix)).sort();
          expect(of(mine).length, `${prefix} selectors of the workload`).toBeGreaterThan(0);
          expect(of(theirs).length, `${prefix} selectors of the other process`).toBeGreaterThan(0);
          expect(of(theirs)).not.toEqual(of(mine));
        }
      });
    }

    it('fails with ERR_ATTESTATION_FAILED, or returns nothing, for a process that is gone', async () => {
      const gone = spawn('true', [], { stdio: 'ignore' });
      const gonePid = await waitSpawned(gone);
      await new Promise((r) => gone.once('exit', r));
      const a = fixture.attestor();
      try {
        const selectors = await a.attest(callerOf(gonePid));
        expect(selectors).toEqual([]);
      } catch (e) {
        expect(isMayflyError(e, 'ERR_ATTESTATION_FAILED')).toBe(true);
      }
    });

    it('takes a WorkloadCaller { pid, uid, gid, executable? }; anything else is caller misuse (TypeError)', async () => {
      const a = fixture.attestor();
      for (const [what, caller] of Object.entries(misuse(pid))) {
        const err = await a.attest(caller as WorkloadCaller).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, what).toBeInstanceOf(TypeError);
      }
    });

    if (fixture.checksCallerIds === true) {
      it('refuses a caller whose connect-time uid or gid the process contradicts (ERR_CALLER_CHANGED)', async () => {
        const a = fixture.attestor();
        const real = callerOf(pid);
        for (const caller of [{ ...real, uid: real.uid + 1 }, { ...real, gid: real.gid + 1 }]) {
          const err = await a.attest(caller).catch((e: unknown) => e);
          expect(isMayflyError(err, 'ERR_CALLER_CHANGED'), String(err)).toBe(true);
        }
      });
    }
  });
}
