/**
 * @module server/api/health
 *
 * The `Health` service: SERVING while the datastore answers and the CA has a bundle.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import { unary, type ApiContext } from '../context.js';

export function healthService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  return {
    Check: unary(ctx, t, 'Check', 'public', async () => {
      try {
        await ctx.ds.countAgents();
        if (ctx.ca.getBundle().x509Authorities.length === 0) return { status: 'NOT_SERVING' };
        return { status: 'SERVING' };
      } catch {
        return { status: 'NOT_SERVING' };
      }
    }),
  };
}
