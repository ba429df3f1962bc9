/**
 * @module workloadapi/handlers
 *
 * The five Workload API RPCs. Each call is checked in this order, as SPIRE does: the
 * security header (INVALID_ARGUMENT), the request's own arguments (INVALID_ARGUMENT),
 * the caller check, attestation of the connection's caller (UNAVAILABLE), the caller
 * check again, then entitlement (PERMISSION_DENIED). The caller check (`verify`, see
 * `src/agent/peercred`) fails with UNAVAILABLE when the process that connected exited or
 * its pid was reused, and with PERMISSION_DENIED when it changed uid/gid or executable
 * since it connected. A stream runs the check again before every update it sends. The
 * checks are in `caller-check.ts`, the failing statuses in `rpc-status.ts`.
 *
 * Threats: a web page or SSRF-able proxy relaying requests to the socket (stopped by the
 * header, which such relays cannot set); one process obtaining another's identity because
 * its pid was reused during attestation (stopped by the start-time check); a process
 * that connects, forks, and execs a setuid binary or another program of its uid so that
 * the child holding the socket is attested as that program (stopped by the uid/gid and
 * executable checks, before, during — in the unix attestor — and after attestation, and
 * on every stream update); a caller choosing whose identity it gets (it never can: the
 * identity depends only on the kernel-reported credentials of its own connection).
 */
import * as grpc from '@grpc/grpc-js';
import { SpiffeId } from '../spiffe/id.js';
import { audienceLimitProblem } from '../spiffe/jwt/limits.js';
import type {
  JWTBundlesResponse,
  JWTSVIDRequest,
  JWTSVIDResponse,
  ValidateJWTSVIDRequest,
  ValidateJWTSVIDResponse,
  X509BundlesResponse,
  X509SVIDResponse,
} from '../wire/workload/messages.js';
import type {
  PeerCredentials,
  PeerCredentialSource,
  ValidateJwtSvid,
  WorkloadIdentities,
  WorkloadUpdate,
} from './identities.js';
import type { LogLimiter } from './log-limiter.js';
import { attest, checkCaller } from './caller-check.js';
import { deliveryCaller, jwtDelivered, notifyDelivered, x509Delivered, type DeliveryCaller, type OnDelivered } from './delivery.js';
import { asStatus, checkSecurityHeader, RpcError, type EndpointLogger, type SurfaceCall } from './rpc-status.js';
import type { StreamRate } from './stream-rate.js';
import { workloadServiceDefinition } from '../wire/workload/proto.js';
import { toStruct } from '../wire/workload/struct.js';

export type { EndpointLogger } from './rpc-status.js';

/** What the handlers need from the endpoint. */
export interface HandlerContext {
  identities: WorkloadIdentities;
  validateJwtSvid: ValidateJwtSvid;
  peerCredentials: PeerCredentialSource;
  /** The credentials recorded at accept for the connection a call arrived on. */
  credentialsOf(call: SurfaceCall): PeerCredentials | undefined;
  logger: EndpointLogger;
  /** For lines a caller can cause at will (failed attestation, PID reuse): rate-limited, no stacks. */
  logLimiter: LogLimiter;
  /**
   * Open streams register here so a shutting-down agent can end them with UNAVAILABLE.
   * A forced gRPC shutdown would end them with CANCELLED, which go-spiffe treats as final
   * and stops watching; UNAVAILABLE makes every SPIFFE client reconnect to the restarted agent.
   */
  openStreams?: Set<(status: Partial<grpc.StatusObject>) => void>;
  /** Told which caller received which SVID (delivery.ts); never blocks or fails a call. */
  onDelivered?: OnDelivered;
  /** Per-uid budget of stream opens (stream-rate.ts); unlimited when absent. */
  streamRate?: Pick<StreamRate, 'take'>;
}

/** PERMISSION_DENIED; `refusals` (an entry template refusing a selector value) are named, bounded. */
function noIdentity(refusals: readonly string[] = []): RpcError {
  if (refusals.length === 0) return new RpcError(grpc.status.PERMISSION_DENIED, 'no identity issued');
  const why = refusals.slice(0, 4).join('; ');
  return new RpcError(grpc.status.PERMISSION_DENIED, `no identity issued: ${why.length > 2000 ? `${why.slice(0, 1997)}...` : why}`);
}

function concat(buffers: readonly Buffer[]): Buffer {
  return buffers.length === 1 ? (buffers[0] as Buffer) : Buffer.concat(buffers);
}

export function x509SvidResponse(u: WorkloadUpdate): X509SVIDResponse {
  const federated: Record<string, Buffer> = {};
  for (const [td, b] of u.federatedBundles) federated[td] = b.x509Authorities;
  return {
    svids: u.identities.map((id) => ({
      spiffe_id: id.spiffeId,
      x509_svid: concat(id.certificates),
      x509_svid_key: id.privateKeyPkcs8,
      bundle: u.bundle.x509Authorities,
      hint: id.hint ?? '',
    })),
    crl: [...(u.crl ?? [])],
    federated_bundles: federated,
  };
}

export function x509BundlesResponse(u: WorkloadUpdate): X509BundlesResponse {
  const bundles: Record<string, Buffer> = { [u.bundle.trustDomain]: u.bundle.x509Authorities };
  for (const [td, b] of u.federatedBundles) bundles[td] = b.x509Authorities;
  return { crl: [...(u.crl ?? [])], bundles };
}

export function jwtBundlesResponse(u: WorkloadUpdate): JWTBundlesResponse {
  const bundles: Record<string, Buffer> = { [u.bundle.trustDomain]: u.bundle.jwks };
  for (const [td, b] of u.federatedBundles) bundles[td] = b.jwks;
  return { bundles };
}

/**
 * Encodings shared between streams. Every stream whose caller has the same selectors gets
 * the same `WorkloadUpdate` object from the cache, so its message is built and serialised
 * once per method, not once per stream; `encoded` lets the service's serialiser (see
 * `workloadServiceDefinitionForServing`) reuse those bytes instead of encoding again on
 * write. Messages are never mutated after they are built, so sharing them is safe.
 */
const built = new WeakMap<WorkloadUpdate, Map<string, { msg: unknown; bytes: Buffer }>>();
const encoded = new WeakMap<object, Buffer>();

/**
 * The Workload API service definition to register with the handlers: the same as
 * `workloadServiceDefinition()`, with response serialisers that reuse the bytes a stream
 * already encoded for a message.
 */
export function workloadServiceDefinitionForServing(): grpc.ServiceDefinition {
  const def = workloadServiceDefinition();
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    const serialize = m.responseSerialize as (v: unknown) => Buffer;
    out[name] = {
      ...m,
      responseSerialize: (v: unknown) => (typeof v === 'object' && v !== null ? encoded.get(v) : undefined) ?? serialize(v),
    };
  }
  return out as grpc.ServiceDefinition;
}

/**
 * Runs a server stream: subscribes to the caller's state, sends the first message at
 * once and the full state again on every change, skips a message byte-identical to the
 * previous one, and ends with PERMISSION_DENIED when the caller has (or comes to have) no
 * identity. A slow reader holds at most one pending message: newer state replaces it,
 * since every message is the full state.
 */
function serveStream<T>(
  ctx: HandlerContext,
  call: grpc.ServerWritableStream<unknown, T>,
  method: string,
  build: (u: WorkloadUpdate) => T,
): void {
  const serialize = workloadServiceDefinition()[method]?.responseSerialize as ((m: T) => Buffer) | undefined;
  if (serialize === undefined) throw new Error(`no serializer for ${method}`);
  let done = false;
  let caller: PeerCredentials | undefined;
  let unsubscribe: (() => void) | undefined;
  let last: Buffer | undefined;
  let blocked = false;
  let pending: T | undefined;

  const finish = (status?: Partial<grpc.StatusObject>): void => {
    if (done) return;
    done = true;
    ctx.openStreams?.delete(endForShutdown);
    unsubscribe?.();
    unsubscribe = undefined;
    pending = undefined;
    if (status !== undefined && !call.destroyed) call.emit('error', status);
  };
  const send = (msg: T): void => {
    if (blocked) {
      pending = msg;
      return;
    }
    blocked = !call.write(msg);
  };
  const onUpdate = (u: WorkloadUpdate): void => {
    if (done) return;
    if (u.identities.length === 0) {
      finish(noIdentity(u.refusals).toStatus());
      return;
    }
    // Re-checked before every update, not re-attested: while the process that connected
    // is unchanged (pid, start time, uid/gid, executable) its selectors are too; once it
    // exited or exec'd, whoever holds the socket now gets nothing more.
    if (caller !== undefined) {
      try {
        checkCaller(ctx, caller, method, 'before a stream update');
      } catch (err) {
        finish(asStatus(err));
        return;
      }
    }
    let msg: T;
    let bytes: Buffer;
    let perMethod = built.get(u);
    const hit = perMethod?.get(method);
    if (hit !== undefined) {
      msg = hit.msg as T;
      bytes = hit.bytes;
    } else {
      try {
        msg = build(u);
        bytes = serialize(msg);
      } catch (err) {
        ctx.logger.warn({ method, err }, 'cannot encode workload update');
        finish({ code: grpc.status.INTERNAL, details: 'internal error' });
        return;
      }
      if (perMethod === undefined) built.set(u, (perMethod = new Map()));
      perMethod.set(method, { msg, bytes });
      encoded.set(msg as object, bytes);
    }
    if (last !== undefined && last.equals(bytes)) return;
    last = bytes;
    send(msg);
    if (method === 'FetchX509SVID' && ctx.onDelivered !== undefined && delivery !== undefined) noteX509(delivery, u);
  };
  // Each (caller, serial) once per stream: updates that repeat an SVID are not new deliveries.
  const reported = new Set<string>();
  let delivery: DeliveryCaller | undefined;
  const noteX509 = (who: DeliveryCaller, u: WorkloadUpdate): void => {
    for (const id of u.identities) {
      const what = x509Delivered(id);
      if (what === undefined || what.kind !== 'x509' || reported.has(what.serial)) continue;
      reported.add(what.serial);
      notifyDelivered(ctx.onDelivered, (err) => ctx.logger.warn({ method, err }, 'recording an SVID delivery failed'), who, what);
    }
  };

  call.on('drain', () => {
    blocked = false;
    if (pending !== undefined && !done) {
      const msg = pending;
      pending = undefined;
      send(msg);
    }
  });
  const endForShutdown = (status: Partial<grpc.StatusObject>): void => finish(status);
  ctx.openStreams?.add(endForShutdown);
  call.once('cancelled', () => finish());
  call.once('close', () => finish());

  void (async () => {
    checkSecurityHeader(call);
    // Over its uid's budget: refused before attestation and before a message is built or written.
    const cred = ctx.credentialsOf(call);
    if (cred !== undefined && ctx.streamRate !== undefined && !ctx.streamRate.take(cred.uid)) {
      ctx.logLimiter.warn('stream-rate', { method, caller_pid: cred.pid, uid: cred.uid }, 'refusing Workload API stream: its uid opens streams faster than the per-uid budget');
      throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, 'too many Workload API streams opened by this user; retry later');
    }
    const attested = await attest(ctx, call, method);
    const selectors = attested.selectors;
    caller = attested.cred;
    if (ctx.onDelivered !== undefined) delivery = deliveryCaller(attested.cred, selectors);
    if (done || call.cancelled) return;
    try {
      unsubscribe = ctx.identities.subscribe(selectors, onUpdate);
    } catch (err) {
      ctx.logger.warn({ method, err }, 'subscribing to workload updates failed');
      throw new RpcError(grpc.status.UNAVAILABLE, 'agent not ready');
    }
    // The first update may have arrived (and ended the call) inside subscribe().
    if (done) {
      unsubscribe();
      unsubscribe = undefined;
    }
  })().catch((err: unknown) => finish(asStatus(err)));
}

/** Runs a unary handler, turning thrown RpcErrors into statuses. */
function serveUnary<Req, Res>(
  call: grpc.ServerUnaryCall<Req, Res>,
  callback: grpc.sendUnaryData<Res>,
  run: () => Promise<Res>,
): void {
  run().then(
    (res) => callback(null, res),
    (err: unknown) => callback(asStatus(err) as grpc.ServiceError),
  );
}

/** The service implementation for `server.addService(workloadServiceDefinition(), …)`. */
export function workloadHandlers(ctx: HandlerContext): grpc.UntypedServiceImplementation {
  return {
    FetchX509SVID(call: grpc.ServerWritableStream<unknown, X509SVIDResponse>) {
      serveStream(ctx, call, 'FetchX509SVID', x509SvidResponse);
    },

    FetchX509Bundles(call: grpc.ServerWritableStream<unknown, X509BundlesResponse>) {
      serveStream(ctx, call, 'FetchX509Bundles', x509BundlesResponse);
    },

    FetchJWTBundles(call: grpc.ServerWritableStream<unknown, JWTBundlesResponse>) {
      serveStream(ctx, call, 'FetchJWTBundles', jwtBundlesResponse);
    },

    FetchJWTSVID(call: grpc.ServerUnaryCall<JWTSVIDRequest, JWTSVIDResponse>, callback: grpc.sendUnaryData<JWTSVIDResponse>) {
      serveUnary(call, callback, async () => {
        checkSecurityHeader(call);
        const audience = (call.request.audience ?? []).filter((a) => a !== '');
        if (audience.length === 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'audience must be specified');
        // The server's limits (spiffe/jwt/limits): refused here, not forwarded and returned as UNAVAILABLE.
        const tooBig = audienceLimitProblem(call.request.audience ?? []);
        if (tooBig !== undefined) throw new RpcError(grpc.status.INVALID_ARGUMENT, tooBig);
        const wanted = call.request.spiffe_id ?? '';
        if (wanted !== '') {
          try {
            SpiffeId.parse(wanted);
          } catch (err) {
            throw new RpcError(grpc.status.INVALID_ARGUMENT, `invalid requested SPIFFE ID: ${(err as Error).message}`);
          }
        }
        const { selectors, cred } = await attest(ctx, call, 'FetchJWTSVID');
        let issued;
        try {
          issued = await ctx.identities.fetchJwtSvid(selectors, wanted === '' ? { audience } : { audience, spiffeId: wanted });
        } catch (err) {
          ctx.logger.warn({ method: 'FetchJWTSVID', err }, 'minting JWT-SVID failed');
          throw new RpcError(grpc.status.UNAVAILABLE, 'could not fetch JWT-SVID');
        }
        // Never hand out an identity other than the one asked for, whatever the cache did.
        const svids = wanted === '' ? issued : issued.filter((s) => s.spiffeId === wanted);
        if (svids.length === 0) {
          if (wanted !== '') {
            throw new RpcError(grpc.status.PERMISSION_DENIED, `caller is not entitled to SPIFFE ID ${JSON.stringify(wanted)}`);
          }
          throw noIdentity(ctx.identities.refusals?.(selectors));
        }
        if (ctx.onDelivered !== undefined) {
          const who = deliveryCaller(cred, selectors);
          for (const s of svids) {
            notifyDelivered(ctx.onDelivered, (err) => ctx.logger.warn({ method: 'FetchJWTSVID', err }, 'recording an SVID delivery failed'), who, jwtDelivered(s.spiffeId, audience, s.token));
          }
        }
        return { svids: svids.map((s) => ({ spiffe_id: s.spiffeId, svid: s.token, hint: s.hint ?? '' })) };
      });
    },

    ValidateJWTSVID(
      call: grpc.ServerUnaryCall<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse>,
      callback: grpc.sendUnaryData<ValidateJWTSVIDResponse>,
    ) {
      serveUnary(call, callback, async () => {
        checkSecurityHeader(call);
        const { audience, svid } = call.request;
        if (!audience) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'audience must be specified');
        if (!svid) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'svid must be specified');
        // Validation needs no identity, but the caller is still attested (and guarded)
        // like every other call, so only attestable local processes use the agent.
        await attest(ctx, call, 'ValidateJWTSVID');
        let result;
        try {
          result = await ctx.validateJwtSvid(svid, audience);
        } catch (err) {
          throw new RpcError(grpc.status.INVALID_ARGUMENT, `JWT-SVID is not valid: ${(err as Error).message ?? String(err)}`);
        }
        let claims;
        try {
          claims = toStruct(result.claims);
        } catch (err) {
          ctx.logger.warn({ method: 'ValidateJWTSVID', err }, 'cannot encode JWT claims');
          throw new RpcError(grpc.status.INTERNAL, 'cannot encode JWT claims');
        }
        return { spiffe_id: result.spiffeId, claims };
      });
    },
  };
}
