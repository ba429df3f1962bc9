/**
 * @module server/spire-api
 *
 * SPIRE's public server API (`proto/spire/`, packages `spire.api.server.*.v1`), served on
 * the admin socket and the TCP port beside Mayfly's own, so SPIRE's `spire-server` CLI and
 * `spire-agent` work against Mayfly unchanged (issue 14). Each group of RPCs lives in its
 * own file and delegates to Mayfly's implementation where one exists (`delegate.ts`);
 * SPIRE's messages are never changed, and Mayfly's extras stay in Mayfly's own services.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { SpireApiService } from '../../wire/spire/definition.js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import { agentAdminHandlers } from './agent-admin.js';
import { agentAttestHandlers } from './agent-attest.js';
import { bundleAdminHandlers } from './bundle-admin.js';
import { bundleReadHandlers } from './bundle-read.js';
import { debugHandlers } from './debug.js';
import type { MayflyImpls } from './delegate.js';
import { entryAdminHandlers } from './entry-admin.js';
import { entrySyncHandlers } from './entry-sync.js';
import { localAuthorityHandlers } from './localauthority.js';
import { svidAgentHandlers } from './svid-agent.js';
import { svidMintHandlers } from './svid-mint.js';
import { trustDomainHandlers } from './trustdomain.js';

export function spireApiServices(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): Partial<Record<SpireApiService, UntypedServiceImplementation>> {
  return {
    Entry: { ...entryAdminHandlers(ctx, t, mayfly), ...entrySyncHandlers(ctx, t, mayfly) },
    Agent: { ...agentAdminHandlers(ctx, t, mayfly), ...agentAttestHandlers(ctx, t, mayfly) },
    Bundle: { ...bundleAdminHandlers(ctx, t, mayfly), ...bundleReadHandlers(ctx, t, mayfly) },
    SVID: { ...svidMintHandlers(ctx, t, mayfly), ...svidAgentHandlers(ctx, t, mayfly) },
    LocalAuthority: localAuthorityHandlers(ctx, t, mayfly),
    TrustDomain: trustDomainHandlers(ctx, t, mayfly),
    Debug: debugHandlers(ctx, t, mayfly),
  };
}
