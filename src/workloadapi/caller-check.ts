/**
 * @module workloadapi/caller-check
 *
 * Attestation of a Workload API call's caller between two checks that it is still the
 * process that connected (see `src/agent/peercred`), and the same check before every
 * stream update.
 *
 * Threats: PID reuse (UNAVAILABLE: the caller exited or its pid names another process), and
 * exec after connect — a process that connects, forks, and execs a setuid binary or another
 * program of its uid so that the child holding the socket is attested as that program
 * (PERMISSION_DENIED: uid/gid or executable changed since connect). The unix attestor
 * refuses contradicting facts itself (`ERR_CALLER_CHANGED`), which maps to the same status.
 */
import * as grpc from '@grpc/grpc-js';
import { isMayflyError } from '../spiffe/errors.js';
import type { CallerCheck, PeerCredentials, PeerCredentialSource, Selector, WorkloadIdentities } from './identities.js';
import { errorFields, type LogLimiter } from './log-limiter.js';
import { RpcError, type EndpointLogger, type SurfaceCall } from './rpc-status.js';

/** What the checks need from the endpoint (the handlers' context has all of it). */
export interface CallerContext {
  identities: Pick<WorkloadIdentities, 'attest'>;
  peerCredentials: PeerCredentialSource;
  /** The credentials recorded at accept for the connection a call arrived on. */
  credentialsOf(call: SurfaceCall): PeerCredentials | undefined;
  logger: EndpointLogger;
  /** For lines a caller can cause at will: rate-limited, no stacks. */
  logLimiter: LogLimiter;
}

/**
 * Results of `verify` within one synchronous run (a fan-out of one update to many streams
 * of one connection reads /proc once per connection, not once per stream); cleared at the
 * next microtask, so no verdict outlives the turn it was made in.
 */
const verdicts = new Map<PeerCredentials, CallerCheck>();

function verifyOnce(ctx: CallerContext, cred: PeerCredentials): CallerCheck {
  let verdict = verdicts.get(cred);
  if (verdict === undefined) {
    try {
      verdict = ctx.peerCredentials.verify(cred);
    } catch (err) {
      ctx.logLimiter.warn('caller-check-failed', { caller_pid: cred.pid, ...errorFields(err) }, 'cannot check the caller process; refusing');
      verdict = { ok: false, reason: 'exited', detail: `process ${cred.pid} could not be checked` };
    }
    if (verdicts.size === 0) queueMicrotask(() => verdicts.clear());
    verdicts.set(cred, verdict);
  }
  return verdict;
}

function callerChanged(): RpcError {
  return new RpcError(
    grpc.status.PERMISSION_DENIED,
    'caller process changed since it connected (it executed another program or changed its uid/gid); reconnect from the process that makes the calls',
  );
}

/**
 * Throws the status a call ends with when its caller is no longer the process that
 * connected: UNAVAILABLE when it exited or its pid was reused (a client that retries
 * reconnects as itself), PERMISSION_DENIED when it changed credentials or executable
 * since it connected (the exec-after-connect attack; see `src/agent/peercred`).
 */
export function checkCaller(ctx: CallerContext, cred: PeerCredentials, method: string, when: string): void {
  const verdict = verifyOnce(ctx, cred);
  if (verdict.ok) return;
  const facts = { method, caller_pid: cred.pid, uid: cred.uid, gid: cred.gid, reason: verdict.reason, detail: verdict.detail };
  if (verdict.reason === 'exited' || verdict.reason === 'pid-reused') {
    ctx.logLimiter.warn('pid-reuse', facts, `caller exited or its pid now belongs to another process (PID reuse) ${when}; discarding attestation`);
    throw new RpcError(grpc.status.UNAVAILABLE, 'workload attestation failed: caller process changed during attestation');
  }
  ctx.logLimiter.warn('caller-changed', facts, `caller is no longer the process that connected (${verdict.reason}) ${when}; refusing`);
  throw callerChanged();
}

/**
 * Attests the call's caller between two checks that it is still the process that
 * connected; returns its credentials and selectors.
 */
export async function attest(ctx: CallerContext, call: SurfaceCall, method: string): Promise<{ cred: PeerCredentials; selectors: Selector[] }> {
  const cred = ctx.credentialsOf(call);
  if (cred === undefined) {
    // Every injected connection is registered before injection, so this means the
    // mapping from call to connection broke (e.g. a grpc-js change): fail closed.
    ctx.logger.warn({ method, peer: call.getPeer() }, 'call not mapped to any accepted connection; refusing');
    throw new RpcError(grpc.status.UNAVAILABLE, 'caller credentials unknown');
  }
  checkCaller(ctx, cred, method, 'before attestation');
  let selectors: Selector[];
  try {
    selectors = await ctx.identities.attest(cred);
  } catch (err) {
    if (isMayflyError(err, 'ERR_CALLER_CHANGED')) {
      ctx.logLimiter.warn('caller-changed', { method, caller_pid: cred.pid, uid: cred.uid, ...errorFields(err) }, 'caller is no longer the process that connected; refusing');
      throw callerChanged();
    }
    ctx.logLimiter.warn('attestation-failed', { method, caller_pid: cred.pid, uid: cred.uid, ...errorFields(err) }, 'workload attestation failed');
    throw new RpcError(grpc.status.UNAVAILABLE, 'workload attestation failed');
  }
  checkCaller(ctx, cred, method, 'after attestation');
  return { cred, selectors };
}
