/**
 * @module sdk/grpc
 *
 * SPIFFE mutual TLS for `@grpc/grpc-js`: channel credentials for clients, and a guarded TLS
 * listener that hands authorized connections to a `grpc.Server`.
 *
 * Threats this stops (the checks are sdk/tls's, not a copy):
 * - A server with a chain from another trust domain, an expired or malformed SVID, or an
 *   unauthorised SPIFFE ID: the channel's `checkServerIdentity` runs `verifyPeer`, so the
 *   connection fails at the handshake and no call is sent (the call ends UNAVAILABLE).
 * - The same from a client: grpc-js's own TLS server has no hook between the handshake and
 *   its HTTP/2 layer, so its `ServerCredentials` could only refuse a peer per call, after the
 *   connection was accepted. `createSpiffeGrpcListener` terminates TLS itself
 *   (`guardTlsServer`) and injects only authorized connections into the `grpc.Server`
 *   (`createConnectionInjector`): a refused client never reaches a handler.
 * - Presenting a rotated-out SVID: the channel's connector reads the source's current secure
 *   context for every connection attempt (grpc-js keeps one connector per subchannel, for
 *   all its reconnections); the listener takes a fresh context per handshake.
 * - Connections shared across identities: grpc-js shares subchannels between channels whose
 *   credentials are equal; these credentials are equal only to themselves, so a channel made
 *   with another source or authorizer never rides this one's connection.
 */
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { guardTlsServer, serverTlsOptions, spiffeConnectOptions, type SpiffeTlsOptions, type X509SvidSourceLike } from './tls.js';

type ConnectorArgs = Parameters<grpc.ChannelCredentials['_createSecureConnector']>;
type SecureConnector = ReturnType<grpc.ChannelCredentials['_createSecureConnector']>;

class SpiffeChannelCredentials extends grpc.ChannelCredentials {
  readonly #base: tls.ConnectionOptions;

  constructor(base: tls.ConnectionOptions) {
    super();
    this.#base = base;
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(target: ConnectorArgs[0], options: ConnectorArgs[1], callCredentials?: ConnectorArgs[2]): SecureConnector {
    const fresh = (): SecureConnector => {
      // `secureContext` is a getter: the source's SVID and bundles at this moment.
      const { secureContext, checkServerIdentity } = this.#base;
      return grpc.credentials.createFromSecureContext(secureContext as tls.SecureContext, { checkServerIdentity, rejectUnauthorized: true })._createSecureConnector(target, options, callCredentials);
    };
    const first = fresh();
    return {
      connect: (socket: Parameters<SecureConnector['connect']>[0]) => fresh().connect(socket),
      waitForReady: () => first.waitForReady(),
      getCallCredentials: () => first.getCallCredentials(),
      destroy: () => first.destroy(),
    };
  }
}

/**
 * gRPC channel credentials presenting the source's current SVID on every new connection and
 * accepting only a server whose X509-SVID verifies and passes `opts.authorize`. Use one
 * object per (source, authorizer): it is what keeps connections apart.
 */
export function createSpiffeChannelCredentials(source: X509SvidSourceLike, opts: SpiffeTlsOptions): grpc.ChannelCredentials {
  return new SpiffeChannelCredentials(spiffeConnectOptions(source, opts));
}

/**
 * A `tls.Server` doing SPIFFE mTLS (ALPN `h2`) that hands every authorized connection to
 * `grpcServer`; listen on it instead of `grpcServer.bindAsync`. Refused clients are reported
 * as `PEER_REJECTED_EVENT` (see `guardTlsServer`). Closing the listener stops new
 * connections; `grpcServer.tryShutdown`/`forceShutdown` ends the established ones.
 */
export function createSpiffeGrpcListener(grpcServer: grpc.Server, source: X509SvidSourceLike, opts: SpiffeTlsOptions): tls.Server {
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const server = tls.createServer({ ...serverTlsOptions(source, opts, false), ALPNProtocols: ['h2'] }, (socket: Duplex) => injector.injectConnection(socket));
  guardTlsServer(server, source, opts);
  return server;
}
