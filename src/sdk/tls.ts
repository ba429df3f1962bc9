/**
 * @module sdk/tls
 *
 * SPIFFE mutual TLS for `node:tls` and `node:https`, fed by an X509Source.
 *
 * Threats this stops:
 * - Accepting any certificate the bundle signed. Chain validation alone says "some workload
 *   of a trusted trust domain"; every peer is also checked against an authorizer on its
 *   SPIFFE ID (`authorizeId`, `authorizeOneOf`, `authorizeMemberOf`; `authorizeAny` only
 *   when every workload may talk to you).
 * - Cross-trust-domain forgery. With federation the CA list holds several trust domains'
 *   roots, and OpenSSL accepts a chain to any of them. A certificate claiming
 *   `spiffe://a/...` signed by trust domain b's CA would pass OpenSSL; here the chain is
 *   verified again with `verifyX509Svid` against the bundle of the trust domain in the
 *   peer's own SPIFFE ID only.
 * - Web PKI hostname checks: SPIFFE certificates name workloads, not hosts, so Node's
 *   `checkServerIdentity` hostname match is meaningless. It is replaced by the SPIFFE
 *   checks, never switched off with `rejectUnauthorized: false`: OpenSSL still validates
 *   the chain against the bundle roots (`ca`) first. (The servers `createSpiffeTlsServer`
 *   and `createSpiffeHttpsServer` build let the handshake finish so that a refused client
 *   can be reported with its reason; their guard reads OpenSSL's verdict, `socket.authorized`,
 *   before anything else, and no socket reaches a listener unless it holds.)
 * - Refusals nobody can explain: a guarded server reports every refused client, handshake
 *   failures included, with the peer's SPIFFE ID, address and reason (sdk/peer-refusals).
 * - Serving a rotated-out SVID: secure contexts are rebuilt from the source's current SVID
 *   and bundles for every new connection (client: a `secureContext` getter; server:
 *   `SNICallback` and `setSecureContext` on each source update), so rotation needs no
 *   restart. TLS session resumption is off (no tickets, no client session cache) so every
 *   connection presents, and is checked on, a full certificate chain.
 */
import { constants as cryptoConstants } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import type { Bundle, BundleSet } from '../spiffe/bundle/index.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { PeerAuthorizationError } from './errors.js';
import { x509SvidPem, type X509Svid } from './model.js';
import { chainProblem, handshakeRefusal, peerRefusal, RefusalReporter } from './peer-refusals.js';
import { checkNotRevoked } from './crl-check.js';

export { PEER_REJECTED_EVENT, REFUSAL_LOG_BURST, REFUSAL_LOG_WINDOW_MS } from './peer-refusals.js';

/** Decides whether a verified peer may talk to us; throws PeerAuthorizationError to refuse. */
export type Authorizer = (id: SpiffeId) => void;

/** Any workload whose SVID verifies against a trusted bundle. */
export function authorizeAny(): Authorizer {
  return () => undefined;
}

/** Exactly this SPIFFE ID. */
export function authorizeId(expected: SpiffeId | string): Authorizer {
  const want = typeof expected === 'string' ? SpiffeId.parse(expected) : expected;
  return (id) => {
    if (!id.equals(want)) throw new PeerAuthorizationError(`peer SPIFFE ID ${id} is not the expected ${want}`);
  };
}

/** One of these SPIFFE IDs. */
export function authorizeOneOf(ids: Iterable<SpiffeId | string>): Authorizer {
  const allowed = new Set([...ids].map((i) => (typeof i === 'string' ? SpiffeId.parse(i) : i).toString()));
  if (allowed.size === 0) throw new TypeError('authorizeOneOf needs at least one SPIFFE ID');
  return (id) => {
    if (!allowed.has(id.toString())) throw new PeerAuthorizationError(`peer SPIFFE ID ${id} is not one of the ${allowed.size} allowed IDs`);
  };
}

/** Any workload of this trust domain. */
export function authorizeMemberOf(td: TrustDomain | string): Authorizer {
  const want = typeof td === 'string' ? TrustDomain.parse(td) : td;
  return (id) => {
    if (!id.memberOf(want)) throw new PeerAuthorizationError(`peer SPIFFE ID ${id} is not a member of trust domain ${want.name}`);
  };
}

/** What the TLS helpers need from a source (X509Source fits). */
export interface X509SvidSourceLike {
  getX509Svid(): X509Svid;
  getX509Bundles(): BundleSet;
  /** The X.509 CRLs (DER) the source holds (X509Source: from the Workload API); peers they list are refused. */
  getX509Crls?(): readonly Buffer[];
  on?(event: 'update', listener: () => void): unknown;
  off?(event: 'update', listener: () => void): unknown;
}

export interface SpiffeTlsOptions {
  authorize: Authorizer;
  /** Clock for certificate validity checks. */
  now?: () => Date;
  /**
   * Where a guarded server writes a refused peer's line when nothing listens for
   * `PEER_REJECTED_EVENT` (default `console.warn`; at most `REFUSAL_LOG_BURST` lines a minute).
   */
  log?: (line: string) => void;
}

function checkOptions(opts: SpiffeTlsOptions): void {
  if (typeof opts?.authorize !== 'function') {
    throw new TypeError('an authorizer is required (authorizeId, authorizeOneOf, authorizeMemberOf, or authorizeAny to accept every workload)');
  }
}

/**
 * Verifies a peer's presented chain (leaf first) as an X509-SVID of the trust domain named
 * in its own SPIFFE ID, refuses it when one of `crls` (issued by the leaf's issuer,
 * signature verified: sdk/crl-check) lists its serial, then runs `authorize`. Returns the
 * peer's SPIFFE ID.
 */
export function verifyPeer(chain: readonly Buffer[], bundles: BundleSet, authorize: Authorizer, now: Date = new Date(), crls: readonly Buffer[] = []): SpiffeId {
  if (chain.length === 0) throw new PeerAuthorizationError('the peer presented no certificate');
  let claimed: SpiffeId;
  try {
    const uris = parseCertificate(chain[0] as Buffer).uriSans;
    if (uris.length !== 1) throw new Error(`it has ${uris.length} URI SANs`);
    claimed = SpiffeId.parseWorkload(uris[0] as string);
  } catch (cause) {
    throw new PeerAuthorizationError(`the peer certificate is not an X509-SVID: ${(cause as Error).message}`, { cause });
  }
  const bundle: Bundle | undefined = bundles.get(claimed.trustDomain);
  if (!bundle) throw new PeerAuthorizationError(`peer ${claimed} is in trust domain ${claimed.trustDomain.name}, which this workload does not trust`);
  let verified;
  try {
    verified = verifyX509Svid(chain, bundle, { now });
  } catch (cause) {
    throw new PeerAuthorizationError(`peer X509-SVID ${claimed} failed SPIFFE verification: ${(cause as Error).message}`, { cause });
  }
  checkNotRevoked(chain, bundle, crls, verified.spiffeId.toString());
  authorize(verified.spiffeId);
  return verified.spiffeId;
}

/** The chain a TLS peer presented, leaf first, without the trust anchor OpenSSL appended. */
export function presentedChain(cert: tls.DetailedPeerCertificate | tls.PeerCertificate | undefined): Buffer[] {
  const out: Buffer[] = [];
  let c = cert as tls.DetailedPeerCertificate | undefined;
  const seen = new Set<tls.DetailedPeerCertificate>();
  while (c && c.raw && !seen.has(c)) {
    seen.add(c);
    const issuer = c.issuerCertificate;
    // Node ends the chain with a self-issued certificate pointing at itself: the anchor,
    // found in our bundle roots. It is not part of what the peer has to prove.
    const selfIssued = issuer === c || (issuer?.raw !== undefined && issuer.raw.equals(c.raw));
    if (selfIssued && out.length > 0) break;
    out.push(c.raw);
    if (selfIssued) break;
    c = issuer;
  }
  return out;
}

interface ContextCache {
  svid?: X509Svid;
  bundles?: BundleSet;
  context?: tls.SecureContext;
}

function contextOptions(source: X509SvidSourceLike): tls.SecureContextOptions & { svid: X509Svid; bundles: BundleSet } {
  const svid = source.getX509Svid();
  const bundles = source.getX509Bundles();
  const pem = x509SvidPem(svid);
  const roots: Buffer[] = [];
  for (const b of bundles) roots.push(...b.x509Authorities);
  if (roots.length === 0) throw new PeerAuthorizationError('the source has no X.509 bundle roots: nothing can be verified');
  return { cert: pem.certificates, key: pem.privateKey, ca: pemEncodeCertificates(roots), minVersion: 'TLSv1.2', svid, bundles };
}

/** The current secure context of `source`, rebuilt only when the SVID or bundles changed. */
function contextGetter(source: X509SvidSourceLike, server: boolean): () => tls.SecureContext {
  const cache: ContextCache = {};
  return () => {
    const svid = source.getX509Svid();
    const bundles = source.getX509Bundles();
    if (cache.context && cache.svid === svid && cache.bundles === bundles) return cache.context;
    const { svid: _s, bundles: _b, ...opts } = contextOptions(source);
    cache.context = tls.createSecureContext(server ? { ...opts, secureOptions: cryptoConstants.SSL_OP_NO_TICKET } : opts);
    cache.svid = svid;
    cache.bundles = bundles;
    return cache.context;
  };
}

/**
 * `tls.connect` / `https.Agent` options that present the source's SVID and accept only a
 * server whose X509-SVID verifies and passes `authorize`. `secureContext` is a getter, so
 * each new connection uses the SVID current at that moment.
 */
export function createClientTlsOptions(source: X509SvidSourceLike, opts: SpiffeTlsOptions): tls.ConnectionOptions & https.AgentOptions & { agent?: https.Agent } {
  const options: tls.ConnectionOptions & https.AgentOptions & { agent?: https.Agent } = spiffeConnectOptions(source, opts);
  // Node's https.Agent pools sockets by host, port and some TLS options, but not by
  // secureContext or checkServerIdentity. With the shared global agent, a request meant to
  // present another SVID, or to authorise another server ID, would silently reuse a socket
  // authenticated for the first one. A private agent per options object keeps each pool to
  // one (client identity, server authorizer) pair.
  options.agent = new https.Agent({ keepAlive: true, maxCachedSessions: 0 });
  return options;
}

/**
 * The `tls.connect` options of `createClientTlsOptions` without a pool (the other transports,
 * sdk/http2, sdk/grpc, sdk/fetch, build theirs on it): `secureContext` is a getter answering
 * the source's current SVID, `checkServerIdentity` runs `verifyPeer`.
 */
export function spiffeConnectOptions(source: X509SvidSourceLike, opts: SpiffeTlsOptions): tls.ConnectionOptions & { maxCachedSessions: number } {
  checkOptions(opts);
  const current = contextGetter(source, false);
  current(); // fail now, not at the first connection, when the source has nothing yet
  const now = opts.now ?? (() => new Date());
  const options: tls.ConnectionOptions & { maxCachedSessions: number } = {
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    // Resumed sessions skip checkServerIdentity in Node: no client session cache.
    maxCachedSessions: 0,
    checkServerIdentity: (_host, cert) => {
      try {
        verifyPeer(presentedChain(cert), source.getX509Bundles(), opts.authorize, now(), source.getX509Crls?.() ?? []);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
  };
  Object.defineProperty(options, 'secureContext', { get: current, enumerable: true, configurable: true });
  return options;
}

/**
 * `tls.createServer` / `https.createServer` options that present the source's SVID and
 * require a client certificate chaining to a bundle root. Authorization of the client's
 * SPIFFE ID happens after the handshake: pass the server to `guardTlsServer`, or use
 * `createSpiffeTlsServer` / `createSpiffeHttpsServer`, which do both.
 */
export function createServerTlsOptions(source: X509SvidSourceLike, opts: SpiffeTlsOptions): tls.TlsOptions {
  return serverTlsOptions(source, opts, true);
}

/**
 * The server options; `rejectUnauthorized: false` only for a server `guardTlsServer` guards
 * (it refuses what OpenSSL did not verify, and can then say why).
 */
export function serverTlsOptions(source: X509SvidSourceLike, opts: SpiffeTlsOptions, rejectUnauthorized: boolean): tls.TlsOptions {
  checkOptions(opts);
  const current = contextGetter(source, true);
  const { svid: _s, bundles: _b, ...initial } = contextOptions(source);
  return {
    ...initial,
    requestCert: true,
    rejectUnauthorized,
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
    SNICallback: (_servername, cb) => {
      try {
        cb(null, current());
      } catch (err) {
        cb(err as Error, undefined);
      }
    },
  };
}

/**
 * Makes `server` check every client's chain (OpenSSL's verdict), SVID and SPIFFE ID before
 * any of its existing `secureConnection` listeners (including the HTTP layer of an
 * https.Server) see the socket. Refused sockets are destroyed and reported, as are failed
 * handshakes: a `PeerAuthorizationError` naming the peer's SPIFFE ID, address and reason,
 * emitted as PEER_REJECTED_EVENT, or logged through `opts.log` when nothing listens
 * (sdk/peer-refusals). Also swaps the server's default secure context (used when the client
 * sends no SNI) on each source update. Listeners added after this call run after the check
 * and see refused sockets already destroyed.
 */
export function guardTlsServer<S extends tls.Server>(server: S, source: X509SvidSourceLike, opts: SpiffeTlsOptions): S {
  checkOptions(opts);
  const now = opts.now ?? (() => new Date());
  const reporter = new RefusalReporter({ server, now, log: opts.log ?? ((line) => console.warn(line)) });
  const inner = server.listeners('secureConnection') as Array<(socket: tls.TLSSocket) => void>;
  server.removeAllListeners('secureConnection');
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const chain = presentedChain(socket.getPeerCertificate(true));
    try {
      if (!socket.authorized) throw new PeerAuthorizationError(chainProblem(socket.authorizationError, chain.length > 0));
      verifyPeer(chain, source.getX509Bundles(), opts.authorize, now(), source.getX509Crls?.() ?? []);
    } catch (err) {
      const refusal = peerRefusal(err, socket, chain); // before destroy(): it names the peer's address
      socket.destroy();
      reporter.report(refusal, socket);
      return;
    }
    for (const l of inner) l.call(server, socket);
  });
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => reporter.report(handshakeRefusal(err, socket), socket));
  if (source.on) {
    const onUpdate = (): void => {
      try {
        const { svid: _s, bundles: _b, ...o } = contextOptions(source);
        server.setSecureContext({ ...o, secureOptions: cryptoConstants.SSL_OP_NO_TICKET });
      } catch {
        // Keep the previous context; the source reports its own errors.
      }
    };
    source.on('update', onUpdate);
    server.once('close', () => source.off?.('update', onUpdate));
  }
  return server;
}

/** A `tls.Server` doing SPIFFE mTLS; `listener` only sees authorized peers. */
export function createSpiffeTlsServer(source: X509SvidSourceLike, opts: SpiffeTlsOptions, listener?: (socket: tls.TLSSocket) => void): tls.Server {
  return guardTlsServer(tls.createServer(serverTlsOptions(source, opts, false), listener), source, opts);
}

/** An `https.Server` doing SPIFFE mTLS; requests only arrive from authorized peers. */
export function createSpiffeHttpsServer(source: X509SvidSourceLike, opts: SpiffeTlsOptions, listener?: Parameters<typeof https.createServer>[1]): https.Server {
  const options = serverTlsOptions(source, opts, false);
  const server = listener ? https.createServer(options, listener) : https.createServer(options);
  return guardTlsServer(server, source, opts);
}

/** The verified SPIFFE ID of the peer on an authorized socket (client or server side). */
export function peerSpiffeId(socket: tls.TLSSocket): SpiffeId {
  const uris = parseCertificate(socket.getPeerCertificate().raw).uriSans;
  return SpiffeId.parse(uris[0] as string);
}
