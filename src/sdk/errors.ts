/**
 * @module sdk/errors
 *
 * Errors of the Workload API client. A failed call keeps the gRPC status code so callers
 * (and the sources' retry policy) can branch on it; the message says what to do.
 */
import { status } from '@grpc/grpc-js';
import { MayflyError } from '../spiffe/errors.js';

/** The codes the SDK raises (stable: never rename one). */
export type SdkErrorCode =
  | 'ERR_WORKLOAD_API_ENDPOINT'
  | 'ERR_WORKLOAD_API_CALL'
  | 'ERR_WORKLOAD_API_RESPONSE'
  | 'ERR_PEER_UNAUTHORIZED'
  | 'ERR_DELEGATED_TOKEN_INVALID'
  /** The token endpoint answered the exchange with an OAuth error (RFC 6749 §5.2): `oauthError` says which. */
  | 'ERR_TOKEN_EXCHANGE_REFUSED'
  /** The exchange got no usable answer: connection, TLS (server not authorised), timeout, or a response that does not hold up. */
  | 'ERR_TOKEN_EXCHANGE_FAILED';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<SdkErrorCode, 'sdk'> {}
}

/** A bad `SPIFFE_ENDPOINT_SOCKET` / address option. */
export class EndpointError extends MayflyError<SdkErrorCode> {
  constructor(message: string) {
    super('ERR_WORKLOAD_API_ENDPOINT', message);
  }
}

/** A Workload API call that failed (gRPC status) or returned data that does not hold up. */
export class WorkloadApiError extends MayflyError<SdkErrorCode> {
  /** The gRPC status code for ERR_WORKLOAD_API_CALL; undefined for a malformed response. */
  readonly grpcCode?: status;

  constructor(code: Extract<SdkErrorCode, 'ERR_WORKLOAD_API_CALL' | 'ERR_WORKLOAD_API_RESPONSE'>, message: string, options?: { cause?: unknown; grpcCode?: status }) {
    super(code, message, options);
    if (options?.grpcCode !== undefined) this.grpcCode = options.grpcCode;
  }
}

/** Who a refused TLS peer was, as far as the connection tells. */
export interface RefusedPeer {
  /** The SPIFFE ID its certificate names (unverified when the refusal is about the certificate), if it names one. */
  readonly spiffeId?: string;
  /** `host:port` it connected from. */
  readonly address?: string;
}

/**
 * A TLS peer whose SVID failed SPIFFE verification, whose SPIFFE ID the authorizer refused,
 * or (on a guarded server) whose handshake failed. `peer` is set by the server helpers.
 */
export class PeerAuthorizationError extends MayflyError<SdkErrorCode> {
  readonly peer?: RefusedPeer;

  constructor(message: string, options?: { cause?: unknown; peer?: RefusedPeer }) {
    super('ERR_PEER_UNAUTHORIZED', message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.peer !== undefined) this.peer = options.peer;
  }
}

interface GrpcLikeError {
  code?: unknown;
  details?: unknown;
  message?: unknown;
}

/** Operator-facing advice for a gRPC status from the Workload API. */
function advice(code: status, details: string, method: string): string {
  switch (code) {
    case status.PERMISSION_DENIED:
      return `no identity issued for this workload: check its registration entry selectors (${method}: ${details})`;
    case status.UNAVAILABLE:
      return `the Workload API is unavailable: is the agent running and is the socket path right? (${method}: ${details})`;
    case status.INVALID_ARGUMENT:
      return `the agent rejected the request as invalid (${method}: ${details})`;
    case status.DEADLINE_EXCEEDED:
      return `the Workload API did not answer in time (${method}: ${details})`;
    case status.UNIMPLEMENTED:
      return `the agent does not implement ${method}`;
    default:
      return `${method} failed with ${status[code] ?? code}: ${details}`;
  }
}

/** Wraps a grpc-js error (a `ServiceError`) as a WorkloadApiError; passes MayflyErrors through. */
export function toWorkloadApiError(err: unknown, method: string): MayflyError {
  if (err instanceof MayflyError) return err;
  const e = (err ?? {}) as GrpcLikeError;
  if (typeof e.code === 'number') {
    const code = e.code as status;
    const details = typeof e.details === 'string' && e.details !== '' ? e.details : String(e.message ?? '');
    return new WorkloadApiError('ERR_WORKLOAD_API_CALL', advice(code, details, method), { cause: err, grpcCode: code });
  }
  return new WorkloadApiError('ERR_WORKLOAD_API_CALL', `${method} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/**
 * A token exchange (sdk/exchange-for-user) that did not yield a delegated token. With
 * ERR_TOKEN_EXCHANGE_REFUSED, `oauthError` is the endpoint's RFC 6749/8693 error
 * (`invalid_grant`, `unauthorized_client`, `invalid_target`, `invalid_scope`,
 * `invalid_request`, ...) and `description` its `error_description`.
 */
export class TokenExchangeError extends MayflyError<SdkErrorCode> {
  readonly oauthError?: string;
  readonly description?: string;
  /** The HTTP status, when the endpoint answered. */
  readonly status?: number;

  constructor(
    code: Extract<SdkErrorCode, 'ERR_TOKEN_EXCHANGE_REFUSED' | 'ERR_TOKEN_EXCHANGE_FAILED'>,
    message: string,
    options?: { cause?: unknown; oauthError?: string; description?: string; status?: number },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.oauthError !== undefined) this.oauthError = options.oauthError;
    if (options?.description !== undefined) this.description = options.description;
    if (options?.status !== undefined) this.status = options.status;
  }
}
