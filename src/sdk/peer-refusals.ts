/**
 * @module sdk/peer-refusals
 *
 * How a guarded TLS server (`guardTlsServer`, sdk/tls) tells of a peer it refused, so the
 * operator reads `refused TLS peer spiffe://example.org/web from 10.0.0.7:51234: peer SPIFFE
 * ID spiffe://example.org/web is not the expected spiffe://example.org/api` instead of a bare
 * `ECONNRESET`. Every refusal (the authorizer's, SPIFFE verification's, a chain that does not
 * verify against the bundle roots, a failed handshake) is emitted on the server as
 * `PEER_REJECTED_EVENT` with a `PeerAuthorizationError` (`ERR_PEER_UNAUTHORIZED`) whose
 * message names the peer's SPIFFE ID (as its certificate claims it) and address, and whose
 * `peer` holds both. When nothing listens for that event, the helper logs the message itself
 * (`SpiffeTlsOptions.log`, default `console.warn`).
 *
 * Threat: anyone who can reach the port can fail a handshake, so a flood of refusals must not
 * become a flood of log lines: the helper's own log writes at most `REFUSAL_LOG_BURST` lines
 * per `REFUSAL_LOG_WINDOW_MS` and then says how many it left out. The event is not limited
 * (a listener decides for itself).
 */
import type { EventEmitter } from 'node:events';
import type tls from 'node:tls';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { PeerAuthorizationError, type RefusedPeer } from './errors.js';

/** Emitted on a guarded server for every refused client: `(err: PeerAuthorizationError, socket)`. */
export const PEER_REJECTED_EVENT = 'spiffePeerRejected';
/** Lines the helper's own log writes per window before it starts counting instead. */
export const REFUSAL_LOG_BURST = 10;
export const REFUSAL_LOG_WINDOW_MS = 60_000;

/** `host:port` of the socket's remote end, if it still knows it (a destroyed socket may not). */
function addressOf(socket: tls.TLSSocket): string | undefined {
  const host = socket.remoteAddress;
  if (host === undefined) return undefined;
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? '?'}`;
}

/** The SPIFFE ID the leaf claims (one URI SAN), unverified; undefined when it claims none. */
function claimedId(chain: readonly Buffer[]): string | undefined {
  const leaf = chain[0];
  if (leaf === undefined) return undefined;
  try {
    const uris = parseCertificate(leaf).uriSans;
    return uris.length === 1 && uris[0]?.startsWith('spiffe://') === true ? uris[0] : undefined;
  } catch {
    return undefined;
  }
}

/** Why OpenSSL's chain check failed (`socket.authorizationError`), in words; `presented`: the peer sent a certificate. */
export function chainProblem(code: string | Error | null | undefined, presented: boolean): string {
  if (!presented) return 'it presented no certificate';
  const c = typeof code === 'string' ? code : code?.message;
  return `its certificate chain does not verify against this workload's bundle roots (${c === undefined || c === '' ? 'not verified' : c})`;
}

/**
 * `spiffe://... from host:port`, and the same as a RefusedPeer. `chain` undefined: what the
 * peer presented is no longer known (a socket Node already destroyed).
 */
function describePeer(socket: tls.TLSSocket, chain: readonly Buffer[] | undefined): { who: string; peer: RefusedPeer } {
  const peer: { spiffeId?: string; address?: string } = {};
  const id = chain === undefined ? undefined : claimedId(chain);
  if (id !== undefined) peer.spiffeId = id;
  const address = addressOf(socket);
  if (address !== undefined) peer.address = address;
  const name = peer.spiffeId ?? (chain === undefined ? undefined : '(no SPIFFE ID)');
  const from = address === undefined ? '' : ` from ${address}`;
  return { who: name === undefined ? `a TLS peer${from}` : `TLS peer ${name}${from}`, peer };
}

/** The refusal of the peer on `socket` (which presented `chain`) for `reason`, naming the peer. */
export function peerRefusal(reason: unknown, socket: tls.TLSSocket, chain: readonly Buffer[] | undefined): PeerAuthorizationError {
  const { who, peer } = describePeer(socket, chain);
  const why = reason instanceof Error ? reason.message : String(reason);
  return new PeerAuthorizationError(`refused ${who}: ${why}`, { cause: reason, peer });
}

/** The refusal for a handshake that failed before the guard saw the socket (`tlsClientError`). */
export function handshakeRefusal(err: Error & { code?: string }, socket: tls.TLSSocket): PeerAuthorizationError {
  let chain: Buffer[] | undefined;
  try {
    const cert = socket.getPeerCertificate();
    if (cert?.raw !== undefined) chain = [cert.raw];
  } catch {
    // The handle is gone: nothing to name the peer by.
  }
  // A server with rejectUnauthorized (not one of ours) destroys a socket whose chain failed
  // verification and reports a hang-up; the verification result is the real reason.
  const verdict = socket.authorizationError as string | Error | null | undefined;
  if (verdict !== null && verdict !== undefined) return peerRefusal(new Error(chainProblem(verdict, chain === undefined || chain.length > 0)), socket, chain);
  const { peer } = describePeer(socket, chain);
  const why =
    err.code === 'ECONNRESET'
      ? 'the peer closed the connection during the handshake (ECONNRESET); a SPIFFE client does that when it refuses this server\'s SVID'
      : `${err.message}${err.code === undefined || err.message.includes(err.code) ? '' : ` (${err.code})`}`;
  const parts = [peer.spiffeId === undefined ? '' : ` with ${peer.spiffeId}`, peer.address === undefined ? '' : ` from ${peer.address}`].join('');
  return new PeerAuthorizationError(`TLS handshake${parts} failed: ${why}`, { cause: err, peer });
}

export interface RefusalReporterConfig {
  server: EventEmitter;
  /** The helper's own log, used when nothing listens for PEER_REJECTED_EVENT. */
  log: (line: string) => void;
  now: () => Date;
}

/** Emits each refusal on the server, or logs it (bounded) when nothing listens. */
export class RefusalReporter {
  readonly #cfg: RefusalReporterConfig;
  #windowStart = Number.NEGATIVE_INFINITY;
  #logged = 0;
  #suppressed = 0;

  constructor(cfg: RefusalReporterConfig) {
    this.#cfg = cfg;
  }

  report(err: PeerAuthorizationError, socket: tls.TLSSocket): void {
    if (this.#cfg.server.listenerCount(PEER_REJECTED_EVENT) > 0) {
      this.#cfg.server.emit(PEER_REJECTED_EVENT, err, socket);
      return;
    }
    const t = this.#cfg.now().getTime();
    if (t - this.#windowStart >= REFUSAL_LOG_WINDOW_MS) {
      const left = this.#suppressed;
      this.#windowStart = t;
      this.#logged = 0;
      this.#suppressed = 0;
      if (left > 0) this.#cfg.log(`mayfly sdk: ${left} more refused TLS peers were not logged in the last ${REFUSAL_LOG_WINDOW_MS / 1000} s`);
    }
    if (this.#logged >= REFUSAL_LOG_BURST) {
      this.#suppressed++;
      return;
    }
    this.#logged++;
    this.#cfg.log(`mayfly sdk: ${err.message}`);
  }
}
