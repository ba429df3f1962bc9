/**
 * @module server/spire-api/svid-agent
 *
 * SPIRE's SVIDs for agents (BatchNewX509SVID, NewJWTSVID, NewDownstreamX509CA). Not served yet: every RPC of it answers UNIMPLEMENTED.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function svidAgentHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
