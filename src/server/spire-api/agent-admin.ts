/**
 * @module server/spire-api/agent-admin
 *
 * SPIRE's Agent admin RPCs (CountAgents, ListAgents, GetAgent, DeleteAgent, BanAgent,
 * CreateJoinToken) over Mayfly's own Agent handlers: banning still clears the serial and
 * revokes the agent's SVIDs, eviction still ends its push stream, and a join token is still
 * Mayfly's (random, bounded lifetime), with the same authorisation and audit. SPIRE's checks
 * and words come first (agent-convert.ts); SPIRE's status codes are kept: INVALID_ARGUMENT
 * "invalid agent ID" for an ID outside the trust domain's agent namespace, NOT_FOUND "agent
 * not found" for an unknown agent.
 *
 * Deliberate differences from SPIRE, at their spots: a client-chosen join token is refused,
 * and a join token's lifetime is bounded by `limits.maxJoinTokenTtl`.
 */
import type { ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { WireAgent } from '../messages.js';
import { mayflyCaller, type MayflyCall } from './call.js';
import { spireError, SpireStatus, spireUnary } from './spire-call.js';
import type { MayflyImpls } from './delegate.js';
import { agentFilterFromSpire, agentIdFromSpire, type SpireAgentFilter } from './agent-convert.js';
import { workloadIdFromSpire } from './entry-convert.js';
import type { SpireSpiffeId } from './ids.js';
import { countAll, spireListPage, type SourcePage } from './paging.js';
import { agentToSpire, applyMask, type SpireAgent, type SpireMask } from './types.js';

interface ListAgentsRequest {
  filter: Partial<SpireAgentFilter> | null;
  output_mask: SpireMask | null;
  page_size: number;
  page_token: string;
}

function agentPages(call: MayflyCall, filter: unknown): (size: number, token: string) => Promise<SourcePage<WireAgent>> {
  return async (size, token) => {
    const res = await call<{ agents: WireAgent[]; next_page_token: string }>('ListAgents', { filter, page_size: size, page_token: token });
    return { items: res.agents, next: res.next_page_token };
  };
}

/** Mayfly's NOT_FOUND for an agent in SPIRE's words; everything else as Mayfly answered. */
async function agentCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof SpireStatus && err.code === GrpcStatus.NOT_FOUND) throw spireError(GrpcStatus.NOT_FOUND, 'agent not found');
    throw err;
  }
}

export function agentAdminHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const maxPage = ctx.limits.maxPageSize;
  const caller = (call: ServerUnaryCall<unknown, unknown>): MayflyCall => mayflyCaller(mayfly.Agent, call);
  const td = ctx.trustDomain;

  return {
    CountAgents: spireUnary<{ filter: Partial<SpireAgentFilter> | null }, { count: number }>(ctx, t, 'spire.Agent/CountAgents', 'admin', async (req, _caller, call) => {
      const f = agentFilterFromSpire(req.filter);
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      if (f.empty) return { count: (await m<{ count: number }>('CountAgents', {})).count };
      return { count: await countAll(maxPage, agentPages(m, f.mayfly), f.keep ?? (() => true)) };
    }),

    ListAgents: spireUnary<ListAgentsRequest, { agents: Partial<SpireAgent>[]; next_page_token: string }>(ctx, t, 'spire.Agent/ListAgents', 'admin', async (req, _caller, call) => {
      const f = agentFilterFromSpire(req.filter);
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      const page = await spireListPage<WireAgent>('agents', { pageSize: req.page_size ?? 0, pageToken: req.page_token ?? '', maxPage, fetch: agentPages(m, f.mayfly), ...(f.keep ? { keep: f.keep } : {}) });
      return { agents: page.items.map((a) => applyMask(agentToSpire(a), req.output_mask, ['id'])), next_page_token: page.next };
    }),

    GetAgent: spireUnary<{ id: SpireSpiffeId | null; output_mask: SpireMask | null }, Partial<SpireAgent>>(ctx, t, 'spire.Agent/GetAgent', 'admin', async (req, _caller, call) => {
      const id = agentIdFromSpire(td, req.id).toString();
      const a = await agentCall(caller(call as ServerUnaryCall<unknown, unknown>)<WireAgent>('GetAgent', { id }));
      return applyMask(agentToSpire(a), req.output_mask, ['id']);
    }),

    BanAgent: spireUnary<{ id: SpireSpiffeId | null }, object>(ctx, t, 'spire.Agent/BanAgent', 'admin', async (req, _caller, call) => {
      const id = agentIdFromSpire(td, req.id).toString();
      const m = caller(call as ServerUnaryCall<unknown, unknown>);
      // SPIRE's ban is an update of the agent record: NOT_FOUND when there is none. Mayfly's
      // also revokes the agent's SVIDs, so an unknown agent is answered before it is asked.
      await agentCall(m<WireAgent>('GetAgent', { id }));
      await agentCall(m<object>('BanAgent', { id }));
      return {};
    }),

    DeleteAgent: spireUnary<{ id: SpireSpiffeId | null }, object>(ctx, t, 'spire.Agent/DeleteAgent', 'admin', async (req, _caller, call) => {
      const id = agentIdFromSpire(td, req.id).toString();
      await agentCall(caller(call as ServerUnaryCall<unknown, unknown>)<object>('DeleteAgent', { id }));
      return {};
    }),

    CreateJoinToken: spireUnary<{ ttl: number; token: string; agent_id: SpireSpiffeId | null }, { value: string; expires_at: number }>(ctx, t, 'spire.Agent/CreateJoinToken', 'admin', async (req, _caller, call) => {
      if (!(req.ttl >= 1)) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'ttl is required, you must provide one');
      let agentId = '';
      if (req.agent_id) {
        try {
          agentId = workloadIdFromSpire(td, req.agent_id).toString();
        } catch (err) {
          throw spireError(GrpcStatus.INVALID_ARGUMENT, `invalid agent ID: ${(err as Error).message}`);
        }
      }
      // Deliberately unlike SPIRE: a join token is a bearer secret, so Mayfly makes every one
      // itself (128 random bits) and never stores one a client chose (which may be guessable
      // or reused across sites). `spire-server token generate` never sends one.
      if ((req.token ?? '') !== '') {
        throw spireError(GrpcStatus.INVALID_ARGUMENT, 'a client-chosen join token is not accepted by Mayfly: leave token empty and the server generates one');
      }
      return caller(call as ServerUnaryCall<unknown, unknown>)<{ value: string; expires_at: number }>('CreateJoinToken', { ttl: req.ttl, agent_id: agentId });
    }),
  };
}
