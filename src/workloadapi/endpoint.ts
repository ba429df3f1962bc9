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
 * tiny), a connection may hold a bounded number of concurrent streams, and the number of
 * connections is capped. The socket file is world-connectable (0777, like SPIRE): access
 * is decided per caller by attestation, not by file permissions.
 */
import { lstat, chmod, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ensureTrustedDir, SOCKET_DIR_FIX } from '../securefs/index.js';
import type { PeerCredentials, PeerCredentialSource, ValidateJwtSvid, WorkloadIdentities } from './identities.js';
import { workloadHandlers, workloadServiceDefinitionForServing, type EndpointLogger } from './handlers.js';
import { authoritySafeSocket } from './h2-authority.js';
import { sniffFirstRequest, type ConnectionRoute } from './h2-sniff.js';

export type { EndpointLogger } from './handlers.js';

export interface WorkloadApiEndpointConfig {
  /** Absolute path of the Unix socket (e.g. `/run/mayfly/agent.sock`). */
  socketPath: string;
  /** The agent's cache: attestation, entitlements, JWT minting. */
  identities: WorkloadIdentities;
  /** JWT-SVID validation against the agent's bundles, for ValidateJWTSVID. */
  validateJwtSvid: ValidateJwtSvid;
  /** Peer credential reader and PID-reuse guard (the agent passes `src/agent/peercred`). */
  peerCredentials: PeerCredentialSource;
  logger?: EndpointLogger;
  /** Largest request accepted, bytes (default 64 KiB). */
  maxRequestBytes?: number;
  /** Concurrent streams (calls) per connection (default 32). */
  maxConcurrentStreamsPerConnection?: number;
  /** Open connections at once (default 4096); more are closed at accept by Node. */
  maxConnections?: number;
}

const silent: EndpointLogger = { debug() {}, warn() {} };

/** The Workload API server. `start()` to listen, `close()` to stop and remove the socket. */
export class WorkloadApiEndpoint {
  readonly socketPath: string;
  private readonly config: WorkloadApiEndpointConfig;
  private readonly logger: EndpointLogger;
  /** Credentials of each live connection, keyed by the token given as its remoteAddress. */
  private readonly connections = new Map<string, PeerCredentials>();
  private readonly openStreams = new Set<(status: Partial<grpc.StatusObject>) => void>();
  private readonly sockets = new Set<net.Socket>();
  private readonly tokenPrefix = `mayfly-wl-${randomBytes(8).toString('hex')}-`;
  private seq = 0;
  /** Connections handed to grpc-js as they are, and through the `:authority` rewriter (diagnostics, tests). */
  readonly routes: Record<ConnectionRoute, number> = { direct: 0, rewrite: 0 };
  private grpcServer: grpc.Server | undefined;
  private injector: ReturnType<grpc.Server['createConnectionInjector']> | undefined;
  private listener: net.Server | undefined;
  private closing = false;

  constructor(config: WorkloadApiEndpointConfig) {
    if (typeof config.socketPath !== 'string' || !config.socketPath.startsWith('/')) {
      throw new TypeError('socketPath must be an absolute path');
    }
    this.config = config;
    this.socketPath = config.socketPath;
    this.logger = config.logger ?? silent;
  }

  /** Number of accepted connections currently open (refused ones never count). */
  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    if (this.listener !== undefined) throw new TypeError('endpoint already started');
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.config.maxRequestBytes ?? 64 * 1024,
      'grpc.max_concurrent_streams': this.config.maxConcurrentStreamsPerConnection ?? 32,
      // No channelz bookkeeping per connection: nothing reads it, and it costs per socket.
      'grpc.enable_channelz': 0,
    });
    server.addService(
      workloadServiceDefinitionForServing(),
      workloadHandlers({
        identities: this.config.identities,
        validateJwtSvid: this.config.validateJwtSvid,
        peerCredentials: this.config.peerCredentials,
        credentialsOf: (call) => this.connections.get(call.getPeer()),
        logger: this.logger,
        openStreams: this.openStreams,
      }),
    );
    this.grpcServer = server;
    this.injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

    ensureTrustedDir(dirname(this.socketPath), { mode: 0o755, fix: SOCKET_DIR_FIX });
    await removeStaleSocket(this.socketPath);
    const listener = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    listener.maxConnections = this.config.maxConnections ?? 4096;
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.logger.warn({ err }, 'Workload API listener error'));
    await chmod(this.socketPath, 0o777);
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // Until http2 takes over, errors (client reset) must not become uncaught exceptions.
    socket.on('error', (err) => this.logger.debug({ err }, 'Workload API connection error'));
    const token = `${this.tokenPrefix}${++this.seq}`;
    this.config.peerCredentials.read(socket).then(
      (cred) => {
        if (this.closing || socket.destroyed || this.injector === undefined) {
          socket.destroy();
          return;
        }
        this.connections.set(token, cred);
        socket.once('close', () => this.connections.delete(token));
        // Accepted paused (pauseOnConnect), so nothing was read before the caller was known.
        // Now the client's first request decides the route (h2-sniff.ts).
        sniffFirstRequest(socket, {}, (err, route) => this.hand(socket, token, err, route));
      },
      (err: unknown) => {
        this.logger.warn({ err }, 'refusing Workload API connection: peer credentials unavailable');
        socket.destroy();
      },
    );
  }

  /**
   * Hands a sniffed connection (paused, its first bytes put back) to grpc-js: as it is when
   * its requests carry a valid `:authority`, else through the rewriter (java-spiffe, i.e.
   * grpc-java, sends the socket path, which Node's HTTP/2 resets).
   */
  private hand(socket: net.Socket, token: string, err: Error | undefined, route: ConnectionRoute | undefined): void {
    if (err !== undefined || route === undefined) {
      this.logger.debug({ err }, 'Workload API connection dropped before its first request was served');
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
        this.logger.warn({ err: e }, 'refusing Workload API connection: no socket for the HTTP/2 rewriter');
        socket.destroy();
        return;
      }
    }
    // grpc-js's call.getPeer() reads the socket's remoteAddress (a Unix socket has
    // none, and no remotePort): our token becomes the call's peer string.
    Object.defineProperty(conn, 'remoteAddress', { value: token, configurable: true, enumerable: true });
    this.injector.injectConnection(conn);
    // Direct: grpc-js's HTTP/2 session reads the put-back bytes and takes over the socket.
    // Rewrite: resuming feeds the put-back bytes, then the rest, to the rewriter.
    if (route === 'rewrite') socket.resume();
  }

  /** Stops accepting, ends every call and connection, and removes the socket file. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
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
