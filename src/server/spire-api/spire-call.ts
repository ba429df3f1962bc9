/**
 * @module server/spire-api/spire-call
 *
 * What the SPIRE handlers of the Bundle (admin), SVID mint, LocalAuthority and TrustDomain
 * groups share:
 * - `SpireStatus`: a refusal with SPIRE's own status code and message, for the cases where
 *   SPIRE's code is not the one Mayfly's error code maps to (e.g. INTERNAL "only Prepared
 *   authorities can be activated"); the caller gets exactly that code and message.
 * - `spireUnary`: Mayfly's `unary` wrapper (authentication, authorisation, failure mapping)
 *   around a SPIRE handler, letting `SpireStatus` through unchanged. The wrapper runs
 *   before anything of the handler, so no SPIRE RPC reads or changes state for a caller
 *   the policy refuses.
 * - `callMayfly`: runs one of Mayfly's own handlers on the same call with another request,
 *   so writes keep Mayfly's validation, change notices and audit records (the outer SPIRE
 *   method name is not audited; the inner Mayfly call is, once).
 */
import { Metadata, status as GrpcStatus, type handleUnaryCall, type sendUnaryData, type ServerUnaryCall, type ServiceError, type UntypedHandleCall } from '@grpc/grpc-js';
import type { Caller, Policy, Transport } from '../auth.js';
import { unary, type ApiContext, type IssuanceSink } from '../context.js';
import { grpcCodeOf, publicMessageOf } from '../status.js';

/** A refusal answered with SPIRE's code and message as given. */
export class SpireStatus extends Error {
  readonly code: GrpcStatus;
  constructor(code: GrpcStatus, message: string) {
    super(message);
    this.code = code;
    this.name = 'SpireStatus';
  }
}

/** SPIRE's `api.MakeErr` message: `msg: cause` when there is a cause. */
export function spireMessage(msg: string, cause?: unknown): string {
  if (cause === undefined || cause === null) return msg;
  const text = cause instanceof Error ? (cause instanceof SpireStatus ? cause.message : publicMessageOf(cause)) : String(cause);
  return `${msg}: ${text}`;
}

export function spireError(code: GrpcStatus, msg: string, cause?: unknown): SpireStatus {
  return new SpireStatus(code, spireMessage(msg, cause));
}

/** A per-item status as SPIRE's `api.MakeStatus` builds it (OK's message is "OK"). */
export function spireItemStatus(err: unknown): { code: number; message: string } {
  if (err instanceof SpireStatus) return { code: err.code, message: err.message };
  return { code: grpcCodeOf(err), message: publicMessageOf(err) };
}

function serviceError(e: SpireStatus): ServiceError {
  const out = new Error(e.message) as ServiceError;
  out.code = e.code;
  out.details = e.message;
  out.metadata = new Metadata();
  return out;
}

/**
 * A SPIRE unary handler behind Mayfly's authorisation `policy`. `method` names it in logs;
 * give SPIRE write RPCs a name Mayfly's audit does not summarise (e.g. `spire.Bundle/…`)
 * when the Mayfly handlers they call record the audit events.
 */
export function spireUnary<Req, Res>(
  ctx: ApiContext,
  t: Transport,
  method: string,
  policy: Policy,
  fn: (req: Req, caller: Caller, call: ServerUnaryCall<Req, Res>, issued: IssuanceSink) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    let refusal: SpireStatus | undefined;
    // A SPIRE refusal is an answer, not a failure of the wrapper: it is not logged as a
    // server fault (only SPIRE's INTERNAL ones are), and nothing is recorded for it.
    const inner = unary<Req, Res>(ctx, t, method, policy, async (req, caller, c, issued) => {
      try {
        return await fn(req, caller, c, issued);
      } catch (err) {
        if (!(err instanceof SpireStatus)) throw err;
        refusal = err;
        if (err.code === GrpcStatus.INTERNAL) ctx.logger.error({ method, err: err.message }, 'server API call failed');
        return undefined as Res;
      }
    });
    inner(call, (err, res) => {
      if (err !== null && err !== undefined) callback(err);
      else if (refusal !== undefined) callback(serviceError(refusal));
      else callback(null, res);
    });
  };
}

/** Runs Mayfly's unary `inner` on `call` with `request` instead of the call's own. */
export function callMayfly<MRes>(inner: UntypedHandleCall | undefined, call: ServerUnaryCall<unknown, unknown>, request: unknown): Promise<MRes> {
  if (typeof inner !== 'function') throw new TypeError('callMayfly needs a unary Mayfly handler');
  const handler = inner as handleUnaryCall<unknown, MRes>;
  const proxied = Object.create(call, { request: { value: request, enumerable: true } }) as ServerUnaryCall<unknown, MRes>;
  return new Promise<MRes>((resolve, reject) => {
    handler(proxied, (err, res) => {
      if (err !== null && err !== undefined) reject(new SpireStatus(err.code ?? GrpcStatus.INTERNAL, err.details ?? ('message' in err ? err.message : 'internal error')));
      else resolve(res as MRes);
    });
  });
}
