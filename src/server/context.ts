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
import type { X509SvidIssuance } from '../datastore/datastore.js';
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
  type CertificationGate,
} from './api-context.js';

function logFailure(ctx: ApiContext, method: string, err: unknown): void {
  if (grpcCodeOf(err) === GrpcStatus.INTERNAL) ctx.logger.error({ method, err }, 'server API call failed');
}

/**
 * Where a handler puts the issuance records of the X509-SVIDs its response carries. The
 * wrapper writes them before the call answers: with the ledger on, each rides in the write
 * of its `x509-svid.issued` audit record (one durable write for both, group-committed);
 * without it, in one `recordX509SvidIssuances`. A handler that fails after adding them
 * hands nothing out, and nothing is written.
 */
export interface IssuanceSink {
  add(records: readonly X509SvidIssuance[]): void;
}

/** Makes the call's issuance records and audit records durable (see `IssuanceSink`). */
async function commitCall(ctx: ApiContext, method: string, req: unknown, res: unknown, caller: Caller, issued: readonly X509SvidIssuance[]): Promise<void> {
  const audit = ctx.audit;
  if (audit === undefined) {
    if (issued.length > 0) await ctx.ds.recordX509SvidIssuances(issued);
    return;
  }
  const bySerial = new Map(issued.map((i) => [i.serialHex, i]));
  const actor = auditActorOf(caller);
  const writes = auditEventsOf(method, req, res, caller).map((e) => {
    const rider = e.kind === 'x509-svid.issued' ? bySerial.get(e.serial) : undefined;
    if (rider === undefined) return audit.record(actor, e);
    bySerial.delete(rider.serialHex);
    return audit.record(actor, e, { x509Issuances: [rider] });
  });
  // An issuance without its audit event (none today) is still recorded before the answer.
  if (bySerial.size > 0) writes.push(ctx.ds.recordX509SvidIssuances([...bySerial.values()]));
  await Promise.all(writes);
}

/** A unary handler with authorisation `policy` on `transport`. */
export function unary<Req, Res>(
  ctx: ApiContext,
  transport: Transport,
  method: string,
  policy: Policy,
  fn: (req: Req, caller: Caller, call: ServerUnaryCall<Req, Res>, issued: IssuanceSink) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    void (async () => {
      try {
        const caller = policy === 'public' ? ({ kind: 'anonymous' } as const) : await authenticate(ctx, transport, call);
        authorize(caller, policy, method);
        const issued: X509SvidIssuance[] = [];
        const res = await fn(call.request, caller, call, { add: (records) => void issued.push(...records) });
        // Nothing is acknowledged (an SVID handed out, a change reported done) before its
        // issuance and audit records are durable; a ledger failure answers UNAVAILABLE (audit/ledger).
        await commitCall(ctx, method, call.request, res, caller, issued);
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
