/**
 * @module agent/agent-config
 *
 * What a `MayflyAgent` is built from (agent/agent): where its servers are, its data
 * directory and socket, how it attests, and the injected parts (clock, scheduler, server
 * clients, peer credentials) tests replace. `mayfly-agent run` fills it from agent.conf
 * (agent/config).
 */
import type { WorkloadAttestor } from '../attestors/workload/attestor.js';
import type { MayflyError } from '../spiffe/errors.js';
import type { WorkloadApiLimits } from '../workloadapi/connection-limits.js';
import type { PeerCredentialSource } from '../workloadapi/identities.js';
import type { AgentNodeAttestor } from './attestation.js';
import type { Scheduler } from './clock.js';
import type { EndpointClientFactory } from './failover-client.js';
import type { AgentLogger } from './logger.js';
import type { ServerClientFactory } from './server-client.js';
import type { ResolveHost } from './server-pool.js';

export interface MayflyAgentConfig {
  /** `host:port` of the server's TCP endpoint; a host name resolving to several addresses is several servers (agent/server-pool). */
  serverAddress?: string;
  /** Several `host:port` servers of the trust domain, tried in order on failure (instead of `serverAddress`). */
  serverAddresses?: readonly string[];
  /** How host names in the server addresses become addresses (default: the system resolver; tests inject one). */
  resolveHost?: ResolveHost;
  trustDomain: string;
  /** Holds agent-svid.pem, agent-key.pem, bundle.pem (0700 / 0600). */
  dataDir: string;
  /** Workload API socket (default `defaultSocketPath('agent')`: /run/mayfly/agent/public/api.sock as root, see wire/workload/socket-paths). */
  socketPath?: string;
  /** Single-use token for the first attestation (not needed once an agent SVID is stored). */
  joinToken?: string;
  /**
   * Node attestation evidence other than a join token (e.g. `K8sPsatAgentAttestor`); give
   * this or `joinToken`, not both. Unless it says `canReattest: false`, the agent attests
   * again with it when its SVID expired or the server evicted it.
   */
  nodeAttestor?: AgentNodeAttestor;
  /** PEM roots of the server's trust domain, to authenticate the server at first attestation. */
  trustBundlePath?: string;
  /** Trust on first use instead of trustBundlePath (logs a loud warning). */
  insecureBootstrap?: boolean;
  /** Default: the unix attestor. */
  workloadAttestors?: readonly WorkloadAttestor[];
  logger?: AgentLogger;
  now?: () => Date;
  /** Timers (default: real time over `now`); tests pass a ManualScheduler. */
  scheduler?: Scheduler;
  /** Uniform [0, 1) for jitter (tests pin it). */
  random?: () => number;
  /** How to reach the server (default: failover over the server addresses, grpc-js over TCP + TLS to each). */
  serverClientFactory?: ServerClientFactory;
  /** The client for one server endpoint (`ip:port`) under the default failover (default: grpc-js). */
  serverClientFor?: EndpointClientFactory;
  /** Peer credentials of Workload API callers (default: SO_PEERCRED, Linux). */
  peerCredentials?: PeerCredentialSource;
  /** Workload API connection bounds: global, per-uid and per-pid caps, timeouts (defaults in connection-limits.ts). */
  workloadApiLimits?: WorkloadApiLimits;
  /** Called once when the agent can no longer get SVIDs (agent SVID expired). */
  onFatal?: (err: MayflyError) => void;
  /**
   * Offer the server's token exchange (server.delegation) to local attested callers as
   * `ExchangeForUser` on the Workload API socket (proto/agent-delegation.proto): the agent
   * authenticates each exchange with a JWT-SVID of the caller's identity
   * (agent/token-exchange-client). `endpoint`: `https://host:port/token`; `serverId`: the
   * endpoint's SPIFFE ID (default `spiffe://<td>/spire/server`); `actorAudience`: the
   * server's issuer (default `spiffe://<td>`).
   */
  tokenExchange?: { endpoint: string; serverId?: string; actorAudience?: string; timeoutMs?: number };
  /** Bounds of the JWT-SVID cache (defaults: 10,000 tokens, 16 MiB, 64 audience sets per SPIFFE ID; agent/jwt-cache). */
  jwtSvidCache?: { maxEntries?: number; maxBytes?: number; maxPerIdentity?: number };
  /**
   * HTTP listeners (none by default): `metrics` serves `/metrics`, `/live` and `/ready`
   * (agent.conf `telemetry { Prometheus { … } }`); `health` serves SPIRE's `health_checks`
   * paths. Port 0 picks a free port (see `httpPorts`).
   */
  http?: { metrics?: { host: string; port: number }; health?: { host: string; port: number; livePath?: string; readyPath?: string } };
  /** How long the server may be out of reach before the agent reports unhealthy, seconds (default: half the agent SVID's lifetime). */
  serverUnreachableThresholdSeconds?: number;
  /**
   * Delivery records (agent/delivery-log): which local caller received which SVID, shipped to
   * the server's audit ledger. On by default; `maxBuffered` records in memory (default
   * 10,000), sent every `flushIntervalMs` (default 1000) in batches of `maxBatch` (default 500).
   */
  deliveryRecords?: { enabled?: boolean; maxBuffered?: number; maxBatch?: number; flushIntervalMs?: number; retryMinMs?: number; retryMaxMs?: number };
  /** Node's process metrics in `/metrics` (default true). */
  processMetrics?: boolean;
}
