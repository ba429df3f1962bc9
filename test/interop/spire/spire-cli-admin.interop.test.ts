/**
 * SPIRE v1.13.3's own `spire-server` CLI, unchanged, against a running Mayfly server's
 * admin socket (`-socketPath`): `healthcheck`, `entry create|show|update|delete|count`,
 * `agent list|show|ban|evict|count` and `token generate`. Each command's output is checked,
 * and what it shows is compared with what Mayfly's own CLI reports for the same state over
 * Mayfly's own API: the same entries, equal counts, a ban and an eviction visible in both.
 * The agents are real: the Mayfly agent of `startMayfly` and two attested by join token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { joinTokenSelector } from '../../../src/attestors/node/join_token/join_token.js';
import { spireBinary } from './bin.js';
import { startAdminFixture, type AdminFixture } from './admin-fixture.js';

interface JsonId {
  trust_domain: string;
  path: string;
}
interface JsonEntry {
  id: string;
  spiffe_id: JsonId;
  parent_id: JsonId;
  selectors: { type: string; value: string }[];
  hint: string;
  downstream: boolean;
  revision_number: string | number;
  owner?: string;
}
interface JsonAgent {
  id: JsonId;
  banned: boolean;
  attestation_type: string;
  x509svid_serial_number: string;
}

const idStr = (id: JsonId): string => `spiffe://${id.trust_domain}${id.path}`;
const entryIdIn = (out: string): string => /^Entry ID\s+: (\S+)$/m.exec(out)?.[1] ?? '';

let f: AdminFixture;
let parent: string;
const created: Record<string, string> = {};

beforeAll(async () => {
  spireBinary('spire-server');
  f = await startAdminFixture();
  parent = f.agentId;
}, 120_000);

afterAll(async () => {
  await f?.stop();
});

async function mayflyEntries(args: string[] = []): Promise<JsonEntry[]> {
  return (await f.mayflyJson<{ entries: JsonEntry[] }>(['entry', 'show', ...args])).entries ?? [];
}
async function spireEntries(args: string[] = []): Promise<JsonEntry[]> {
  return (await f.spireJson<{ entries: JsonEntry[] }>(['entry', 'show', ...args])).entries ?? [];
}
const ids = (l: { id: string }[]): string[] => l.map((e) => e.id).sort();

describe('spire-server CLI against mayfly-server', () => {
  it('healthcheck: Server is healthy.', async () => {
    const r = await f.spire(['healthcheck']);
    expect(r).toMatchObject({ code: 0, stdout: 'Server is healthy.\n' });
    const v = await f.spire(['healthcheck', '-verbose']);
    expect(v.code).toBe(0);
    expect(v.stdout).toBe('Checking server health...\nServer is healthy.\n');
  });

  it('entry create: plain, downstream and hinted entries, printed as SPIRE prints them', async () => {
    const table: [string, string[]][] = [
      ['a', ['-selector', 'unix:uid:1001', '-hint', 'ha', '-x509SVIDTTL', '600', '-dns', 'a.example.org']],
      ['b', ['-selector', 'unix:uid:1002', '-selector', 'unix:gid:7']],
      ['down', ['-selector', 'unix:uid:1003', '-downstream']],
    ];
    for (const [name, extra] of table) {
      const spiffeId = `spiffe://${f.td}/spire-cli/${name}`;
      const r = await f.spire(['entry', 'create', '-parentID', parent, '-spiffeID', spiffeId, ...extra]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`SPIFFE ID        : ${spiffeId}\n`);
      expect(r.stdout).toContain(`Parent ID        : ${parent}\n`);
      created[name] = entryIdIn(r.stdout);
      expect(created[name]).not.toBe('');
    }
    const a = await f.spire(['entry', 'show', '-entryID', created.a as string]);
    expect(a.stdout).toContain('Found 1 entry\n');
    expect(a.stdout).toContain('X509-SVID TTL    : 600\n');
    expect(a.stdout).toContain('Selector         : unix:uid:1001\n');
    expect(a.stdout).toContain('DNS name         : a.example.org\n');
    expect(a.stdout).toContain('Hint             : ha\n');
    // Mayfly's CLI sees each as created.
    const mine = await mayflyEntries(['-entryID', created.a as string]);
    expect(mine.map((e) => [idStr(e.spiffe_id), e.hint])).toEqual([[`spiffe://${f.td}/spire-cli/a`, 'ha']]);
  });

  it('entry create of an existing registration: AlreadyExists, exit 1, nothing duplicated', async () => {
    const before = (await mayflyEntries()).length;
    const r = await f.spire(['entry', 'create', '-parentID', parent, '-spiffeID', `spiffe://${f.td}/spire-cli/b`, '-selector', 'unix:gid:7', '-selector', 'unix:uid:1002']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Failed to create the following entry (code: AlreadyExists, msg: "similar entry already exists")');
    expect((await mayflyEntries()).length).toBe(before);
  });

  it('entry create -data -: a batch with a bad item; the good ones created, the bad one reported, exit 1', async () => {
    // SPIRE's -data format: its registration entries with IDs as strings.
    const id = (path: string): string => `spiffe://${f.td}${path}`;
    const p = parent;
    const data = JSON.stringify({
      entries: [
        { spiffe_id: id('/spire-cli/batch/1'), parent_id: p, selectors: [{ type: 'unix', value: 'uid:1101' }] },
        { spiffe_id: id('/spire/agent/not-allowed'), parent_id: p, selectors: [{ type: 'unix', value: 'uid:1102' }] },
        { spiffe_id: id('/spire-cli/batch/3'), parent_id: p, selectors: [{ type: 'unix', value: 'uid:1103' }] },
      ],
    });
    const r = await f.spire(['entry', 'create', '-data', '-'], data);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`SPIFFE ID        : spiffe://${f.td}/spire-cli/batch/1\n`);
    expect(r.stdout).toContain(`SPIFFE ID        : spiffe://${f.td}/spire-cli/batch/3\n`);
    expect(r.stderr).toContain('Failed to create the following entry (code: InvalidArgument, msg: "failed to convert entry: invalid spiffe ID:');
    expect(r.stderr).toContain(`SPIFFE ID        : spiffe://${f.td}/spire/agent/not-allowed\n`);
    const mine = (await mayflyEntries()).map((e) => idStr(e.spiffe_id));
    expect(mine).toEqual(expect.arrayContaining([`spiffe://${f.td}/spire-cli/batch/1`, `spiffe://${f.td}/spire-cli/batch/3`]));
    expect(mine).not.toContain(`spiffe://${f.td}/spire/agent/not-allowed`);
  });

  it('entry show: the same entries as Mayfly shows; SPIRE shows non-downstream ones unless -downstream', async () => {
    const all = await mayflyEntries();
    expect(ids(await spireEntries())).toEqual(ids(all.filter((e) => !e.downstream)));
    expect(ids(await spireEntries(['-downstream']))).toEqual([created.down]);
    expect(ids(await spireEntries(['-downstream']))).toEqual(ids(await mayflyEntries(['-downstream'])));
    // Filters: by SPIFFE ID, parent, selector (superset and exact), hint.
    const filters: [string[], string[]][] = [
      [['-spiffeID', `spiffe://${f.td}/spire-cli/a`], [created.a as string]],
      [['-selector', 'unix:gid:7'], [created.b as string]],
      [['-selector', 'unix:uid:1002', '-matchSelectorsOn', 'exact'], []],
      [['-selector', 'unix:uid:1002', '-selector', 'unix:gid:7', '-matchSelectorsOn', 'exact'], [created.b as string]],
      [['-hint', 'ha'], [created.a as string]],
    ];
    for (const [args, want] of filters) {
      expect(ids(await spireEntries(args)), args.join(' ')).toEqual([...want].sort());
      expect(ids(await mayflyEntries(args)), `mayfly ${args.join(' ')}`).toEqual([...want].sort());
    }
    expect(ids(await spireEntries(['-parentID', parent]))).toEqual(ids((await mayflyEntries(['-parentID', parent])).filter((e) => !e.downstream)));
  });

  it('entry count: equals what Mayfly counts (SPIRE counts non-downstream entries unless -downstream)', async () => {
    const all = await mayflyEntries();
    const total = (await f.mayflyJson<{ count: number }>(['entry', 'count'])).count;
    expect(total).toBe(all.length);
    const r = await f.spire(['entry', 'count']);
    expect(r.code, r.stderr).toBe(0);
    const nonDown = all.filter((e) => !e.downstream).length;
    expect(r.stdout).toBe(`${nonDown} registration ${nonDown === 1 ? 'entry' : 'entries'}\n`);
    expect((await f.spire(['entry', 'count', '-downstream'])).stdout).toBe('1 registration entry\n');
    expect((await f.spire(['entry', 'count', '-hint', 'ha'])).stdout).toBe('1 registration entry\n');
  });

  it('entry update: applied (no revision asked, twice over), seen by Mayfly, Mayfly-only fields kept', async () => {
    // An entry with a Mayfly owner, created with Mayfly's CLI; SPIRE's CLI knows no owners.
    const made = await f.mayfly(['entry', 'create', '-parentID', parent, '-spiffeID', `spiffe://${f.td}/spire-cli/owned`, '-selector', 'unix:uid:1010', '-owner', 'team-cli']);
    expect(made.code, made.stderr).toBe(0);
    const owned = (await mayflyEntries(['-spiffeID', `spiffe://${f.td}/spire-cli/owned`]))[0] as JsonEntry;
    for (const hint of ['first', 'second']) {
      const r = await f.spire(['entry', 'update', '-entryID', owned.id, '-parentID', parent, '-spiffeID', `spiffe://${f.td}/spire-cli/owned`, '-selector', 'unix:uid:1011', '-hint', hint]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Hint             : ${hint}\n`);
    }
    const after = (await mayflyEntries(['-entryID', owned.id]))[0] as JsonEntry;
    expect(after.selectors).toEqual([{ type: 'unix', value: 'uid:1011' }]);
    expect(after.hint).toBe('second');
    expect(after.owner).toBe('team-cli');
    expect(Number(after.revision_number)).toBe(Number(owned.revision_number) + 2);
    created.owned = owned.id;
  });

  it('entry update of an unknown entry ID: NotFound for the item, exit 1', async () => {
    const r = await f.spire(['entry', 'update', '-entryID', 'no-such-entry', '-parentID', parent, '-spiffeID', `spiffe://${f.td}/x`, '-selector', 'unix:uid:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Failed to update the following entry (code: NotFound');
  });

  it('entry delete: gone in both CLIs; an unknown ID is NotFound', async () => {
    const r = await f.spire(['entry', 'delete', '-entryID', created.b as string]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Deleted entry with ID: ${created.b}`);
    expect(ids(await mayflyEntries())).not.toContain(created.b);
    expect(ids(await spireEntries())).not.toContain(created.b);
    const again = await f.spire(['entry', 'delete', '-entryID', created.b as string]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`Failed to delete entry with ID ${created.b} (code: NotFound, msg: "entry not found")`);
  });

  it('agent list and agent count: the same agents as Mayfly lists', async () => {
    const mine = (await f.mayflyJson<{ agents: JsonAgent[] }>(['agent', 'list'])).agents;
    const theirs = (await f.spireJson<{ agents: JsonAgent[] }>(['agent', 'list'])).agents;
    expect(theirs.map((a) => idStr(a.id)).sort()).toEqual(mine.map((a) => idStr(a.id)).sort());
    expect(theirs.map((a) => idStr(a.id))).toEqual(expect.arrayContaining([f.agentId, f.banMe, f.evictMe]));
    const pretty = await f.spire(['agent', 'list']);
    expect(pretty.stdout).toContain(`Found ${mine.length} attested agents:\n\n`);
    expect(pretty.stdout).toContain(`SPIFFE ID         : ${f.agentId}\n`);
    expect(pretty.stdout).toContain('Attestation type  : join_token\n');
    const n = (await f.mayflyJson<{ count: number }>(['agent', 'count'])).count;
    expect(n).toBe(mine.length);
    expect((await f.spire(['agent', 'count'])).stdout).toBe(`${n} attested agents\n`);
    expect((await f.spire(['agent', 'count', '-attestationType', 'x509pop'])).stdout).toBe('0 attested agents\n');
    // SPIRE's filters Mayfly's datastore lacks, applied by the SPIRE API: the same answers as Mayfly's CLI.
    const listed = async (cli: 'spire' | 'mayfly', args: string[]): Promise<string[]> => {
      const doc = cli === 'spire' ? await f.spireJson<{ agents?: JsonAgent[] }>(['agent', 'list', ...args]) : await f.mayflyJson<{ agents?: JsonAgent[] }>(['agent', 'list', ...args]);
      return (doc.agents ?? []).map((a) => idStr(a.id)).sort();
    };
    const everyone = mine.map((a) => idStr(a.id)).sort();
    const filters: [string[], string[]][] = [
      [['-attestationType', 'join_token'], everyone],
      [['-attestationType', 'x509pop'], []],
      [['-canReattest', 'true'], []],
      [['-canReattest', 'false'], everyone],
      [['-expiresBefore', '2999-01-01 00:00:00 +0000 +00'], everyone],
      [['-expiresBefore', '2001-01-01 00:00:00 +0000 +00'], []],
      [['-banned', 'false'], everyone],
    ];
    for (const [args, want] of filters) {
      expect(await listed('spire', args), args.join(' ')).toEqual(want);
      expect(await listed('mayfly', args), `mayfly ${args.join(' ')}`).toEqual(want);
    }
    expect((await f.spire(['agent', 'list', '-attestationType', 'x509pop'])).stdout).toBe('No attested agents found\n');
  });

  it('agent show: the Mayfly agent, serial number in decimal as SPIRE prints it', async () => {
    const r = await f.spire(['agent', 'show', '-spiffeID', f.agentId]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Found an attested agent given its SPIFFE ID\n\n');
    expect(r.stdout).toContain(`SPIFFE ID         : ${f.agentId}\n`);
    const mine = await f.mayflyJson<JsonAgent>(['agent', 'show', '-spiffeID', f.agentId]);
    const serial = /^Serial number\s+: (\d+)$/m.exec(r.stdout)?.[1];
    expect(serial).toBeDefined();
    const mayflySerial = mine.x509svid_serial_number;
    // Mayfly's CLI prints SPIRE's spelling too when it has moved onto SPIRE's API; either way the number is the same.
    expect(BigInt(serial as string)).toBe(/^\d+$/.test(mayflySerial) ? BigInt(mayflySerial) : BigInt(`0x${mayflySerial}`));
    const unknown = await f.spire(['agent', 'show', '-spiffeID', `spiffe://${f.td}/spire/agent/join_token/nobody`]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('NotFound');
  });

  it('agent ban: visible in both CLIs; an unknown agent is NotFound', async () => {
    const r = await f.spire(['agent', 'ban', '-spiffeID', f.banMe]);
    expect(r).toMatchObject({ code: 0, stdout: 'Agent banned successfully\n' });
    expect((await f.mayflyJson<JsonAgent>(['agent', 'show', '-spiffeID', f.banMe])).banned).toBe(true);
    const banned = (await f.spireJson<{ agents: JsonAgent[] }>(['agent', 'list', '-banned', 'true'])).agents.map((a) => idStr(a.id));
    expect(banned).toEqual([f.banMe]);
    expect((await f.spire(['agent', 'show', '-spiffeID', f.banMe])).stdout).toContain('Banned            : true\n');
    const unknown = await f.spire(['agent', 'ban', '-spiffeID', `spiffe://${f.td}/spire/agent/join_token/nobody`]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('code = NotFound desc = agent not found');
  });

  it('agent evict: gone in both CLIs; an unknown agent is NotFound', async () => {
    const before = (await f.mayflyJson<{ count: number }>(['agent', 'count'])).count;
    const r = await f.spire(['agent', 'evict', '-spiffeID', f.evictMe]);
    expect(r).toMatchObject({ code: 0, stdout: 'Agent evicted successfully\n' });
    expect((await f.mayflyJson<{ agents: JsonAgent[] }>(['agent', 'list'])).agents.map((a) => idStr(a.id))).not.toContain(f.evictMe);
    expect((await f.spireJson<{ agents: JsonAgent[] }>(['agent', 'list'])).agents.map((a) => idStr(a.id))).not.toContain(f.evictMe);
    expect((await f.mayflyJson<{ count: number }>(['agent', 'count'])).count).toBe(before - 1);
    expect((await f.spire(['agent', 'count'])).stdout).toBe(`${before - 1} attested agents\n`);
    const unknown = await f.spire(['agent', 'evict', '-spiffeID', f.evictMe]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('code = NotFound desc = agent not found');
  });

  it('token generate: a token Mayfly made; with -spiffeID its node alias entry is in Mayfly', async () => {
    const plain = await f.spire(['token', 'generate', '-ttl', '60']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^Token: \S+\nWarning: Missing SPIFFE ID\.\n$/);
    const alias = `spiffe://${f.td}/spire-cli/node`;
    const r = await f.spire(['token', 'generate', '-ttl', '60', '-spiffeID', alias]);
    expect(r.code, r.stderr).toBe(0);
    const token = /^Token: (\S+)\n$/.exec(r.stdout)?.[1] as string;
    expect(token).toBeDefined();
    const aliasEntries = await mayflyEntries(['-spiffeID', alias]);
    expect(aliasEntries).toHaveLength(1);
    // Mayfly's node alias: parented to the server, selecting the token by its hash (never the token itself).
    expect(aliasEntries[0]?.selectors).toEqual([joinTokenSelector(token)]);
    expect(idStr(aliasEntries[0]?.parent_id as JsonId)).toBe(`spiffe://${f.td}/spire/server`);
    expect(ids(await spireEntries(['-spiffeID', alias]))).toEqual(ids(aliasEntries));
    const bad = await f.spire(['token', 'generate', '-ttl', '0']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('InvalidArgument');
  });
});
