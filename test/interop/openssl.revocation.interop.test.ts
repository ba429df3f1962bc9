/**
 * Per-SVID revocation judged by OpenSSL (issue 10), with the real CLIs: `mayfly-agent api
 * fetch x509 -write` writes two SVIDs of one workload, `mayfly-server x509 revoke -serial`
 * revokes the first, and the CRL the agent then serves over the Workload API (written as
 * crl.pem by the next `-write`) makes `openssl verify -crl_check -CRLfile` refuse the revoked
 * SVID and accept the unrevoked one from the same CA; `openssl crl -text` shows the fields.
 * The CLI's answers to hostile revocations (unknown, malformed, bad reason, again) and their
 * exit codes are checked on the same deployment.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate } from '../../src/spiffe/x509/parse.js';
import { parsePemCertificates } from '../../src/spiffe/x509/pem.js';
import { runProcess, startMayfly, type MayflyDeployment } from './harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT_CLI = join(ROOT, 'bin', 'mayfly-agent.js');
const SERVER_CLI = join(ROOT, 'bin', 'mayfly-server.js');

describe('openssl verify -crl_check with the CRL fetched over the Workload API', () => {
  let m: MayflyDeployment;
  let before = '';
  let after = '';
  let victim = '';
  let victimId = '';

  const fetchX509 = async (dir: string): Promise<void> => {
    mkdirSync(dir, { mode: 0o700, recursive: true });
    const r = await runProcess(process.execPath, [AGENT_CLI, 'api', 'fetch', 'x509', '-write', dir, '-timeout', '20s'], { env: { SPIFFE_ENDPOINT_SOCKET: m.endpoint } });
    expect(r.code, `mayfly-agent api fetch x509 failed: ${r.stderr}`).toBe(0);
  };
  const revoke = (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    runProcess(process.execPath, [SERVER_CLI, 'x509', 'revoke', '-socketPath', m.server.adminSocketPath, ...args]);
  const serialOfFile = (path: string): string => parseCertificate(parsePemCertificates(readFileSync(path, 'utf8'))[0] as Buffer).serialHex;
  const openssl = (args: string[]): { code: number | null; out: string } => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    return { code: r.status, out: r.stdout + r.stderr };
  };

  beforeAll(async () => {
    m = await startMayfly({ defaultEntryPath: '/openssl/victim' });
    await m.createEntry(`spiffe://${m.trustDomain}/openssl/bystander`, [`unix:uid:${m.uid}`]);
    before = join(m.workDir, 'before');
    after = join(m.workDir, 'after');
    await fetchX509(before);
    victimId = m.defaultSpiffeId as string;
    victim = serialOfFile(join(before, 'svid.0.pem'));
    expect(parseCertificate(parsePemCertificates(readFileSync(join(before, 'svid.0.pem'), 'utf8'))[0] as Buffer).uriSans).toEqual([victimId]);
  }, 90_000);

  afterAll(async () => {
    await m?.stop();
  }, 60_000);

  it('mayfly-server x509 revoke -serial revokes it; the next fetch writes crl.pem listing it', async () => {
    // openssl's colon form, as `openssl x509 -serial` users paste it.
    const r = await revoke('-serial', victim.replace(/^00/, '').toUpperCase().match(/../g)?.join(':') as string, '-reason', 'keyCompromise');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Revoked 1 X509-SVID/);
    expect(r.stdout).toContain(victim);
    // The agent got the CRL by push; wait until it serves a new SVID for the victim.
    const deadline = Date.now() + 20_000;
    for (;;) {
      await fetchX509(after);
      if (serialOfFile(join(after, 'svid.0.pem')) !== victim) break;
      if (Date.now() > deadline) throw new Error('the agent never replaced the revoked SVID');
      await new Promise((res) => setTimeout(res, 100));
    }
    const text = openssl(['crl', '-in', join(after, 'crl.pem'), '-noout', '-text']);
    expect(text.code, text.out).toBe(0);
    expect(text.out).toMatch(/Version 2 \(0x1\)/);
    expect(text.out).toMatch(/X509v3 CRL Number/);
    expect(text.out).toMatch(/X509v3 Authority Key Identifier/);
    expect(text.out).toMatch(/Next Update:/);
    expect(text.out).toContain(`Serial Number: ${victim.replace(/^00/, '').toUpperCase()}`);
    expect(text.out).toMatch(/Key Compromise/);
  });

  it('openssl verify -crl_check refuses the revoked SVID and accepts the unrevoked one from the same CA', () => {
    const common = ['verify', '-x509_strict', '-crl_check', '-CRLfile', join(after, 'crl.pem'), '-CAfile', join(after, 'bundle.0.pem')];
    const refused = openssl([...common, join(before, 'svid.0.pem')]);
    expect(refused.code, refused.out).not.toBe(0);
    expect(refused.out).toMatch(/certificate revoked/);
    const accepted = openssl([...common, join(before, 'svid.1.pem')]);
    expect(accepted.code, accepted.out).toBe(0);
    const fresh = openssl([...common, join(after, 'svid.0.pem')]);
    expect(fresh.code, fresh.out).toBe(0);
  });

  it('hostile revocations: unknown, malformed, bad reason, already revoked, foreign trust domain', async () => {
    const unknown = await revoke('-serial', '7f'.repeat(16));
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/^Error: .*no X509-SVID with serial 7f7f/);
    const malformed = await revoke('-serial', 'not-hex');
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/not a certificate serial number/);
    const badReason = await revoke('-serial', victim, '-reason', 'certificateHold');
    expect(badReason.code).toBe(2);
    expect(badReason.stderr).toMatch(/-reason "certificateHold" is not one of/);
    const two = await revoke('-serial', victim, '-spiffeID', victimId);
    expect(two.code).toBe(2);
    const foreign = await revoke('-spiffeID', 'spiffe://elsewhere.test/openssl/victim');
    expect(foreign.code).toBe(3);
    const again = await revoke('-serial', victim, '-output', 'json');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ revoked: [{ serial_number: victim, reason: 'keyCompromise', already_revoked: true }] });
  });
});
