import { describe, expect, it } from 'vitest';
import type { AttestedAgent, EntryUsage } from '../datastore/datastore.js';
import type { RegistrationEntry } from '../registration/entry.js';
import { computeInventory } from './inventory.js';

const DAY = 86_400;
const NOW = 1_800_000_000;
const SERVER = 'spiffe://example.org/spire/server';

function entry(id: string, over: Partial<RegistrationEntry> = {}): RegistrationEntry {
  return {
    entryId: id, spiffeId: `spiffe://example.org/${id}`, parentId: 'spiffe://example.org/agent/a',
    selectors: [{ type: 'unix', value: `uid:${1000 + id.length}` }, { type: 'unix', value: `path:/bin/${id}` }],
    x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], admin: false, downstream: false, hint: '',
    expiresAt: 0, owner: 'team-a', labels: {}, purpose: '', revision: 0, createdAt: NOW - 100 * DAY, ...over,
  };
}
function agent(id: string, over: Partial<AttestedAgent> = {}): AttestedAgent {
  return { spiffeId: `spiffe://example.org/agent/${id}`, attestationType: 'join_token', serialNumber: '01', certNotAfter: NOW + DAY,
    selectors: [], banned: false, canReattest: false, createdAt: NOW - 100 * DAY, updatedAt: NOW - DAY, ...over };
}
function used(id: string, lastIssuedAt: number): EntryUsage {
  return { entryId: id, firstIssuedAt: lastIssuedAt, lastIssuedAt, issuanceCount: 1, agents: [], agentCount: 1, lastDeliveredAt: 0 };
}
const kinds = (r: ReturnType<typeof computeInventory>, id: string): string[] => r.entries.filter((f) => f.entryId === id).map((f) => f.kind).sort();

describe('computeInventory', () => {
  const entries = [
    entry('ok'),
    entry('never'),
    entry('stale'),
    entry('noowner', { owner: '' }),
    entry('expired', { expiresAt: NOW - 2 * DAY }),
    entry('orphan', { parentId: 'spiffe://example.org/agent/gone' }),
    entry('banned', { parentId: 'spiffe://example.org/agent/b' }),
    entry('dup1', { selectors: [{ type: 'k8s', value: 'sa:x' }] }),
    entry('dup2', { selectors: [{ type: 'k8s', value: 'sa:x' }] }),
    entry('root', { selectors: [{ type: 'unix', value: 'uid:0' }] }),
    entry('longttl', { x509SvidTtl: 86_400 }),
    entry('node', { parentId: SERVER, spiffeId: 'spiffe://example.org/node' }),
    entry('aliased', { parentId: 'spiffe://example.org/node' }),
  ];
  const usage = entries.filter((e) => !['never'].includes(e.entryId)).map((e) => used(e.entryId, e.entryId === 'stale' ? NOW - 40 * DAY : NOW - DAY));
  const agents = [agent('a'), agent('b', { banned: true }), agent('old', { updatedAt: NOW - 31 * DAY })];
  const r = computeInventory({ entries, agents, usage, serverId: SERVER, now: NOW });

  it('names each finding on the entry that causes it, with owner and action', () => {
    expect(kinds(r, 'ok')).toEqual([]);
    expect(kinds(r, 'never')).toEqual(['never_issued']);
    expect(kinds(r, 'stale')).toEqual(['unused']);
    expect(kinds(r, 'noowner')).toEqual(['no_owner']);
    expect(kinds(r, 'expired')).toEqual(['expired']);
    expect(kinds(r, 'orphan')).toEqual(['parent_gone']);
    expect(kinds(r, 'banned')).toEqual(['parent_banned']);
    expect(kinds(r, 'dup1')).toEqual(['duplicate']);
    expect(kinds(r, 'dup2')).toEqual(['duplicate']);
    expect(kinds(r, 'root')).toEqual(['over_broad']);
    expect(kinds(r, 'longttl')).toEqual(['long_ttl']);
    expect(kinds(r, 'node')).toEqual([]);
    expect(kinds(r, 'aliased')).toEqual([]);
    for (const f of r.entries) expect(f.action).not.toBe('');
    expect(r.entries.find((f) => f.entryId === 'stale')?.owner).toBe('team-a');
    expect(r.agents.map((a) => a.agentId)).toEqual(['spiffe://example.org/agent/old']);
  });

  it('uses the injected clock and the unusedDays threshold', () => {
    const r2 = computeInventory({ entries, agents, usage, serverId: SERVER, now: NOW, unusedDays: 50 });
    expect(kinds(r2, 'stale')).toEqual([]);
    expect(r2.agents).toEqual([]);
    const r3 = computeInventory({ entries, agents, usage, serverId: SERVER, now: NOW + 60 * DAY });
    expect(kinds(r3, 'ok')).toEqual(['unused']);
  });

  it('lists at most topTtl longest TTLs, longest first', () => {
    const many = Array.from({ length: 12 }, (_, i) => entry(`t${String(i).padStart(2, '0')}`, { jwtSvidTtl: 100 + i }));
    const r4 = computeInventory({ entries: many, agents: [agent('a')], usage: many.map((e) => used(e.entryId, NOW)), serverId: SERVER, now: NOW });
    const ttl = r4.entries.filter((f) => f.kind === 'long_ttl').map((f) => f.entryId);
    expect(ttl).toHaveLength(10);
    expect(ttl[0]).toBe('t11');
  });

  it('rejects a nonsensical threshold', () => {
    expect(() => computeInventory({ entries, agents, usage, serverId: SERVER, now: NOW, unusedDays: 0 })).toThrow(TypeError);
  });
});
