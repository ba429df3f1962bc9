/**
 * `mayfly-server entry certify` (issue 11 item 5) as a real process against a real server
 * with the audit ledger and a held clock: a certification and a break-glass exemption are
 * recorded; an unknown entry, the wrong owner, a too-long note and missing flags fail with
 * one line and their exit codes.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBody } from '../audit/record.js';
import { startTestServer, type TestServer } from '../server/testing.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'example.org';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

let t = Date.now();
let srv: TestServer;
const sock = (): string[] => ['-socketPath', srv.adminSocketPath];

beforeAll(async () => {
  srv = await startTestServer({ trustDomain: TD, now: () => new Date(t), auditLedger: true, certification: { intervalSeconds: 90 * 86_400, graceSeconds: 14 * 86_400 }, certificationSweepMs: 0 });
  const mk = (id: string, owner: string): Promise<unknown> =>
    srv.datastore.createEntry({ entryId: id, spiffeId: `spiffe://${TD}/w/${id}`, parentId: `spiffe://${TD}/agent/a`, selectors: [{ type: 'unix', value: `uid:${id.length}` }], owner });
  await mk('web', 'team-a');
  await mk('db', 'team-b');
  t += 100 * 86_400_000;
}, 60_000);

afterAll(async () => {
  await srv?.stop();
});

describe('mayfly-server entry certify', () => {
  it('certifies as the owner, and exempts (break-glass), both recorded in the ledger', async () => {
    expect(srv.server.certification!.status((await srv.datastore.getEntry('web'))!).state).toBe('due');
    const ok = await cli(['entry', 'certify', ...sock(), '-entryID', 'web', '-owner', 'team-a', '-note', 'checkout still needs it']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('Entry web certified at');
    expect(ok.stdout).toContain('State:     current');
    const json = await cli(['entry', 'certify', ...sock(), '-entryID', 'db', '-exempt', '-note', 'INC-7: owner away', '-output', 'json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ entry_id: 'db', state: 'exempt' });
    const recs = (await srv.datastore.listAuditRecords({ limit: 1000 })).map((r) => decodeRecordBody(r.body)).filter((b) => b?.kind === 'entry.certified');
    expect(recs.map((b) => (b?.kind === 'entry.certified' ? `${b.entryId}:${b.owner}:${b.exempt}:${b.note}:${b.actor.id}` : ''))).toEqual([
      'web:team-a:false:checkout still needs it:admin-socket',
      'db::true:INC-7: owner away:admin-socket',
    ]);
  });

  it('fails with one line and an exit code on hostile input', async () => {
    const unknown = await cli(['entry', 'certify', ...sock(), '-entryID', 'nope', '-owner', 'team-a']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no entry with id nope');
    const wrong = await cli(['entry', 'certify', ...sock(), '-entryID', 'db', '-owner', 'team-a']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('is owned by "team-b", not "team-a"');
    const long = await cli(['entry', 'certify', ...sock(), '-entryID', 'web', '-owner', 'team-a', '-note', 'x'.repeat(2000)]);
    expect(long.code).toBe(2);
    expect(long.stderr).toContain('note is longer than 1024 bytes');
    const noOwner = await cli(['entry', 'certify', ...sock(), '-entryID', 'web']);
    expect(noOwner.code).toBe(2);
    expect(noOwner.stderr).toContain('-owner is required');
    const bareExempt = await cli(['entry', 'certify', ...sock(), '-entryID', 'web', '-exempt']);
    expect(bareExempt.code).toBe(2);
    expect(bareExempt.stderr).toContain('-exempt needs -note');
    for (const r of [unknown, wrong, long, noOwner, bareExempt]) expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
