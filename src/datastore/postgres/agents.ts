/**
 * @module datastore/postgres/agents
 *
 * Attested agents on PostgreSQL, one row each, keyed by SPIFFE ID. Every write is one
 * statement, so an update never loses a field another server changed meanwhile and a
 * listing is keyset-paged with `LIMIT`.
 */
import type { Selector } from '../../registration/selector.js';
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
import type { PostgresStore } from './store.js';

interface AgentRow {
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  cert_not_after: string;
  selectors: string;
  banned: boolean;
  can_reattest: boolean;
  created_at: string;
  updated_at: string;
}

function agentFromRow(r: AgentRow): AttestedAgent {
  return {
    spiffeId: r.spiffe_id,
    attestationType: r.attestation_type,
    serialNumber: r.serial_number,
    certNotAfter: Number(r.cert_not_after),
    selectors: JSON.parse(r.selectors) as Selector[],
    banned: r.banned,
    canReattest: r.can_reattest,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

const AGENT_COLUMNS = 'spiffe_id, attestation_type, serial_number, cert_not_after, selectors, banned, can_reattest, created_at, updated_at';

export function createAgent(s: PostgresStore, agent: NewAgent): Promise<AttestedAgent> {
  return s.run(async () => {
    checkNewAgent(agent);
    const now = s.seconds();
    const selectors = (agent.selectors ?? []).map((s) => ({ type: s.type, value: s.value }));
    const r = await s.query<AgentRow>(
      `INSERT INTO ${s.S}.agents (${AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
       ON CONFLICT DO NOTHING RETURNING ${AGENT_COLUMNS}`,
      [agent.spiffeId, agent.attestationType, agent.serialNumber, agent.certNotAfter, JSON.stringify(selectors), agent.banned ?? false, agent.canReattest ?? false, now],
    );
    if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `agent ${agent.spiffeId} is already recorded`);
    return agentFromRow(r.rows[0]);
  });
}

export function getAgent(s: PostgresStore, spiffeId: string): Promise<AttestedAgent | undefined> {
  return s.run(async () => {
    if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
    const r = await s.query<AgentRow>(`SELECT ${AGENT_COLUMNS} FROM ${s.S}.agents WHERE spiffe_id = $1`, [spiffeId]);
    return r.rows[0] === undefined ? undefined : agentFromRow(r.rows[0]);
  });
}

export function updateAgent(s: PostgresStore, spiffeId: string, update: AgentUpdate): Promise<AttestedAgent> {
  return s.run(async () => {
    checkAgentSpiffeId(spiffeId);
    if (typeof update !== 'object' || update === null) throw new TypeError('agent update must be an object');
    checkAgentFields(update, false);
    const selectors = update.selectors === undefined ? null : JSON.stringify(update.selectors.map((s) => ({ type: s.type, value: s.value })));
    // One statement: fields not in the update keep their committed values.
    const r = await s.query<AgentRow>(
      `UPDATE ${s.S}.agents SET
         attestation_type = COALESCE($2, attestation_type), serial_number = COALESCE($3, serial_number),
         cert_not_after = COALESCE($4, cert_not_after), selectors = COALESCE($5, selectors),
         banned = COALESCE($6, banned), can_reattest = COALESCE($7, can_reattest), updated_at = $8
       WHERE spiffe_id = $1 RETURNING ${AGENT_COLUMNS}`,
      [
        spiffeId,
        update.attestationType ?? null,
        update.serialNumber ?? null,
        update.certNotAfter ?? null,
        selectors,
        update.banned ?? null,
        update.canReattest ?? null,
        s.seconds(),
      ],
    );
    if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
    return agentFromRow(r.rows[0]);
  });
}

export function listAgents(s: PostgresStore, query: ListAgentsQuery = {}): Promise<Page<AttestedAgent>> {
  return s.run(async () => {
    const pageSize = checkPageSize(query.pageSize);
    checkAgentQuery(query);
    const after = decodePageToken(AGENT_PAGE_KIND, query.pageToken);
    const params: unknown[] = [pageSize];
    const where: string[] = [];
    if (after !== undefined) where.push(`spiffe_id > $${params.push(after)}`);
    if (query.byBanned !== undefined) where.push(`banned = $${params.push(query.byBanned)}`);
    if (query.byExpiredBefore !== undefined) where.push(`cert_not_after < $${params.push(query.byExpiredBefore)}`);
    const r = await s.query<AgentRow>(
      `SELECT ${AGENT_COLUMNS} FROM ${s.S}.agents${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY spiffe_id LIMIT $1`,
      params,
    );
    const items = r.rows.map(agentFromRow);
    const last = items[items.length - 1];
    return { items, nextPageToken: items.length === pageSize && last !== undefined ? encodePageToken(AGENT_PAGE_KIND, last.spiffeId) : '' };
  });
}

export function deleteAgent(s: PostgresStore, spiffeId: string): Promise<AttestedAgent> {
  return s.run(async () => {
    if (typeof spiffeId !== 'string') throw new TypeError('spiffeId must be a string');
    const r = await s.query<AgentRow>(`DELETE FROM ${s.S}.agents WHERE spiffe_id = $1 RETURNING ${AGENT_COLUMNS}`, [spiffeId]);
    if (r.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `agent ${spiffeId} is not recorded`);
    return agentFromRow(r.rows[0]);
  });
}

export function countAgents(s: PostgresStore): Promise<number> {
  return s.run(async () => Number((await s.query<{ n: string }>(`SELECT count(*) AS n FROM ${s.S}.agents`)).rows[0]!.n));
}

export function purgeExpiredAgents(s: PostgresStore, before: number, opts: { includeBanned?: boolean } = {}): Promise<number> {
  return s.run(async () => {
    checkTime(before, 'before');
    const r = await s.query(`DELETE FROM ${s.S}.agents WHERE cert_not_after < $1 AND ($2 OR NOT banned)`, [before, opts.includeBanned === true]);
    return r.rowCount ?? 0;
  });
}
