/**
 * @module server/spire-api/debug
 *
 * SPIRE's the Debug service (GetInfo). Not served yet: every RPC of it answers UNIMPLEMENTED.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function debugHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
