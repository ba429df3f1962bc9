/**
 * @module workloadapi/connection-limits
 *
 * How many Workload API connections each local user and each process may hold, and how long
 * a connection may sit without a call.
 *
 * Threat: one local user denying the Workload API to every other workload. The socket is
 * world-connectable (0777: access is decided per call by attestation), so any process can
 * open connections, complete the HTTP/2 handshake and never make a call. With only a global
 * cap, one unprivileged user holding that many connections left every legitimate workload
 * unserved. So:
 * - each connection is counted against its caller's uid and its process (pid and start
 *   time, as the kernel reported them at accept; see `PeerCredentials`); one over either cap
 *   is closed as soon as its credentials are read, before a byte of it is read or answered;
 * - the per-uid cap must stay below the global cap (checked here), so one uid alone can
 *   never fill the endpoint, and the per-pid cap may not exceed the per-uid cap;
 * - a connection gets `firstRequestTimeoutMs` to complete the HTTP/2 handshake (h2-sniff.ts);
 *   one that did but made no call yet is handed to grpc-js, which ends any connection with
 *   no open call (streams count) for `connectionIdleTimeoutMs` with a GOAWAY;
 * - a connection the server has ended (idle, shutdown) whose peer keeps its end open is
 *   destroyed after `connectionCloseGraceMs` to 2× that (Node's HTTP/2 would otherwise wait
 *   for the peer forever).
 * Counts are taken when credentials are read and released when the socket closes, whatever
 * closes it; a uid or process with no connection left has no entry.
 *
 * Defaults: 4096 connections in all, 256 per uid, 64 per process; 5 s to the handshake;
 * 5 min idle; 5 s close grace. Several workloads that run as one uid (containers without
 * user namespaces all look like uid 0 to the agent) share that uid's cap: raise it for them.
 */
import type { PeerCredentials } from './identities.js';

/** The endpoint's resource bounds on connections (all optional in the endpoint's config). */
export interface WorkloadApiLimits {
  /** Open connections at once (default 4096); more are closed at accept by Node. */
  maxConnections?: number;
  /** Open connections per caller uid (default 256; must be below `maxConnections`). */
  maxConnectionsPerUid?: number;
  /** Open connections per caller process (default 64; at most `maxConnectionsPerUid`). */
  maxConnectionsPerPid?: number;
  /** A connection with no open call (streams count) is ended after this long, ms (default 5 min). */
  connectionIdleTimeoutMs?: number;
  /** Time from accept to the end of the HTTP/2 handshake, ms (default 5 s); a client silent that long is dropped. */
  firstRequestTimeoutMs?: number;
  /** Time a client has to close a connection the server ended before it is destroyed, ms (default 5 s). */
  connectionCloseGraceMs?: number;
}

export const DEFAULT_WORKLOAD_API_LIMITS: Readonly<Required<WorkloadApiLimits>> = Object.freeze({
  maxConnections: 4096,
  maxConnectionsPerUid: 256,
  maxConnectionsPerPid: 64,
  connectionIdleTimeoutMs: 5 * 60_000,
  firstRequestTimeoutMs: 5_000,
  connectionCloseGraceMs: 5_000,
});

/** grpc-js treats an idle timeout of 2^31 - 1 ms or more as "none": stay below it. */
const MAX_TIMER_MS = 2 ** 31 - 2;

/** The limits with defaults filled in; throws `TypeError` on a value that is not usable. */
export function resolveWorkloadApiLimits(limits: WorkloadApiLimits = {}): Readonly<Required<WorkloadApiLimits>> {
  const r: Required<WorkloadApiLimits> = { ...DEFAULT_WORKLOAD_API_LIMITS };
  for (const key of Object.keys(DEFAULT_WORKLOAD_API_LIMITS) as Array<keyof WorkloadApiLimits>) {
    const v = limits[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new TypeError(`${key} must be a positive integer; got ${String(v)}`);
    if (key.endsWith('Ms') && v > MAX_TIMER_MS) throw new TypeError(`${key} must be at most ${MAX_TIMER_MS} ms; got ${v}`);
    r[key] = v;
  }
  if (r.maxConnectionsPerUid >= r.maxConnections) {
    throw new TypeError(
      `maxConnectionsPerUid (${r.maxConnectionsPerUid}) must be below maxConnections (${r.maxConnections}), so that one user cannot take every connection`,
    );
  }
  if (r.maxConnectionsPerPid > r.maxConnectionsPerUid) {
    throw new TypeError(`maxConnectionsPerPid (${r.maxConnectionsPerPid}) must not exceed maxConnectionsPerUid (${r.maxConnectionsPerUid})`);
  }
  return Object.freeze(r);
}

/** Why a connection was not admitted. */
export type Refusal = { cap: 'uid'; limit: number } | { cap: 'pid'; limit: number };

/** Open connections in all, per uid, and how many processes hold one (diagnostics, tests). */
export interface ConnectionStats {
  open: number;
  byUid: ReadonlyMap<number, number>;
  processes: number;
}

export interface ConnectionLimitsConfig {
  maxConnectionsPerUid: number;
  maxConnectionsPerPid: number;
}

/** Counts admitted connections per uid and per process; `admit` refuses one over a cap. */
export class ConnectionLimits {
  private readonly maxPerUid: number;
  private readonly maxPerPid: number;
  private readonly byUid = new Map<number, number>();
  /** Keyed by pid and start time: a reused pid is another process, with its own count. */
  private readonly byProcess = new Map<string, number>();
  private open = 0;

  constructor(config: ConnectionLimitsConfig) {
    if (typeof config !== 'object' || config === null) throw new TypeError('ConnectionLimits needs a config object');
    const { maxConnectionsPerUid, maxConnectionsPerPid } = config;
    if (!Number.isSafeInteger(maxConnectionsPerUid) || maxConnectionsPerUid < 1) throw new TypeError('maxConnectionsPerUid must be a positive integer');
    if (!Number.isSafeInteger(maxConnectionsPerPid) || maxConnectionsPerPid < 1) throw new TypeError('maxConnectionsPerPid must be a positive integer');
    this.maxPerUid = maxConnectionsPerUid;
    this.maxPerPid = maxConnectionsPerPid;
  }

  /**
   * Counts a connection of `cred` and returns undefined, or counts nothing and says which
   * cap it is over. Every admitted connection must be `release`d exactly once.
   */
  admit(cred: PeerCredentials): Refusal | undefined {
    const uidCount = this.byUid.get(cred.uid) ?? 0;
    if (uidCount >= this.maxPerUid) return { cap: 'uid', limit: this.maxPerUid };
    const key = processKey(cred);
    const pidCount = this.byProcess.get(key) ?? 0;
    if (pidCount >= this.maxPerPid) return { cap: 'pid', limit: this.maxPerPid };
    this.byUid.set(cred.uid, uidCount + 1);
    this.byProcess.set(key, pidCount + 1);
    this.open++;
    return undefined;
  }

  release(cred: PeerCredentials): void {
    const key = processKey(cred);
    const uidCount = this.byUid.get(cred.uid);
    const pidCount = this.byProcess.get(key);
    if (uidCount === undefined || pidCount === undefined) throw new TypeError('release() of a connection that was never admitted');
    if (uidCount <= 1) this.byUid.delete(cred.uid);
    else this.byUid.set(cred.uid, uidCount - 1);
    if (pidCount <= 1) this.byProcess.delete(key);
    else this.byProcess.set(key, pidCount - 1);
    this.open--;
  }

  stats(): ConnectionStats {
    return { open: this.open, byUid: new Map(this.byUid), processes: this.byProcess.size };
  }
}

function processKey(cred: PeerCredentials): string {
  return `${cred.pid}/${cred.startTime}`;
}
