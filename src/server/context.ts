/**
 * @module server/context
 *
 * What every API handler shares (the `ApiContext` of `api-context.ts`: datastore, CA,
 * clock, attestors, change hub, limits) and the wrappers that give each RPC its
 * authorisation policy and turn every failure into a gRPC status. No handler is registered
 * without a wrapper, so no RPC can forget to authenticate its caller or crash the server on
 * bad input.
 */
import type { handleServerStreamingCall, handleUnaryCall, sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ApiContext } from './api-context.js';
import { auditActorOf, auditEventsOf } from './audit-events.js';
import { authenticate, authorize, type Caller, type Policy, type Transport } from './auth.js';
import { badRequest, grpcCodeOf, toServiceError, tooLarge } from './status.js';

// What the wrappers are given, from its own module (auth.ts and the authorised-entry cache
// need it too, and must not import the wrappers: no import cycles), re-exported so handlers
// import one module.
export {
  DEFAULT_LIMITS,
  nowSeconds,
  servedBundle,
  servedTaints,
  type ApiContext,
  type ApiLimits,
  type AuthorizedEntrySource,
} from './api-context.js';

function logFailure(ctx: ApiContext, method: string, err: unknown): void {
  if (grpcCodeOf(err) === GrpcStatus.INTERNAL) ctx.logger.error({ method, err }, 'server API call failed');
}

/** A unary handler with authorisation `policy` on `transport`. */
export function unary<Req, Res>(
  ctx: ApiContext,
  transport: Transport,
  method: string,
  policy: Policy,
  fn: (req: Req, caller: Caller, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    void (async () => {
      try {
        const caller = policy === 'public' ? ({ kind: 'anonymous' } as const) : await authenticate(ctx, transport, call);
        authorize(caller, policy, method);
        const res = await fn(call.request, caller, call);
        // Nothing is acknowledged (an SVID handed out, a change reported done) before its
        // audit record is durable; a ledger failure answers UNAVAILABLE (audit/ledger).
        if (ctx.audit !== undefined) {
          const audit = ctx.audit;
          const actor = auditActorOf(caller);
          await Promise.all(auditEventsOf(method, call.request, res, caller).map((e) => audit.record(actor, e)));
        }
        callback(null, res);
      } catch (err) {
        logFailure(ctx, method, err);
        callback(toServiceError(err));
      }
    })();
  };
}

/** A server-streaming handler with authorisation `policy` on `transport`. */
export function serverStream<Req, Res>(
  ctx: ApiContext,
  transport: Transport,
  method: string,
  policy: Policy,
  fn: (req: Req, caller: Caller, call: ServerWritableStream<Req, Res>) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    void (async () => {
      try {
        const caller = await authenticate(ctx, transport, call);
        authorize(caller, policy, method);
        await fn(call.request, caller, call);
      } catch (err) {
        logFailure(ctx, method, err);
        call.emit('error', toServiceError(err));
      }
    })();
  };
}

/** Page size from the wire: 0 = the datastore's default, else 1..maxPageSize (INVALID_ARGUMENT otherwise). */
export function pageSizeFromWire(ctx: ApiContext, n: number | undefined): number | undefined {
  if (n === undefined || n === 0) return undefined;
  if (!Number.isInteger(n) || n < 0 || n > ctx.limits.maxPageSize) {
    throw badRequest(`page_size must be from 1 to ${ctx.limits.maxPageSize} (0 = default); got ${n}`);
  }
  return n;
}

/** Page tokens are opaque and short; anything else is refused before reaching the datastore. */
export function pageTokenFromWire(t: string | undefined): string | undefined {
  if (t === undefined || t === '') return undefined;
  if (t.length > 4096) throw badRequest('page_token is too long');
  return t;
}

/** Throws RESOURCE_EXHAUSTED when a batch holds more than the limit. */
export function checkBatch(ctx: ApiContext, n: number, what: string): void {
  if (n > ctx.limits.maxBatch) throw tooLarge(`${what} holds ${n} items; the limit per call is ${ctx.limits.maxBatch}`);
}
