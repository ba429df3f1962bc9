/**
 * @module server/status
 *
 * The one place where Mayfly error codes become gRPC status codes. Every handler's
 * failure passes through `toServiceError`, so an unexpected exception becomes INTERNAL
 * with a generic message (the detail goes to the log, never to the caller) instead of
 * crashing the process or leaking internals.
 */
import { status as GrpcStatus, type ServiceError, Metadata } from '@grpc/grpc-js';
import { isMayflyError, MayflyError, type ErrorCode } from '../spiffe/errors.js';
import { AGENT_STANDING_TRAILER, type AgentStanding } from '../wire/server/agent-standing.js';

const BY_CODE: Partial<Record<ErrorCode, GrpcStatus>> = {
  ERR_DATASTORE_NOT_FOUND: GrpcStatus.NOT_FOUND,
  ERR_CA_AUTHORITY_NOT_FOUND: GrpcStatus.NOT_FOUND,
  ERR_DATASTORE_ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  ERR_DATASTORE_CONFLICT: GrpcStatus.FAILED_PRECONDITION,
  ERR_CA_AUTHORITY_STATE: GrpcStatus.FAILED_PRECONDITION,
  // RefreshBundle: the peer's endpoint failed or served something refused (the server is fine).
  ERR_FEDERATION_FETCH_FAILED: GrpcStatus.FAILED_PRECONDITION,
  ERR_SVID_ALREADY_EXPIRED: GrpcStatus.FAILED_PRECONDITION,
  ERR_CERTIFICATION_REFUSED: GrpcStatus.FAILED_PRECONDITION,
  ERR_DATASTORE_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  ERR_CA_NOT_READY: GrpcStatus.UNAVAILABLE,
  ERR_AUDIT_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  // A minted SVID that fails our own verification is the server's fault, never the caller's.
  ERR_CA_MINT_CHECK: GrpcStatus.INTERNAL,
  ERR_PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  ERR_AGENT_BANNED: GrpcStatus.PERMISSION_DENIED,
  ERR_UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  ERR_AGENT_UNKNOWN: GrpcStatus.UNAUTHENTICATED,
  ERR_ATTESTATION_FAILED: GrpcStatus.PERMISSION_DENIED,
  ERR_JOIN_TOKEN_INVALID: GrpcStatus.PERMISSION_DENIED,
  ERR_REQUEST_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
};

/** The gRPC status for an error thrown by a handler. */
export function grpcCodeOf(err: unknown): GrpcStatus {
  if (!isMayflyError(err)) return GrpcStatus.INTERNAL;
  const mapped = BY_CODE[err.code];
  if (mapped !== undefined) return mapped;
  // Everything else a MayflyError reports is bad data from the caller: a malformed SPIFFE
  // ID, selector, entry, CSR, key, bundle or token.
  return GrpcStatus.INVALID_ARGUMENT;
}

/** Message safe to return to a caller. */
export function publicMessageOf(err: unknown): string {
  if (err instanceof MayflyError) return err.message.length > 1024 ? `${err.message.slice(0, 1021)}...` : err.message;
  return 'internal error; see the server log';
}

/** The agent standing trailer (wire/server/agent-standing) for refusals about the agent's record. */
const STANDING_OF: Partial<Record<ErrorCode, AgentStanding>> = { ERR_AGENT_BANNED: 'banned', ERR_AGENT_UNKNOWN: 'evicted' };

/** The Mayfly code behind each ServiceError made here (never on the wire): SPIRE's API translates some codes (server/spire-api). */
const ORIGIN = new WeakMap<object, ErrorCode>();
/** Refusals of an agent SVID that a renewal or re-attestation replaced (see `agentSvidSuperseded`). */
const SUPERSEDED = new WeakSet<object>();
/** Refusals of an entry that is not authorised to the calling agent (see `entryNotAuthorized`). */
const NOT_AUTHORIZED = new WeakSet<object>();

/** The MayflyError code `toServiceError` turned into `err`, if it made it from one. */
export function mayflyCodeOfServiceError(err: unknown): ErrorCode | undefined {
  return typeof err === 'object' && err !== null ? ORIGIN.get(err) : undefined;
}

/** Whether `err` (a MayflyError, or the ServiceError `toServiceError` made of one) refuses a superseded agent SVID. */
export function isAgentSvidSuperseded(err: unknown): boolean {
  return typeof err === 'object' && err !== null && SUPERSEDED.has(err);
}

/** A grpc-js ServiceError for `err`. */
export function toServiceError(err: unknown): ServiceError {
  const code = grpcCodeOf(err);
  const e = new Error(publicMessageOf(err)) as ServiceError;
  if (isMayflyError(err)) ORIGIN.set(e, err.code);
  if (isAgentSvidSuperseded(err)) SUPERSEDED.add(e);
  if (isEntryNotAuthorized(err)) NOT_AUTHORIZED.add(e);
  e.code = code;
  e.details = e.message;
  e.metadata = new Metadata();
  const standing = isMayflyError(err) ? STANDING_OF[err.code] : undefined;
  if (standing !== undefined) e.metadata.set(AGENT_STANDING_TRAILER, standing);
  return e;
}

/** A per-item batch status `{ code, message }`; code 0 = OK. */
export interface ItemStatus {
  code: number;
  message: string;
}

export const OK_STATUS: ItemStatus = { code: GrpcStatus.OK, message: 'OK' };

export function itemStatusOf(err: unknown): ItemStatus {
  return { code: grpcCodeOf(err), message: publicMessageOf(err) };
}

/** Shorthand for throwing request errors. */
export function badRequest(message: string): MayflyError {
  return new MayflyError('ERR_REQUEST_INVALID', message);
}

export function tooLarge(message: string): MayflyError {
  return new MayflyError('ERR_REQUEST_TOO_LARGE', message);
}

export function notFound(message: string): MayflyError {
  return new MayflyError('ERR_DATASTORE_NOT_FOUND', message);
}

export function denied(message: string): MayflyError {
  return new MayflyError('ERR_PERMISSION_DENIED', message);
}

export function unauthenticated(message: string): MayflyError {
  return new MayflyError('ERR_UNAUTHENTICATED', message);
}

/** The agent is banned: PERMISSION_DENIED with the `banned` standing trailer. */
export function agentBanned(agentId: string): MayflyError {
  return new MayflyError('ERR_AGENT_BANNED', `agent ${agentId} is banned`);
}

/** The agent presented an X509-SVID its record no longer names (renewed or re-attested since): PERMISSION_DENIED. */
export function agentSvidSuperseded(agentId: string): MayflyError {
  const e = new MayflyError('ERR_PERMISSION_DENIED', `agent ${agentId} presented an X509-SVID that is no longer its current one; use the latest SVID or attest again`);
  SUPERSEDED.add(e);
  return e;
}

/** An SVID asked for an entry that is not authorised to the calling agent: PERMISSION_DENIED (SPIRE's API says NOT_FOUND). */
export function entryNotAuthorized(message: string): MayflyError {
  const e = denied(message);
  NOT_AUTHORIZED.add(e);
  return e;
}

/** Whether `err` (a MayflyError, or the ServiceError `toServiceError` made of one) is `entryNotAuthorized`'s. */
export function isEntryNotAuthorized(err: unknown): boolean {
  return typeof err === 'object' && err !== null && NOT_AUTHORIZED.has(err);
}

/** The agent has no record (evicted, or never attested): UNAUTHENTICATED with the `evicted` standing trailer. */
export function agentEvicted(agentId: string): MayflyError {
  return new MayflyError('ERR_AGENT_UNKNOWN', `agent ${agentId} is not attested (evicted or never attested); attest again`);
}

export { isMayflyError };
