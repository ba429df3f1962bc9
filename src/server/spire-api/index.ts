/**
 * @module server/spire-api
 *
 * SPIRE's public server API (`proto/spire/`, packages `spire.api.server.*.v1`), served on
 * the admin socket and the TCP port beside Mayfly's own, so SPIRE's `spire-server` CLI and
 * `spire-agent` work against Mayfly unchanged (issue 14). Each service lives in its own
 * file and delegates to Mayfly's implementation where one exists (`delegate.ts`); SPIRE's
 * messages are never changed, and Mayfly's extras stay in Mayfly's own services.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { SpireApiService } from '../../wire/spire/definition.js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';

/** Mayfly's own service implementations on the same endpoint, which SPIRE's delegate to. */
export type MayflyImpls = Readonly<Record<string, UntypedServiceImplementation | undefined>>;

export function spireApiServices(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): Partial<Record<SpireApiService, UntypedServiceImplementation>> {
  return {};
}
