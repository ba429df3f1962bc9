import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttestedAgent } from '../datastore/datastore.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { TrustDomain } from '../spiffe/id.js';
import { AuthorizedEntryCache } from './authorized-cache.js';
import type { ApiContext } from './context.js';
import { ChangeHub } from './hub.js';

const td = TrustDomain.parse('example.org');
let dir: string;
let ds: LevelDatastore;
let clock = 1_900_000_000;

function context(hub: ChangeHub): ApiContext {
  // Only what server/authorized reads: the datastore, the server ID and the clock.
  return { ds, serverId: td.idWithPath('/spire/server'), now: () => new Date(clock * 1000), hub } as unknown as ApiContext;
}

let agentSeq = 0;
function agent(selectors: { type: string; value: string }[] = []): AttestedAgent {
  agentSeq++;
  return {
    spiffeId: `spiffe://example.org/spire/agent/test/node${agentSeq}`,
    attestationType: 'test',
    serialNumber: '01',
    certNotAfter: clock + 3600,
    selectors,
    banned: false,
    canReattest: false,
    createdAt: clock,
    updatedAt: clock,
  };
}

async function entry(parentId: string, path: string, extra: { expiresAt?: number; selectors?: { type: string; value: string }[] } = {}) {
  return ds.createEntry({ spiffeId: `spiffe://example.org${path}`, parentId, selectors: extra.selectors ?? [{ type: 'unix', value: `uid:${path.length}` }], expiresAt: extra.expiresAt ?? 0 });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-authcache-'));
  ds = await openLevelDatastore({ path: join(dir, 'db') });
});

afterAll(async () => {
  await ds.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('AuthorizedEntryCache', () => {
  it('serves a copy until an entry change notice, then recomputes', async () => {
    const hub = new ChangeHub();
    const ctx = context(hub);
    const cache = new AuthorizedEntryCache({ hub });
    const a = agent();
    const e1 = await entry(a.spiffeId, '/w1');
    expect([...(await cache.get(ctx, a)).keys()]).toEqual([e1.entryId]);
    // Written behind the hub's back: the copy is still served (this is what makes it a cache) ...
    const e2 = await entry(a.spiffeId, '/w2');
    expect((await cache.get(ctx, a)).has(e2.entryId)).toBe(false);
    // ... and the notice every API write publishes drops it.
    hub.publish({ kind: 'entries' });
    expect((await cache.get(ctx, a)).has(e2.entryId)).toBe(true);
    await ds.deleteEntry(e1.entryId);
    hub.publish({ kind: 'entries' });
    expect((await cache.get(ctx, a)).has(e1.entryId)).toBe(false);
    cache.close();
  });

  it('drops only the named agent on an agent notice (ban, evict, renewal)', async () => {
    const hub = new ChangeHub();
    const ctx = context(hub);
    const cache = new AuthorizedEntryCache({ hub });
    const a = agent();
    const b = agent();
    await entry(a.spiffeId, '/a1');
    await entry(b.spiffeId, '/b1');
    await cache.get(ctx, a);
    await cache.get(ctx, b);
    expect(cache.size).toBe(2);
    hub.publish({ kind: 'agent', agentId: a.spiffeId });
    expect(cache.size).toBe(1);
    const late = await entry(b.spiffeId, '/b2');
    expect((await cache.get(ctx, b)).has(late.entryId)).toBe(false);
    cache.close();
  });

  it('recomputes when the agent shows other selectors (re-attested)', async () => {
    const hub = new ChangeHub();
    const ctx = context(hub);
    const cache = new AuthorizedEntryCache({ hub });
    const a = agent([{ type: 'join_token', value: 'old' }]);
    const alias = await entry(ctx.serverId.toString(), '/alias-new', { selectors: [{ type: 'join_token', value: 'new' }] });
    const child = await entry(alias.spiffeId, '/under-alias');
    expect((await cache.get(ctx, a)).has(child.entryId)).toBe(false);
    const moved = { ...a, selectors: [{ type: 'join_token', value: 'new' }] };
    expect((await cache.get(ctx, moved)).has(child.entryId)).toBe(true);
    cache.close();
  });

  it('never serves a copy past the expiry of an entry or node alias behind it', async () => {
    const hub = new ChangeHub();
    const ctx = context(hub);
    const cache = new AuthorizedEntryCache({ hub });
    const a = agent([{ type: 'k8s_psat', value: 'cluster:c1' }]);
    const direct = await entry(a.spiffeId, '/short', { expiresAt: clock + 10 });
    const alias = await entry(ctx.serverId.toString(), '/alias-c1', { expiresAt: clock + 20, selectors: [{ type: 'k8s_psat', value: 'cluster:c1' }] });
    const viaAlias = await entry(alias.spiffeId, '/via-alias');
    let set = await cache.get(ctx, a);
    expect(set.has(direct.entryId) && set.has(viaAlias.entryId)).toBe(true);
    clock += 10; // the direct entry expires; no notice is published
    set = await cache.get(ctx, a);
    expect(set.has(direct.entryId)).toBe(false);
    expect(set.has(viaAlias.entryId)).toBe(true);
    clock += 10; // the node alias expires: its children are no longer the agent's
    set = await cache.get(ctx, a);
    expect(set.has(viaAlias.entryId)).toBe(false);
    cache.close();
  });

  it('does not store a set computed across a change notice', async () => {
    const hub = new ChangeHub();
    const ctx = context(hub);
    const cache = new AuthorizedEntryCache({ hub });
    const a = agent();
    await entry(a.spiffeId, '/race');
    const pending = cache.get(ctx, a);
    hub.publish({ kind: 'entries' }); // arrives while the datastore is being read
    await pending;
    expect(cache.size).toBe(0);
    await cache.get(ctx, a);
    expect(cache.size).toBe(1);
    cache.close();
    expect(cache.size).toBe(0);
    expect(hub.listenerCount).toBe(0);
  });
});
