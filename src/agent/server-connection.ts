/**
 * @module agent/server-connection
 *
 * How a `MayflyAgent` reaches its servers: the `host:port` targets it was given (one
 * `serverAddress`, SPIRE's shape, or several `serverAddresses`), a `ServerPool` over what
 * they resolve to, and clients that fail over across it (agent/failover-client), each
 * endpoint reached with grpc-js over TCP + mTLS (agent/grpc-client). A test may replace the
 * per-endpoint client (`serverClientFor`), the resolver, or the whole factory.
 */
import type { TrustDomain } from '../spiffe/id.js';
import type { Scheduler } from './clock.js';
import { failoverServerClientFactory, type EndpointClientFactory } from './failover-client.js';
import { GrpcServerClient } from './grpc-client.js';
import type { AgentLogger } from './logger.js';
import type { ServerClientFactory } from './server-client.js';
import { ServerPool, splitHostPort, type ResolveHost } from './server-pool.js';

export interface ServerConnectionConfig {
  serverAddress?: string;
  serverAddresses?: readonly string[];
  trustDomain: TrustDomain;
  resolveHost?: ResolveHost;
  serverClientFor?: EndpointClientFactory;
  serverClientFactory?: ServerClientFactory;
  logger: AgentLogger;
  scheduler: Scheduler;
}

/** The targets given, checked: `serverAddress` or a non-empty `serverAddresses` (not both), each `host:port`. TypeError otherwise. */
export function serverTargets(cfg: { serverAddress?: string; serverAddresses?: readonly string[] }): string[] {
  const { serverAddress, serverAddresses } = cfg;
  if (serverAddresses !== undefined) {
    if (serverAddress !== undefined) throw new TypeError('give serverAddress or serverAddresses, not both');
    if (!Array.isArray(serverAddresses) || serverAddresses.length === 0) throw new TypeError('serverAddresses must be a non-empty list of host:port');
  } else if (typeof serverAddress !== 'string' || serverAddress === '') {
    throw new TypeError('serverAddress (host:port) or serverAddresses is required');
  }
  const targets = serverAddresses ?? [serverAddress as string];
  for (const t of targets) {
    if (typeof t !== 'string') throw new TypeError('every server address must be a host:port string');
    splitHostPort(t);
  }
  return [...targets];
}

/** The agent's client factory, and the pool behind it (none when the whole factory was replaced). */
export function serverConnection(cfg: ServerConnectionConfig): { connect: ServerClientFactory; pool: ServerPool | undefined } {
  if (cfg.serverClientFactory !== undefined) return { connect: cfg.serverClientFactory, pool: undefined };
  const pool = new ServerPool({ targets: serverTargets(cfg), logger: cfg.logger, ...(cfg.resolveHost !== undefined ? { resolve: cfg.resolveHost } : {}) });
  const td = cfg.trustDomain;
  const clientFor: EndpointClientFactory = cfg.serverClientFor ?? ((address, credentials) => new GrpcServerClient({ address, trustDomain: td, credentials }));
  return { connect: failoverServerClientFactory({ pool, clientFor, scheduler: cfg.scheduler }), pool };
}
