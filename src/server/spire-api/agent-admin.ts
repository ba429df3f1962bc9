/**
 * @module server/spire-api/agent-admin
 *
 * SPIRE's Agent admin RPCs (CountAgents, ListAgents, GetAgent, DeleteAgent, BanAgent, CreateJoinToken). Not served yet: every RPC of it answers UNIMPLEMENTED.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function agentAdminHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
