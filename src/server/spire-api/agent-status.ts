/**
 * @module server/spire-api/agent-status
 *
 * Mayfly's refusals of an agent, as SPIRE's agent understands them. SPIRE's agent acts on
 * a PERMISSION_DENIED only through the `spire.api.types.PermissionDeniedDetails` it
 * carries in `grpc-status-details-bin` (a `google.rpc.Status` whose details hold that
 * message): AGENT_BANNED makes it shut down, AGENT_NOT_ATTESTED / AGENT_EXPIRED /
 * AGENT_NOT_ACTIVE / AGENT_MUST_REATTEST make it attest again. Mayfly says the same with
 * its `mayfly-agent-standing` trailer (kept here too) and an evicted agent is
 * UNAUTHENTICATED on Mayfly's API; SPIRE answers PERMISSION_DENIED with AGENT_NOT_ATTESTED
 * (pkg/server/endpoints/middleware.go), which is what SPIRE's API says here. An agent SVID a
 * renewal replaced is AGENT_NOT_ACTIVE, as in SPIRE.
 *
 * A reused, unknown or expired join token is INVALID_ARGUMENT on SPIRE's API (Mayfly's own
 * says PERMISSION_DENIED), and an SVID for an entry not authorised to the caller NOT_FOUND
 * "entry not found or not authorized" (Mayfly's own: PERMISSION_DENIED).
 */
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { ErrorCode } from '../../spiffe/errors.js';
import { isAgentSvidSuperseded, isEntryNotAuthorized, mayflyCodeOfServiceError } from '../status.js';

/** `spire.api.types.PermissionDeniedDetails.Reason`. */
export const PERMISSION_DENIED_REASON = {
  AGENT_EXPIRED: 1,
  AGENT_NOT_ATTESTED: 2,
  AGENT_NOT_ACTIVE: 3,
  AGENT_BANNED: 4,
  AGENT_MUST_REATTEST: 5,
} as const;

const DETAILS_TYPE_URL = 'type.googleapis.com/spire.api.types.PermissionDeniedDetails';

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

function field(tag: number, body: Buffer): Buffer {
  return Buffer.concat([varint(tag), varint(body.length), body]);
}

/** `google.rpc.Status { code, message, details: [Any(PermissionDeniedDetails{reason})] }`, encoded. */
export function permissionDeniedStatusDetails(message: string, reason: number): Buffer {
  const details = Buffer.concat([varint(0x08), varint(reason)]);
  const any = Buffer.concat([field(0x0a, Buffer.from(DETAILS_TYPE_URL)), field(0x12, details)]);
  return Buffer.concat([varint(0x08), varint(GrpcStatus.PERMISSION_DENIED), field(0x12, Buffer.from(message, 'utf8')), field(0x1a, any)]);
}

const REASON_OF: Partial<Record<ErrorCode, number>> = {
  ERR_AGENT_BANNED: PERMISSION_DENIED_REASON.AGENT_BANNED,
  ERR_AGENT_UNKNOWN: PERMISSION_DENIED_REASON.AGENT_NOT_ATTESTED,
};

/** The error as SPIRE's API reports it (a new ServiceError; `err` is not changed). */
export function toSpireError(err: ServiceError): ServiceError {
  const code = mayflyCodeOfServiceError(err);
  if (code === 'ERR_JOIN_TOKEN_INVALID') return withCode(err, GrpcStatus.INVALID_ARGUMENT);
  // SPIRE's svid/v1 NewJWTSVID: NOT_FOUND "entry not found or not authorized" (whether it exists or not).
  if (isEntryNotAuthorized(err)) return withCode(err, GrpcStatus.NOT_FOUND, 'entry not found or not authorized');
  const reason = isAgentSvidSuperseded(err) ? PERMISSION_DENIED_REASON.AGENT_NOT_ACTIVE : code === undefined ? undefined : REASON_OF[code];
  if (reason === undefined) return err;
  const out = withCode(err, GrpcStatus.PERMISSION_DENIED);
  out.metadata.set('grpc-status-details-bin', permissionDeniedStatusDetails(out.details, reason));
  return out;
}

function withCode(err: ServiceError, code: GrpcStatus, message?: string): ServiceError {
  const out = new Error(message ?? err.message) as ServiceError;
  out.code = code;
  out.details = message ?? err.details ?? err.message;
  out.metadata = err.metadata instanceof Metadata ? err.metadata.clone() : new Metadata();
  return out;
}
