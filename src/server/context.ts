/**
 * @module server/context
 *
 * What every API handler shares (datastore, CA, clock, attestors, change hub, limits) and
 * the wrappers that give each RPC its authorisation policy and turn every failure into a
 * gRPC status. No handler is registered without a wrapper, so no RPC can forget to
 * authenticate its caller or crash the server on bad input.
 */
import type { handleServerStreamingCall, handleUnaryCall, sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { NodeAttestor } from '../attestors/node/attestor.js';
import type { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { authenticate, authorize, type Caller, type Policy, type Transport } from './auth.js';
import type { AuthorizedEntryCache } from './authorized-cache.js';
import type { CsrMinter } from './csr-pool.js';
import type { ChangeHub } from './hub.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { MAX_JWT_SVID_AUDIENCES } from '../spiffe/jwt/limits.js';
import type { ServedTrustBundle, ServerApiCa, ServerDatastore, ServerLogger } from './ports.js';
import { badRequest, grpcCodeOf, toServiceError, tooLarge } from './status.js';
import { status as GrpcStatus } from '@grpc/grpc-js';

export interface ApiLimits {
  /** Items per batch RPC (entries, SVIDs, bundles). */
  maxBatch: number;
  /** Upper bound for page_size. */
  maxPageSize: number;
  /** Default X509-SVID lifetime (seconds) when an entry says 0. */
  defaultX509SvidTtl: number;
  /** Default JWT-SVID lifetime (seconds) when an entry says 0. */
  defaultJwtSvidTtl: number;
  /** Agent X509-SVID lifetime (seconds). */
  agentSvidTtl: number;
  /** Longest join token lifetime an admin may ask for (seconds). */
  maxJoinTokenTtl: number;
  /** Coalescing delay of the authorised-entry streams (ms). */
  syncCoalesceMs: number;
  /** Audience values per JWT-SVID request (default `MAX_JWT_SVID_AUDIENCES`, the agent's limit too). */
  maxAudiences: number;
  /** Concurrent authorised-entry streams per agent (each recomputes on every change). */
  maxSyncStreamsPerAgent: number;
}

export const DEFAULT_LIMITS: ApiLimits = {
  maxBatch: 500,
  maxPageSize: 1000,
  defaultX509SvidTtl: 3600,
  defaultJwtSvidTtl: 300,
  agentSvidTtl: 3600,
  maxJoinTokenTtl: 7 * 24 * 3600,
  syncCoalesceMs: 50,
  maxAudiences: MAX_JWT_SVID_AUDIENCES,
  maxSyncStreamsPerAgent: 4,
};

export interface ApiContext {
  readonly trustDomain: TrustDomain;
  /** `spiffe://<td>/spire/server`: the server's own identity, parent of node-alias entries. */
  readonly serverId: SpiffeId;
  readonly ds: ServerDatastore;
  readonly ca: ServerApiCa;
  readonly hub: ChangeHub;
  readonly attestors: ReadonlyMap<string, NodeAttestor>;
  readonly logger: ServerLogger;
  readonly limits: ApiLimits;
  now(): Date;
  /** Intermediate certificates seen in chains the CA returned (for verifying bare leaves presented over TLS). */
  intermediates(): readonly Buffer[];
  /** Remembers the intermediates of a chain the CA returned. */
  noteChain(chain: readonly Buffer[]): void;
  /** Where batch signing checks CSRs, mints and verifies (server/csr-pool's workers); inline when absent. */
  readonly csrMinter?: CsrMinter;
  /** Per-agent copies of the authorised-entry set (server/authorized-cache); recomputed per call when absent. */
  readonly authorizedCache?: AuthorizedEntryCache;
  /** The bundle the server serves and trusts callers with (server/trust-bundle); the CA's own bundle when absent. */
  readonly trustBundle?: ServedTrustBundle;
}

/**
 * The trust domain's bundle this server serves (GetBundle, attestation, agent push streams)
 * and authenticates callers against: every server's authorities when servers share a
 * datastore. SVIDs are still minted and checked against the CA's own bundle.
 */
export function servedBundle(ctx: ApiContext): Bundle {
  return ctx.trustBundle?.bundle() ?? ctx.ca.getBundle();
}

/** Tainted authorities as agents are told of them (every server's, when merged). */
export function servedTaints(ctx: ApiContext): { x509: string[]; jwt: string[] } {
  return ctx.trustBundle?.taintedAuthorities() ?? ctx.ca.taintedAuthorities();
}

export function nowSeconds(ctx: ApiContext): number {
  return Math.floor(ctx.now().getTime() / 1000);
}

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
