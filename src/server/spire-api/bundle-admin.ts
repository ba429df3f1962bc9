/**
 * @module server/spire-api/bundle-admin
 *
 * SPIRE's Bundle admin RPCs (CountBundles, AppendBundle, ListFederatedBundles, BatchCreate/Update/Set/DeleteFederatedBundle, PublishJWTAuthority). Not served yet: every RPC of it answers UNIMPLEMENTED.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function bundleAdminHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
