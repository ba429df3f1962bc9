/**
 * @module agent/agent-health
 *
 * The agent's health verdict, one for `grpc.health.v1.Health/Check` on the Workload API
 * socket (what `mayfly-agent healthcheck` and gRPC probes call) and for `/ready`: the agent
 * holds a valid agent SVID, its authorised entries arrived, the Workload API listens, and
 * the server has not been out of reach (no open entry stream) for longer than the
 * threshold (agent.conf `agent { server_unreachable_threshold }`; default half the agent
 * SVID's lifetime, when the agent should have renewed it). Pure: MayflyAgent gives the facts.
 */
import type { Readiness } from '../observability/http-endpoints.js';
import type { AgentSvid } from './attestation.js';

/** What the verdict is made from, read from the running agent. */
export interface AgentHealthFacts {
  readonly now: Date;
  readonly svid: AgentSvid | undefined;
  /** The agent's state is `ready` (entries arrived, not failed). */
  readonly entries: boolean;
  readonly workloadApiListening: boolean;
  /** The last moment the agent knew it was in sync with the server (agent/sync), else when it started. */
  readonly lastInSync: Date | undefined;
  /** `server_unreachable_threshold` in seconds, when configured. */
  readonly thresholdSeconds: number | undefined;
  /** Why the agent failed, when it did. */
  readonly failure: string | undefined;
  /** The server endpoint the agent streams from or tries next (agent/server-pool), when known. */
  readonly serverAddress?: string | undefined;
}

/** How long the server may be out of reach, ms: the configured threshold, else half the agent SVID's lifetime. */
export function unreachableThresholdMs(thresholdSeconds: number | undefined, svid: AgentSvid | undefined): number | undefined {
  if (thresholdSeconds !== undefined) return thresholdSeconds * 1000;
  return svid === undefined ? undefined : (svid.notAfter.getTime() - svid.notBefore.getTime()) / 2;
}

/** The verdict, check by check: `agentSvid`, `entries`, `workloadApi`, `server`. */
export function agentReadiness(f: AgentHealthFacts): Readiness {
  const now = f.now.getTime();
  const agentSvid = f.svid !== undefined && f.svid.notBefore.getTime() <= now && now < f.svid.notAfter.getTime();
  const workloadApi = f.workloadApiListening && f.entries;
  const threshold = unreachableThresholdMs(f.thresholdSeconds, f.svid);
  const server = f.lastInSync !== undefined && threshold !== undefined && now - f.lastInSync.getTime() <= threshold;
  return { ready: agentSvid && f.entries && workloadApi && server, checks: { agentSvid, entries: f.entries, workloadApi, server } };
}

/** One line saying why the agent is not healthy; undefined when it is. */
export function unhealthyReason(f: AgentHealthFacts): string | undefined {
  const r = agentReadiness(f);
  if (r.ready) return undefined;
  if (!r.checks.agentSvid) return 'the agent holds no valid agent SVID';
  if (!r.checks.entries) return f.failure !== undefined ? `the agent failed: ${f.failure}` : 'the authorised entries have not arrived from the server yet';
  if (!r.checks.server) {
    const s = Math.round((unreachableThresholdMs(f.thresholdSeconds, f.svid) ?? 0) / 1000);
    const tried = f.serverAddress !== undefined ? `; trying ${f.serverAddress}` : '';
    return `the server has been unreachable for longer than ${s}s (server_unreachable_threshold${tried})`;
  }
  return 'the Workload API is not listening';
}
