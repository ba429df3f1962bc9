/**
 * @module server/spire-api/call
 *
 * Runs one of Mayfly's own unary handlers from inside a SPIRE handler and awaits its
 * answer, for SPIRE RPCs that need more than one Mayfly call (a listing SPIRE filters
 * further, a read before a write). Like `viaMayfly` (delegate.ts), the Mayfly handler sees
 * the caller's real call object with only `request` replaced, so authentication,
 * authorisation and audit are Mayfly's and nothing in a SPIRE request changes who calls.
 */
import type { handleUnaryCall, sendUnaryData, ServerUnaryCall, ServiceError, UntypedHandleCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { toServiceError } from '../status.js';

/** A failed Mayfly call: its gRPC status code and the message Mayfly gave. */
export class MayflyCallError extends Error {
  readonly code: number;
  readonly serviceError: ServiceError;
  constructor(err: ServiceError) {
    super(err.details ?? err.message);
    this.code = typeof err.code === 'number' ? err.code : GrpcStatus.UNKNOWN;
    this.serviceError = err;
  }
}

/** A Mayfly unary call, bound to the SPIRE call it runs for. */
export type MayflyCall = <MRes>(method: string, req: unknown) => Promise<MRes>;

/** The unary handler `method` of `impl`; TypeError when there is none (a wiring mistake). */
export function mayflyHandler(impl: UntypedServiceImplementation | undefined, method: string): UntypedHandleCall {
  const h = impl?.[method];
  if (typeof h !== 'function') throw new TypeError(`Mayfly has no unary handler ${method} for the SPIRE API to delegate to`);
  return h;
}

/** Calls `impl[method]` with `req` on behalf of `call`; rejects with MayflyCallError. */
export function callMayfly<MRes>(impl: UntypedServiceImplementation | undefined, method: string, call: ServerUnaryCall<unknown, unknown>, req: unknown): Promise<MRes> {
  const handler = mayflyHandler(impl, method) as handleUnaryCall<unknown, MRes>;
  const proxied = Object.create(call, { request: { value: req, enumerable: true } }) as ServerUnaryCall<unknown, MRes>;
  return new Promise<MRes>((resolve, reject) => {
    handler(proxied, (err, res) => {
      if (err !== null && err !== undefined) reject(new MayflyCallError(err as ServiceError));
      else resolve(res as MRes);
    });
  });
}

/** `callMayfly` on one Mayfly service, for one SPIRE call. */
export function mayflyCaller(impl: UntypedServiceImplementation | undefined, call: ServerUnaryCall<unknown, unknown>): MayflyCall {
  return <MRes>(method: string, req: unknown) => callMayfly<MRes>(impl, method, call, req);
}

/** A grpc-js ServiceError with `code` and `message` (SPIRE's wording is kept by callers). */
export function spireError(code: GrpcStatus, message: string): ServiceError {
  const e = new Error(message) as ServiceError;
  e.code = code;
  e.details = message;
  return e;
}

/** Codes that say who may call, never what was asked: they pass through unchanged. */
export function isAuthFailure(code: number): boolean {
  return code === GrpcStatus.PERMISSION_DENIED || code === GrpcStatus.UNAUTHENTICATED || code === GrpcStatus.UNAVAILABLE;
}

/** A thrown value as the status to answer: a Mayfly call's own, a SPIRE-worded one, or Mayfly's mapping. */
export function asServiceError(err: unknown): ServiceError {
  if (err instanceof MayflyCallError) return err.serviceError;
  if (err instanceof Error && typeof (err as { code?: unknown }).code === 'number') return err as ServiceError;
  return toServiceError(err);
}

/** A SPIRE unary handler from an async function; every failure is answered as a status. */
export function spireUnary<Req, Res>(fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    let p: Promise<Res>;
    try {
      p = fn(call.request, call);
    } catch (err) {
      callback(asServiceError(err));
      return;
    }
    p.then(
      (res) => callback(null, res),
      (err: unknown) => callback(asServiceError(err)),
    );
  };
}
