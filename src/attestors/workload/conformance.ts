/**
 * @module attestors/workload/conformance
 *
 * The checks every workload attestor passes, whatever platform facts it reads. Each
 * attestor's test file calls `runWorkloadAttestorConformance` with a factory and a way to
 * start a process the attestor can speak for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../spiffe/errors.js';
import type { WorkloadAttestor } from './attestor.js';
import { callerOf } from './testing.js';

export interface WorkloadAttestorFixture {
  attestor: () => WorkloadAttestor;
  /** Starts a long-lived process the attestor can attest. Defaults to `sleep 60`. */
  startWorkload?: () => ChildProcess;
}

function waitSpawned(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid ?? -1));
    child.once('error', reject);
  });
}

export function runWorkloadAttestorConformance(name: string, fixture: WorkloadAttestorFixture): void {
  describe(`workload attestor conformance: ${name}`, () => {
    let child: ChildProcess;
    let pid: number;

    beforeAll(async () => {
      child = fixture.startWorkload ? fixture.startWorkload() : spawn('sleep', ['60'], { stdio: 'ignore' });
      pid = await waitSpawned(child);
    });
    afterAll(() => {
      child.kill('SIGKILL');
    });

    it('emits only well-formed selectors of its own type', async () => {
      const a = fixture.attestor();
      const selectors = await a.attest(callerOf(pid));
      for (const s of selectors) {
        expect(s.type).toBe(a.name);
        expect(s.value.length).toBeGreaterThan(0);
        expect([...s.value].some((c) => c.charCodeAt(0) < 0x20)).toBe(false);
      }
    });

    it('gives the same answer twice for the same process', async () => {
      const a = fixture.attestor();
      expect(await a.attest(callerOf(pid))).toEqual(await a.attest(callerOf(pid)));
    });

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

    it('treats a non-pid as caller misuse', async () => {
      await expect(fixture.attestor().attest(callerOf(-1, { uid: 0, gid: 0 }))).rejects.toThrow(TypeError);
      await expect(fixture.attestor().attest(callerOf(1.5, { uid: 0, gid: 0 }))).rejects.toThrow(TypeError);
    });
  });
}
