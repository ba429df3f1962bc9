/**
 * @module workloadapi/endpoint
 *
 * The SPIFFE Workload API endpoint: a gRPC server on a Unix socket whose connections
 * Mayfly accepts itself, so that each caller's credentials come from the kernel.
 *
 * Threat: a workload obtaining an identity that is not its own. gRPC over a bound Unix
 * socket tells handlers nothing about the caller (grpc-js reports peer "unknown"), so:
 * 1. `net.createServer` accepts the connection (paused: nothing is read from it yet);
 * 2. the peer's pid/uid/gid (`SO_PEERCRED`) and process start time are read at once; if
 *    they cannot be, the socket is destroyed (refused) before any request is read;
 * 3. the socket gets a unique, unguessable-by-the-client token as its `remoteAddress`,
 *    the token is mapped to the credentials, and the socket is handed to grpc-js through
 *    `server.createConnectionInjector(...)`: as it is, or, when the client's first request
 *    carries an `:authority` Node's HTTP/2 would reset (grpc-java sends the socket path),
 *    through the rewriter (h2-authority.ts); the first request decides (h2-sniff.ts);
 * 4. a handler's `call.getPeer()` returns that token (grpc-js reads `remoteAddress` through
 *    http2's socket proxy), which maps the call back to its connection's credentials.
 * Step 4 depends on grpc-js internals (version pinned by package-lock; covered by
 * `endpoint.test.ts` with two callers of different pids on one server). If the mapping
 * ever fails, calls fail closed with UNAVAILABLE.
 *
 * Resource bounds: requests are at most 64 KiB by default (every Workload API request is
 * tiny) and a connection may hold a bounded number of concurrent streams. The socket file is
 * world-connectable (0777, like SPIRE): access is decided per caller by attestation, not by
 * file permissions, so any local user can open connections, and no one user may take them
 * all (connection-limits.ts): connections are capped in all (4096), per caller uid (256,
 * always below the global cap) and per caller process (64), counted from the credentials
 * read at accept and released when the socket closes; one over its uid's or process's cap
 * is closed right after its credentials are read, before anything of it is read. A client
 * gets 5 s to complete the HTTP/2 handshake (else it is dropped); a connection with no open
 * call (streams count) is ended by grpc-js after 5 min with a GOAWAY, and a peer that then
 * keeps its end open is destroyed after a 5 s grace. All of these are configurable
 * (`WorkloadApiLimits`; agent.conf `agent { workload_api { … } }`).
 *
 * Logging: whatever a caller can cause at will (its process exiting before its credentials
 * are read, resets, dropping before its first request, failed attestation, PID reuse,
 * connections over a cap) is logged through a `LogLimiter` (log-limiter.ts): at most 10 lines
 * per cause per minute, then one "suppressed K similar messages" line, and never with a
 * stack (an error's message and code only). Routine conditions (peer gone, reset, dropped
 * before the first request) are at debug level; refusals over a cap, failed attestations and
 * unexpected failures stay at warn, rate-limited, so an operator sees a workload refused.
 */
import { lstat, chmod, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { isMayflyError } from '../spiffe/errors.js';
import { ensureTrustedDir, SOCKET_DIR_FIX } from '../securefs/index.js';
import type { PeerCredentials, PeerCredentialSource, ValidateJwtSvid, WorkloadIdentities } from './identities.js';
import { workloadHandlers, workloadServiceDefinitionForServing, type EndpointLogger } from './handlers.js';
import { authoritySafeSocket } from './h2-authority.js';
import { sniffFirstRequest, type ConnectionRoute } from './h2-sniff.js';
import { ConnectionLimits, resolveWorkloadApiLimits, type ConnectionStats, type WorkloadApiLimits } from './connection-limits.js';
import { errorFields, LogLimiter } from './log-limiter.js';
import { healthHandlers, healthServiceDefinition } from './health.js';
import type { OnDelivered } from './delivery.js';
import { StreamRate } from './stream-rate.js';
import { tokenExchangeHandlers, type LocalTokenExchange } from './token-exchange.js';
import { agentDelegationServiceDefinition } from '../wire/workload/delegation-proto.js';

export type { EndpointLogger } from './handlers.js';
export type { ConnectionStats, WorkloadApiLimits } from './connection-limits.js';

export interface WorkloadApiEndpointConfig extends WorkloadApiLimits {
  /** Absolute path of the Unix socket (e.g. `/run/mayfly/agent.sock`). */
  socketPath: string;
  /** The agent's cache: attestation, entitlements, JWT minting. */
  identities: WorkloadIdentities;
  /** JWT-SVID validation against the agent's bundles, for ValidateJWTSVID. */
  validateJwtSvid: ValidateJwtSvid;
  /** Peer credential reader and PID-reuse guard (the agent passes `src/agent/peercred`). */
  peerCredentials: PeerCredentialSource;
  logger?: EndpointLogger;
  /** Clock of the log rate limiter (default `() => new Date()`). */
  now?: () => Date;
  /** Serve `ExchangeForUser` (proto/agent-delegation.proto) on the same socket; absent: not served (UNIMPLEMENTED). */
  tokenExchange?: LocalTokenExchange;
  /** Largest request accepted, bytes (default 64 KiB). */
  maxRequestBytes?: number;
  /** Concurrent streams (calls) per connection (default 32). */
  maxConcurrentStreamsPerConnection?: number;
  /** Stream opens per caller uid: burst and refill per second (stream-rate.ts; defaults 256 and 64). */
  streamRate?: { burst?: number; perSecond?: number };
  /**
   * Whether the agent can serve workloads now, for `grpc.health.v1.Health/Check` on this
   * socket (health.ts). Default: serving while the endpoint is up.
   */
  serving?: () => boolean;
  /** Why the agent is not serving, for the health check's answer (health.ts). */
  notServingReason?: () => string | undefined;
  /** grpc-js server interceptors (the agent counts calls by method and status code with one). */
  interceptors?: grpc.ServerInterceptor[];
  /** Told which caller received which SVID (delivery.ts: the agent's delivery records); never blocks or fails a call. */
  onDelivered?: OnDelivered;
}

const silent: EndpointLogger = { debug() {}, warn() {} };

/** One admitted connection. */
interface Connection {
  readonly cred: PeerCredentials;
  /** The accepted socket. */
  readonly socket: net.Socket;
  /** What grpc-js reads: `socket` itself, or the rewriter's end of a socket pair; unset until handed on. */
  served: net.Socket | undefined;
  /** The server had ended it (idle timeout, shutdown) at the previous sweep. */
  endedAtLastSweep: boolean;
}

/** The Workload API server. `start()` to listen, `close()` to stop and remove the socket. */
export class WorkloadApiEndpoint {
  readonly socketPath: string;
  /** The connection bounds in force (defaults filled in). */
  readonly limits: Readonly<Required<WorkloadApiLimits>>;
  private readonly config: WorkloadApiEndpointConfig;
  private readonly log: LogLimiter;
  private readonly perCaller: ConnectionLimits;
  /** Each admitted connection, keyed by the token given as its remoteAddress. */
  private readonly connections = new Map<string, Connection>();
  private readonly openStreams = new Set<(status: Partial<grpc.StatusObject>) => void>();
  private readonly sockets = new Set<net.Socket>();
  private readonly tokenPrefix = `mayfly-wl-${randomBytes(8).toString('hex')}-`;
  private seq = 0;
  /** Connections handed to grpc-js as they are, and through the `:authority` rewriter (diagnostics, tests). */
  readonly routes: Record<ConnectionRoute, number> = { direct: 0, rewrite: 0 };
  private grpcServer: grpc.Server | undefined;
  private injector: ReturnType<grpc.Server['createConnectionInjector']> | undefined;
  private listener: net.Server | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(config: WorkloadApiEndpointConfig) {
    if (typeof config !== 'object' || config === null) throw new TypeError('WorkloadApiEndpoint needs a config object');
    if (typeof config.socketPath !== 'string' || !config.socketPath.startsWith('/')) {
      throw new TypeError('socketPath must be an absolute path');
    }
    if (typeof config.identities !== 'object' || config.identities === null) throw new TypeError('identities is required');
    if (typeof config.validateJwtSvid !== 'function') throw new TypeError('validateJwtSvid must be a function');
    const pc = config.peerCredentials;
    if (typeof pc !== 'object' || pc === null || typeof pc.read !== 'function' || typeof pc.verify !== 'function') {
      throw new TypeError('peerCredentials must have read() and verify()');
    }
    this.limits = resolveWorkloadApiLimits(config);
    this.config = config;
    this.socketPath = config.socketPath;
    this.log = new LogLimiter({ logger: config.logger ?? silent, ...(config.now !== undefined ? { now: config.now } : {}) });
    this.perCaller = new ConnectionLimits(this.limits);
  }

  /** Number of admitted connections currently open (refused ones never count). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Admitted connections open now, in all and per uid (diagnostics, tests). */
  connectionStats(): ConnectionStats {
    return this.perCaller.stats();
  }

  async start(): Promise<void> {
    if (this.listener !== undefined) throw new TypeError('endpoint already started');
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.config.maxRequestBytes ?? 64 * 1024,
      'grpc.max_concurrent_streams': this.config.maxConcurrentStreamsPerConnection ?? 32,
      // grpc-js ends a connection without an open stream for this long (GOAWAY, then close).
      'grpc.max_connection_idle_ms': this.limits.connectionIdleTimeoutMs,
      // No channelz bookkeeping per connection: nothing reads it, and it costs per socket.
      'grpc.enable_channelz': 0,
      ...(this.config.interceptors !== undefined ? { interceptors: this.config.interceptors } : {}),
    });
    server.addService(
      workloadServiceDefinitionForServing(),
      workloadHandlers({
        identities: this.config.identities,
        validateJwtSvid: this.config.validateJwtSvid,
        peerCredentials: this.config.peerCredentials,
        credentialsOf: (call) => this.connections.get(call.getPeer())?.cred,
        logger: this.config.logger ?? silent,
        logLimiter: this.log,
        openStreams: this.openStreams,
        streamRate: new StreamRate({ ...this.config.streamRate }),
        ...(this.config.onDelivered !== undefined ? { onDelivered: this.config.onDelivered } : {}),
      }),
    );
    if (this.config.tokenExchange !== undefined) {
      // Mayfly's own service beside the Workload API (proto/agent-delegation.proto).
      server.addService(
        agentDelegationServiceDefinition(),
        tokenExchangeHandlers({
          identities: this.config.identities,
          peerCredentials: this.config.peerCredentials,
          credentialsOf: (call) => this.connections.get(call.getPeer())?.cred,
          logger: this.config.logger ?? silent,
          logLimiter: this.log,
          tokenExchange: this.config.tokenExchange,
        }),
      );
    }
    const serving = this.config.serving ?? (() => true);
    server.addService(healthServiceDefinition(), healthHandlers(
        () => !this.closing && serving(),
        () => (this.closing ? 'the agent is shutting down' : this.config.notServingReason?.()),
      ));
    this.grpcServer = server;
    this.injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

    ensureTrustedDir(dirname(this.socketPath), { mode: 0o755, fix: SOCKET_DIR_FIX });
    await removeStaleSocket(this.socketPath);
    const listener = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    listener.maxConnections = this.limits.maxConnections;
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.log.warn('listener', errorFields(err), 'Workload API listener error'));
    listener.on('drop', () =>
      this.log.warn('over-global-cap', { limit: this.limits.maxConnections }, 'refusing Workload API connection: maxConnections reached'),
    );
    await chmod(this.socketPath, 0o777);
    this.sweep = setInterval(() => this.destroyLingering(), this.limits.connectionCloseGraceMs);
    this.sweep.unref();
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // Until http2 takes over, errors (client reset) must not become uncaught exceptions.
    socket.on('error', (err) => this.log.debug('connection-error', errorFields(err), 'Workload API connection error'));
    const token = `${this.tokenPrefix}${++this.seq}`;
    this.config.peerCredentials.read(socket).then(
      (cred) => this.admit(socket, token, cred),
      (err: unknown) => {
        // ERR_PEER_CREDENTIALS: the peer exited already, or the kernel holds nothing for it.
        // A caller can cause it at will (connect, exit): routine. Anything else is ours.
        if (isMayflyError(err, 'ERR_PEER_CREDENTIALS')) {
          this.log.debug('peer-credentials', errorFields(err), 'refusing Workload API connection: peer credentials unavailable');
        } else {
          this.log.warn('peer-credentials-failure', errorFields(err), 'refusing Workload API connection: reading peer credentials failed');
        }
        socket.destroy();
      },
    );
  }

  /** Counts the connection against its caller's caps (or closes it), then sniffs its first request. */
  private admit(socket: net.Socket, token: string, cred: PeerCredentials): void {
    if (this.closing || socket.destroyed || this.injector === undefined) {
      socket.destroy();
      return;
    }
    const refusal = this.perCaller.admit(cred);
    if (refusal !== undefined) {
      this.log.warn(
        refusal.cap === 'uid' ? 'over-uid-cap' : 'over-pid-cap',
        { uid: cred.uid, caller_pid: cred.pid, limit: refusal.limit },
        `refusing Workload API connection: its ${refusal.cap} already holds ${refusal.limit} connections (maxConnectionsPer${refusal.cap === 'uid' ? 'Uid' : 'Pid'})`,
      );
      socket.destroy();
      return;
    }
    const c: Connection = { cred, socket, served: undefined, endedAtLastSweep: false };
    this.connections.set(token, c);
    socket.once('close', () => {
      this.connections.delete(token);
      this.perCaller.release(cred);
    });
    // Accepted paused (pauseOnConnect), so nothing was read before the caller was known.
    // Now the client's first request decides the route (h2-sniff.ts).
    sniffFirstRequest(socket, { firstRequestTimeoutMs: this.limits.firstRequestTimeoutMs }, (err, route) => this.hand(c, token, err, route));
  }

  /**
   * Hands a sniffed connection (paused, its first bytes put back) to grpc-js: as it is when
   * its requests carry a valid `:authority`, else through the rewriter (java-spiffe, i.e.
   * grpc-java, sends the socket path, which Node's HTTP/2 resets).
   */
  private hand(c: Connection, token: string, err: Error | undefined, route: ConnectionRoute | undefined): void {
    const { socket } = c;
    if (err !== undefined || route === undefined) {
      this.log.debug('first-request', err === undefined ? {} : errorFields(err), 'Workload API connection dropped before its first request was served');
      socket.destroy();
      return;
    }
    if (this.closing || socket.destroyed || this.injector === undefined) {
      socket.destroy();
      return;
    }
    this.routes[route]++;
    let conn: net.Socket = socket;
    if (route === 'rewrite') {
      try {
        conn = authoritySafeSocket(socket);
      } catch (e) {
        this.log.warn('rewriter', errorFields(e), 'refusing Workload API connection: no socket for the HTTP/2 rewriter');
        socket.destroy();
        return;
      }
    }
    // grpc-js's call.getPeer() reads the socket's remoteAddress (a Unix socket has
    // none, and no remotePort): our token becomes the call's peer string.
    Object.defineProperty(conn, 'remoteAddress', { value: token, configurable: true, enumerable: true });
    c.served = conn;
    this.injector.injectConnection(conn);
    // Direct: grpc-js's HTTP/2 session reads the put-back bytes and takes over the socket.
    // Rewrite: resuming feeds the put-back bytes, then the rest, to the rewriter.
    if (route === 'rewrite') socket.resume();
  }

  /**
   * When grpc-js ends a connection gracefully (idle timeout), Node's HTTP/2 sends GOAWAY,
   * ends its side and waits for the peer to close, forever if the peer never does. Run every
   * `connectionCloseGraceMs`: a connection seen ended by the server at the previous run too
   * is destroyed.
   */
  private destroyLingering(): void {
    for (const c of this.connections.values()) {
      const served = c.served;
      if (served === undefined || (!served.writableEnded && !c.socket.writableEnded)) continue;
      if (!c.endedAtLastSweep) {
        c.endedAtLastSweep = true;
        continue;
      }
      served.destroy();
      c.socket.destroy();
    }
  }

  /** Stops accepting, ends every call and connection, and removes the socket file. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.sweep);
    const listener = this.listener;
    const closed = listener
      ? new Promise<void>((resolve) => listener.close(() => resolve()))
      : Promise.resolve();
    for (const end of [...this.openStreams]) end({ code: grpc.status.UNAVAILABLE, details: 'agent is shutting down' });
    // Let the trailers of the streams just ended reach the clients (GOAWAY, then wait for
    // the sessions to close) before sockets go; a client that hangs on gets 500 ms.
    const server = this.grpcServer;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 500);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.injector?.destroy();
    for (const s of this.sockets) s.destroy();
    await closed;
    this.connections.clear();
    this.log.flush();
    if (listener !== undefined) await removeStaleSocket(this.socketPath);
  }
}

/** Removes a leftover socket file at `path`; refuses to delete anything that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new TypeError(`${path} exists and is not a socket; refusing to replace it with the Workload API socket`);
  }
  await unlink(path);
}
