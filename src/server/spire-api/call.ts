/**
 * @module server/spire-api/call
 *
 * Mayfly's own handlers of one service, callable by method name from inside a SPIRE
 * handler, for SPIRE RPCs that need more than one Mayfly call (a listing SPIRE filters
 * further, a read before a write). Each runs through `callMayfly` (spire-call.ts): the
 * Mayfly handler sees the caller's real call with only `request` replaced, so its
 * authorisation, validation and audit are Mayfly's, and a refusal comes back as a
 * `SpireStatus` with Mayfly's code and message.
 */
import type { ServerUnaryCall, UntypedHandleCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { callMayfly } from './spire-call.js';

/** A Mayfly unary call, bound to the SPIRE call it runs for. */
export type MayflyCall = <MRes>(method: string, req: unknown) => Promise<MRes>;

/** The unary handler `method` of `impl`; TypeError when there is none (a wiring mistake). */
export function mayflyHandler(impl: UntypedServiceImplementation | undefined, method: string): UntypedHandleCall {
  const h = impl?.[method];
  if (typeof h !== 'function') throw new TypeError(`Mayfly has no unary handler ${method} for the SPIRE API to delegate to`);
  return h;
}

/** Mayfly's service `impl`, called on behalf of `call`. */
export function mayflyCaller(impl: UntypedServiceImplementation | undefined, call: ServerUnaryCall<unknown, unknown>): MayflyCall {
  return <MRes>(method: string, req: unknown) => callMayfly<MRes>(mayflyHandler(impl, method), call, req);
}
