/**
 * `mayfly-server inventory` (issue 11) as a real process against a real server whose clock
 * the test holds: entries and agents are written at one time, the clock is moved 40 days
 * on, and the report (table and `-output json`) names each finding on the entry that
 * causes it, with its owner and an action.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../server/testing.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'example.org';
const DAY = 86_400_000;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

interface Report {
  entry_count: number;
  entries: { kind: string; entry_id: string; owner: string; action: string }[];
  agents: { kind: string; agent_id: string }[];
}

let t = Date.now();
let srv: TestServer;

beforeAll(async () => {
  srv = await startTestServer({ trustDomain: TD, now: () => new Date(t) });
  const ds = srv.datastore;
  const agent = (id: string): Promise<unknown> => ds.createAgent({ spiffeId: `spiffe://${TD}/agent/${id}`, attestationType: 'join_token', serialNumber: '01', certNotAfter: Math.floor(t / 1000) + 365 * 86_400 });
  await agent('live');
  await agent('banned');
  await agent('stale');
  await ds.updateAgent(`spiffe://${TD}/agent/banned`, { banned: true });
  const parent = `spiffe://${TD}/agent/live`;
  const mk = (id: string, over: Record<string, unknown> = {}): Promise<unknown> =>
    ds.createEntry({ entryId: id, spiffeId: `spiffe://${TD}/w/${id}`, parentId: parent, selectors: [{ type: 'unix', value: `path:/bin/${id}` }, { type: 'unix', value: 'uid:1000' }], owner: 'team-a', ...over });
  await mk('ok');
  await mk('never');
  await mk('stale');
  await mk('noowner', { owner: '' });
  await mk('expired', { expiresAt: Math.floor(t / 1000) + 86_400 });
  await mk('orphan', { parentId: `spiffe://${TD}/agent/gone` });
  await mk('underbanned', { parentId: `spiffe://${TD}/agent/banned` });
  await mk('dup1', { selectors: [{ type: 'k8s', value: 'sa:x' }] });
  await mk('dup2', { selectors: [{ type: 'k8s', value: 'sa:x' }] });
  await mk('root', { selectors: [{ type: 'unix', value: 'uid:0' }] });
  await mk('longttl', { x509SvidTtl: 30 * 86_400 });
  const sec = (ms: number): number => Math.floor(ms / 1000);
  // 'stale' was last used now; everything but 'never' and 'stale' is used again 40 days on.
  await ds.recordEntryUsage([{ entryId: 'stale', firstIssuedAt: sec(t), lastIssuedAt: sec(t), issuanceCount: 1, agents: [parent] }]);
  t += 40 * DAY;
  const fresh = ['ok', 'noowner', 'expired', 'orphan', 'underbanned', 'dup1', 'dup2', 'root', 'longttl'];
  await ds.recordEntryUsage(fresh.map((entryId) => ({ entryId, firstIssuedAt: sec(t), lastIssuedAt: sec(t), issuanceCount: 1, agents: [parent] })));
  await ds.updateAgent(parent, { serialNumber: '02' });
  await ds.updateAgent(`spiffe://${TD}/agent/banned`, { serialNumber: '' });
}, 60_000);

afterAll(async () => {
  await srv?.stop();
});

describe('mayfly-server inventory', () => {
  it('-output json names each finding on its entry, with owner and action', async () => {
    const r = await cli(['inventory', '-socketPath', srv.adminSocketPath, '-output', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as Report;
    expect(rep.entry_count).toBe(11);
    const kinds = (id: string): string[] => rep.entries.filter((f) => f.entry_id === id).map((f) => f.kind).sort();
    expect(kinds('ok')).toEqual([]);
    expect(kinds('never')).toEqual(['never_issued']);
    expect(kinds('stale')).toEqual(['unused']);
    expect(kinds('noowner')).toEqual(['no_owner']);
    expect(kinds('expired')).toEqual(['expired']);
    expect(kinds('orphan')).toEqual(['parent_gone']);
    expect(kinds('underbanned')).toEqual(['parent_banned']);
    expect(kinds('dup1')).toEqual(['duplicate']);
    expect(kinds('dup2')).toEqual(['duplicate']);
    expect(kinds('root')).toEqual(['over_broad']);
    expect(kinds('longttl')).toEqual(['long_ttl']);
    expect(rep.entries.find((f) => f.entry_id === 'stale')?.owner).toBe('team-a');
    expect(rep.entries.every((f) => f.action.length > 0)).toBe(true);
    expect(rep.agents.map((a) => a.agent_id)).toEqual([`spiffe://${TD}/agent/stale`]);
  });

  it('-unusedDays moves the threshold; the table shows findings with owner and action', async () => {
    const r = await cli(['inventory', '-socketPath', srv.adminSocketPath, '-unusedDays', '50']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Entries: 11, agents: 3, findings: \d+\n/);
    expect(r.stdout).toMatch(/never_issued\s+never\s+spiffe:\/\/example\.org\/w\/never\s+team-a\s+.*delete the entry/);
    expect(r.stdout).not.toMatch(/\bunused\b/);
    expect(r.stdout).not.toContain('agent_not_seen');
    const bad = await cli(['inventory', '-socketPath', srv.adminSocketPath, '-unusedDays', '0']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('-unusedDays');
  });
});
