/**
 * @module sdk/http2
 *
 * SPIFFE mutual TLS for `node:http2`: a secure server and client sessions, fed by an
 * X509Source.
 *
 * Threats this stops (the checks are sdk/tls's, not a copy):
 * - A peer with a chain from another trust domain, an expired or malformed SVID (two URI
 *   SANs), or an unauthorised SPIFFE ID: the server's sockets pass `guardTlsServer` before
 *   the HTTP/2 layer sees them, so no session, stream or request exists for a refused client;
 *   the client's `checkServerIdentity` runs `verifyPeer`, so `connect` fails before a request
 *   is sent.
 * - Serving or presenting a rotated-out SVID: the server takes a fresh secure context per
 *   handshake (`SNICallback`, `setSecureContext` on each source update); each client session
 *   is one connection, handshaken with the SVID current when it was opened. A session is
 *   never shared: every `connectSpiffeHttp2` call opens its own, checked with its own
 *   authorizer.
 */
import http2 from 'node:http2';
import { serverTlsOptions, guardTlsServer, spiffeConnectOptions, type SpiffeTlsOptions, type X509SvidSourceLike } from './tls.js';

/**
 * An `http2.Http2SecureServer` doing SPIFFE mTLS: only authorized peers get a session;
 * refused ones are reported as `PEER_REJECTED_EVENT` (see `guardTlsServer`).
 * `serverOptions` may not carry TLS material (the source provides it).
 */
export function createSpiffeHttp2Server(
  source: X509SvidSourceLike,
  opts: SpiffeTlsOptions,
  listener?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  serverOptions: Omit<http2.SecureServerOptions, 'cert' | 'key' | 'ca' | 'pfx' | 'requestCert' | 'rejectUnauthorized' | 'SNICallback' | 'secureContext'> = {},
): http2.Http2SecureServer {
  const options: http2.SecureServerOptions = { ...serverOptions, ...serverTlsOptions(source, opts, false) };
  const server = listener ? http2.createSecureServer(options, listener) : http2.createSecureServer(options);
  return guardTlsServer(server, source, opts);
}

/**
 * Opens an HTTP/2 client session to `authority` (`https://host:port`) presenting the source's
 * current SVID and accepting only a server whose X509-SVID verifies and passes
 * `opts.authorize`; a refused server ends the session with an `ERR_PEER_UNAUTHORIZED`
 * error before any request.
 */
export function connectSpiffeHttp2(
  authority: string | URL,
  source: X509SvidSourceLike,
  opts: SpiffeTlsOptions,
  sessionOptions: Omit<http2.SecureClientSessionOptions, 'cert' | 'key' | 'ca' | 'pfx' | 'rejectUnauthorized' | 'checkServerIdentity' | 'secureContext'> = {},
): http2.ClientHttp2Session {
  const url = typeof authority === 'string' ? new URL(authority) : authority;
  if (url.protocol !== 'https:') throw new TypeError(`connectSpiffeHttp2 needs an https: authority, not ${url.protocol} (SPIFFE mTLS has no plaintext mode)`);
  // The spread reads the secureContext getter now: this session's one connection uses the
  // SVID current at this moment.
  const { maxCachedSessions: _m, ...tlsOptions } = spiffeConnectOptions(source, opts);
  return http2.connect(url, { ...sessionOptions, ...tlsOptions });
}
