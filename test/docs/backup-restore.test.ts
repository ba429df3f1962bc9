/**
 * docs/backup-restore.md's LevelDB restore, done for real: `mayfly-server run` and
 * `mayfly-agent run` as processes (what `npm run build` ships), the backup being exactly
 * the paths the doc's table "LevelDB: the files" names, read from the doc. So a file the
 * server needs and the doc forgets fails here, and so does a restore that comes back as
 * another CA.
 *
 * Before: entries, an attested agent serving a workload SVID, an SVID from `x509 mint`.
 * After the copy, a server on the new directory (and another port) must print the same
 * entries, agents, bundle and X.509 authorities; both SVIDs must verify against its
 * bundle; and the agent, restarted against it without a join token, must resume with its
 * stored agent SVID and serve the workload's SVID again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { TrustDomain } from '../../src/spiffe/id.js';
import { parsePemCertificates } from '../../src/spiffe/x509/pem.js';
import { verifyX509Svid } from '../../src/spiffe/x509/verify.js';
import { children, copyBackup, documentedBackupPaths, runRestore, stop } from './restore-support.js';

const dir = mkdtempSync(join(tmpdir(), 'mayfly-restore-'));

afterAll(async () => {
  await Promise.all([...children].map((c) => stop(c, 'SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

it('a server restored from the files docs/backup-restore.md names is the same CA with the same registrations', async () => {
  const paths = documentedBackupPaths('LevelDB: the files');
  expect(paths).toContain('datastore/');
  const r = await runRestore({ dir, originalArgs: [], restoredArgs: [], backupAndRestore: async (from, to) => copyBackup(paths, from, to) });
  expect(r.restoredLogMentionsNewAuthority).toBe(false);
  expect(r.after).toEqual(r.before);
  const restored = { trustDomain: TrustDomain.parse('example.org'), x509Authorities: parsePemCertificates(r.after.bundle as string) };
  expect(verifyX509Svid(r.workloadSvid, restored).spiffeId.toString()).toBe('spiffe://example.org/web');
  expect(verifyX509Svid(r.mintedSvid, restored).spiffeId.toString()).toBe('spiffe://example.org/minted');
  expect(verifyX509Svid(r.servedAfter, restored).spiffeId.toString()).toBe('spiffe://example.org/web');
  expect(r.agentLogAfter).toContain('resuming with the stored agent SVID');
});
