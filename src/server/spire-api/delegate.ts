/**
 * @module server/spire-api/delegate
 *
 * One implementation behind two APIs: a SPIRE RPC translates its request into Mayfly's
 * message, runs Mayfly's own handler for it (same authentication, authorisation,
 * validation, audit and issuance records), and translates the answer back. The handler
 * sees the caller's real call (peer certificate, metadata, cancellation) with only the
 * request replaced, so nothing a SPIRE client sends can change who the server thinks is
 * calling.
 */
import type { handleUnaryCall, sendUnaryData, ServerUnaryCall, UntypedHandleCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { toServiceError } from '../status.js';

/**
 * A SPIRE unary handler over Mayfly's `inner`: `toMayfly` maps the request (throwing a
 * MayflyError for bad input, answered with its gRPC status), `fromMayfly` maps the
 * response (given the SPIRE request, for output masks).
 */
export function viaMayfly<SReq, MReq, MRes, SRes>(
  inner: UntypedHandleCall | undefined,
  toMayfly: (req: SReq) => MReq,
  fromMayfly: (res: MRes, req: SReq) => SRes,
): handleUnaryCall<SReq, SRes> {
  if (typeof inner !== 'function') throw new TypeError('viaMayfly needs a unary Mayfly handler');
  const handler = inner as handleUnaryCall<MReq, MRes>;
  return (call: ServerUnaryCall<SReq, SRes>, callback: sendUnaryData<SRes>) => {
    let mreq: MReq;
    try {
      mreq = toMayfly(call.request);
    } catch (err) {
      callback(toServiceError(err));
      return;
    }
    // The real call object underneath, with only `request` shadowed.
    const proxied = Object.create(call, { request: { value: mreq, enumerable: true } }) as ServerUnaryCall<MReq, MRes>;
    handler(proxied, (err, res) => {
      if (err !== null && err !== undefined) {
        callback(err);
        return;
      }
      try {
        callback(null, fromMayfly(res as MRes, call.request));
      } catch (e) {
        callback(toServiceError(e));
      }
    });
  };
}

/** Mayfly's own service implementations on the same endpoint, which SPIRE's delegate to. */
export type MayflyImpls = Readonly<Record<string, UntypedServiceImplementation | undefined>>;
