/**
 * @module server/spire-api/bundle-read
 *
 * SPIRE's the bundle reads agents make (GetBundle, GetFederatedBundle). Not served yet: every RPC of it answers UNIMPLEMENTED.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function bundleReadHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
