/**
 * @module datastore/level/agents
 *
 * Attested agents on LevelDB (`a!<spiffeId>`, counted in `c!agents` in the same batch):
 * create, read, update, list with filters, delete, and purge of expired agents.
 */
import type { AgentUpdate, AttestedAgent, ListAgentsQuery, NewAgent, Page } from '../datastore.js';
import {
  AGENT_PAGE_KIND,
  checkAgentFields,
  checkAgentQuery,
  checkAgentSpiffeId,
  checkNewAgent,
  checkPageSize,
  checkTime,
  DatastoreError,
  decodePageToken,
  encodePageToken,
} from '../records.js';
import { FETCH_CHUNK, type Op } from './keys.js';
import type { LevelStore } from './store.js';

export async function createAgent(s: LevelStore, agent: NewAgent): Promise<AttestedAgent> {
  s.check();
  checkNewAgent(agent);
  return s.exclusive(async () => {
    if ((await s.db.get(`a!${agent.spiffeId}`)) !== undefined) {
      throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `agent ${agent.spiffeId} is already recorded`);
    }
    const now = s.seconds();
    const rec: AttestedAgent = {
      spiffeId: agent.spiffeId,
      attestationType: agent.attestationType,
      serialNumber: agent.serialNumber,
      certNotAfter: agent.certNotAfter,
      selectors: (agent.selectors ?? []).map((sel) => ({ type: sel.type, value: sel.value })),
      banned: agent.banned ?? false,
      canReattest: agent.canReattest ?? false,
      createdAt: now,
      updatedAt: now,
    };
    const n = await s.count('c!agents');
    await s.write([
      { type: 'put', key: `a!${rec.spiffeId}`, value: JSON.stringify(rec) },
      { type: 'put', key: 'c!agents', value: String(n + 1) },
    ]);
    return rec;
  });
}

export async function getAgent(s: LevelStore, spiffeId: string): Promise<AttestedAgent | undefined> {
  s.check();
  if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
  return s.readAgent(spiffeId);
}

export async function updateAgent(s: LevelStore, spiffeId: string, update: AgentUpdate): Promise<AttestedAgent> {
  s.check();
  checkAgentSpiffeId(spiffeId);
  if (typeof update !== 'object' || update === null) throw new TypeError('agent update must be an object');
  checkAgentFields(update, false);
  return s.exclusive(async () => {
    const old = await s.readAgent(spiffeId);
    if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
    const rec: AttestedAgent = {
      spiffeId,
      attestationType: update.attestationType ?? old.attestationType,
      serialNumber: update.serialNumber ?? old.serialNumber,
      certNotAfter: update.certNotAfter ?? old.certNotAfter,
      selectors: (update.selectors ?? old.selectors).map((sel) => ({ type: sel.type, value: sel.value })),
      banned: update.banned ?? old.banned,
      canReattest: update.canReattest ?? old.canReattest,
      createdAt: old.createdAt,
      updatedAt: s.seconds(),
    };
    await s.write([{ type: 'put', key: `a!${spiffeId}`, value: JSON.stringify(rec) }]);
    return rec;
  });
}

export async function listAgents(s: LevelStore, query: ListAgentsQuery = {}): Promise<Page<AttestedAgent>> {
  s.check();
  const pageSize = checkPageSize(query.pageSize);
  checkAgentQuery(query);
  const after = decodePageToken(AGENT_PAGE_KIND, query.pageToken);
  const items: AttestedAgent[] = [];
  const it = s.db.values(after === undefined ? { gte: 'a!', lt: 'a"' } : { gt: `a!${after}`, lt: 'a"' });
  try {
    while (items.length < pageSize) {
      const vs = await it.nextv(FETCH_CHUNK);
      if (vs.length === 0) break;
      for (const v of vs) {
        const a = JSON.parse(v) as AttestedAgent;
        if (query.byBanned !== undefined && a.banned !== query.byBanned) continue;
        if (query.byExpiredBefore !== undefined && !(a.certNotAfter < query.byExpiredBefore)) continue;
        items.push(a);
        if (items.length === pageSize) break;
      }
    }
  } finally {
    await it.close();
  }
  const last = items[items.length - 1];
  return { items, nextPageToken: items.length === pageSize && last !== undefined ? encodePageToken(AGENT_PAGE_KIND, last.spiffeId) : '' };
}

export async function deleteAgent(s: LevelStore, spiffeId: string): Promise<AttestedAgent> {
  s.check();
  if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
  return s.exclusive(async () => {
    const old = await s.readAgent(spiffeId);
    if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
    const n = await s.count('c!agents');
    await s.write([
      { type: 'del', key: `a!${spiffeId}` },
      { type: 'put', key: 'c!agents', value: String(Math.max(0, n - 1)) },
    ]);
    return old;
  });
}

export async function countAgents(s: LevelStore): Promise<number> {
  s.check();
  return s.count('c!agents');
}

export async function purgeExpiredAgents(s: LevelStore, before: number, opts: { includeBanned?: boolean } = {}): Promise<number> {
  s.check();
  checkTime(before, 'before');
  const includeBanned = opts.includeBanned === true;
  return s.exclusive(async () => {
    const ops: Op[] = [];
    for await (const v of s.db.values({ gte: 'a!', lt: 'a"' })) {
      const a = JSON.parse(v) as AttestedAgent;
      if (a.certNotAfter < before && (includeBanned || !a.banned)) ops.push({ type: 'del', key: `a!${a.spiffeId}` });
    }
    if (ops.length === 0) return 0;
    const n = await s.count('c!agents');
    ops.push({ type: 'put', key: 'c!agents', value: String(Math.max(0, n - ops.length)) });
    await s.write(ops);
    return ops.length - 1;
  });
}
