/**
 * @module workloadapi/rpc-status
 *
 * How a Workload API call fails: `RpcError` carries the gRPC status a check ends the call
 * with, and the security-header check every RPC runs first (a relay such as a browser or an
 * SSRF-able proxy cannot set the header).
 */
import * as grpc from '@grpc/grpc-js';
import { SECURITY_HEADER } from '../wire/workload/proto.js';

/** pino-compatible logging, the two levels the endpoint uses. */
export interface EndpointLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** The parts of any server call (unary or stream) the checks read. */
export type SurfaceCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'getPeer'>;

/** A gRPC status to end a call with. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
  toStatus(): Partial<grpc.StatusObject> {
    return { code: this.code, details: this.message };
  }
}

/** The status a thrown error ends a call with: its own for an RpcError, INTERNAL otherwise. */
export function asStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof RpcError) return err.toStatus();
  return { code: grpc.status.INTERNAL, details: 'internal error' };
}

/** Rejects a call whose metadata lacks exactly one `workload.spiffe.io: true`. */
export function checkSecurityHeader(call: SurfaceCall): void {
  const values = call.metadata.get(SECURITY_HEADER);
  if (values.length !== 1 || values[0] !== 'true') {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, 'security header missing from request');
  }
}

