/**
 * @module server/spire-api/bundle-read
 *
 * The bundle reads SPIRE's agents make (GetBundle, GetFederatedBundle) are served by the
 * one implementation every caller shares, `bundle-get.ts` (registered by the Bundle admin
 * group): GetBundle for anyone, GetFederatedBundle for admins and attested agents, as
 * SPIRE authorises them, with SPIRE's masks, taint flags and messages. Nothing is added here
 * (a second GetBundle would shadow that one in `index.ts`); `spire-agent.interop.test.ts`
 * checks both as agents call them.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function bundleReadHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
