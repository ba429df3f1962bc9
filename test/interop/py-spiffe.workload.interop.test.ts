/**
 * py-spiffe (PyPI `spiffe`, the SPIFFE project's Python library) as a workload of a real
 * Mayfly agent: `WorkloadApiClient` fetches X.509-SVIDs, X.509 bundles, a JWT-SVID and JWT
 * bundles; py-spiffe parses and validates them with its own code (py-spiffe/fetch.py).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, startMayfly, type MayflyDeployment, type ProcessResult } from './harness.js';
import { ensurePySpiffe, FETCH_SCRIPT } from './py-spiffe/venv.js';

interface PyOutput {
  x509: { spiffeId: string; chainLength: number; keyMatchesCert: boolean; svidIds: string[]; bundleAuthorities: number };
  jwt: { spiffeId: string; audience: string[]; expiry: number; validatedBy: string; jwtAuthorities: number };
}

function parse(r: ProcessResult): PyOutput {
  expect(r.stderr, `py-spiffe client failed (exit ${r.code})`).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as PyOutput;
}

describe('py-spiffe WorkloadApiClient against a Mayfly agent', () => {
  let m: MayflyDeployment;
  let python = '';

  beforeAll(async () => {
    python = await ensurePySpiffe();
    m = await startMayfly({ defaultEntryPath: '/py/app' });
  }, 120_000);

  afterAll(async () => {
    await m?.stop();
  });

  const fetch = (args: string[], o: { uid?: number } = {}): Promise<ProcessResult> =>
    runProcess(python, [FETCH_SCRIPT, ...args], {
      env: { SPIFFE_ENDPOINT_SOCKET: m.endpoint, PYTHONDONTWRITEBYTECODE: '1' },
      ...(o.uid !== undefined ? { uid: o.uid, gid: o.uid } : {}),
    });

  it('fetches an X.509-SVID whose key matches its certificate, and a JWT-SVID that validates', async () => {
    const out = parse(await fetch(['--audience', 'spiffe://interop.mayfly.test/api']));
    expect(out.x509.spiffeId).toBe(m.defaultSpiffeId);
    expect(out.x509.svidIds).toEqual([m.defaultSpiffeId]);
    expect(out.x509.keyMatchesCert).toBe(true);
    expect(out.x509.chainLength).toBeGreaterThanOrEqual(1);
    expect(out.x509.bundleAuthorities).toBeGreaterThanOrEqual(1);
    expect(out.jwt.spiffeId).toBe(m.defaultSpiffeId);
    expect(out.jwt.audience).toEqual(['spiffe://interop.mayfly.test/api']);
    expect(out.jwt.validatedBy).toBe(m.defaultSpiffeId);
    expect(out.jwt.jwtAuthorities).toBeGreaterThanOrEqual(1);
    expect(out.jwt.expiry * 1000).toBeGreaterThan(Date.now());
  });

  it('lists every SVID for the caller; the oldest entry stays the default', async () => {
    const second = `spiffe://${m.trustDomain}/py/second`;
    const id = await m.createEntry(second, [`unix:uid:${m.uid}`]);
    try {
      const out = parse(await fetch([]));
      expect(out.x509.spiffeId).toBe(m.defaultSpiffeId);
      expect(out.x509.svidIds).toEqual([m.defaultSpiffeId, second]);
    } finally {
      await m.deleteEntry(id);
    }
  });

  // Runs last: it removes the only entry for our uid. (Other uids are out of reach here:
  // this python lives under /root, which other users cannot enter.)
  it('a caller no entry selects gets an error, not an identity', async () => {
    await m.deleteEntry(m.defaultEntryId as string);
    const deadline = Date.now() + 20_000;
    while (m.agent.cache?.updateFor([{ type: 'unix', value: `uid:${m.uid}` }])?.identities.length !== 0) {
      if (Date.now() > deadline) throw new Error('the agent kept the deleted entry');
      await new Promise((r) => setTimeout(r, 25));
    }
    const r = await fetch(['--timeout', '3']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/FetchX509SvidError|PERMISSION_DENIED|DEADLINE_EXCEEDED/);
  });
});
