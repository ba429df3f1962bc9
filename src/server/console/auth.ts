/**
 * @module server/console/auth
 *
 * Who may read the console: an admin over mTLS (an X509-SVID of our trust domain, verified
 * against the served bundle, whose SPIFFE ID is registered in an unexpired entry with
 * `admin: true`, as server/auth recognises admins on the API), or whoever holds the
 * configured bearer token (`Authorization: Bearer …`, or the session cookie a POST /login
 * with the token sets). Nothing else: no anonymous page but the login form.
 *
 * Threats it stops:
 * - Token guessing by timing: the presented token is hashed (SHA-256) and compared with
 *   the configured hash by `timingSafeEqual`, equal lengths always.
 * - A token in URLs, logs or history: the token is accepted only in a header or a POST
 *   body, never in a query string; the session cookie is random (256 bits), HttpOnly,
 *   Secure, SameSite=Strict, kept only as its hash, and expires.
 * - Privilege by path: a valid SVID that is not an admin's (a workload, an agent) gets 403,
 *   and so does a scoped registrar (server.conf `registrars`): the console shows every
 *   entry, which its scope does not bound.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Bundle } from '../../spiffe/bundle/bundle.js';
import { verifyX509Svid } from '../../spiffe/x509/verify.js';
import type { SpiffeId } from '../../spiffe/id.js';

export const SESSION_COOKIE = 'mayfly_console';
const MAX_SESSIONS = 256;

/** What the console needs to recognise an admin SVID (the datastore and server.conf satisfy it). */
export interface ConsoleAdmins {
  /** Whether `id` is registered in an unexpired admin entry at `now` (unix seconds). */
  isAdmin(id: SpiffeId, now: number): Promise<boolean>;
  /** Whether `id` is a scoped registrar (server.conf `registrars`). */
  isScoped(id: SpiffeId): boolean;
}

export interface ConsoleAuthConfig {
  /** The served bundle (every authority of the trust domain). */
  bundle(): Bundle;
  admins: ConsoleAdmins;
  /** SHA-256 of the bearer token; absent: no token works. */
  tokenSha256?: Buffer;
  sessionTtlSeconds: number;
  now(): Date;
}

export type ConsoleCaller = { readonly kind: 'token' } | { readonly kind: 'session' } | { readonly kind: 'admin'; readonly spiffeId: string };

export type AuthOutcome = { readonly ok: true; readonly caller: ConsoleCaller } | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

function peerChain(cert: PeerCertificate | undefined): Buffer[] {
  const out: Buffer[] = [];
  let c = cert as (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined;
  while (c !== undefined && c.raw !== undefined && out.length < 10) {
    out.push(c.raw);
    const next = c.issuerCertificate;
    if (next === undefined || next === c || next.raw?.equals(c.raw)) break;
    c = next;
  }
  return out;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const hash = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class ConsoleAuth {
  readonly #cfg: ConsoleAuthConfig;
  /** Session ID hash (hex) → expiry (ms). */
  readonly #sessions = new Map<string, number>();

  constructor(cfg: ConsoleAuthConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.bundle !== 'function' || cfg.admins === undefined) throw new TypeError('ConsoleAuth needs { bundle, admins, sessionTtlSeconds, now }');
    if (cfg.tokenSha256 !== undefined && cfg.tokenSha256.length !== 32) throw new TypeError('ConsoleAuth: tokenSha256 must be 32 bytes');
    this.#cfg = cfg;
  }

  /** Constant-time check of a presented bearer token against the configured one. */
  checkToken(token: string): boolean {
    const want = this.#cfg.tokenSha256;
    if (want === undefined) return false;
    return timingSafeEqual(hash(token), want);
  }

  /** A new session (after a good login): the cookie value to set. */
  openSession(): string {
    const id = randomBytes(32).toString('base64url');
    const nowMs = this.#cfg.now().getTime();
    for (const [k, exp] of this.#sessions) if (exp <= nowMs) this.#sessions.delete(k);
    while (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value as string);
    this.#sessions.set(hash(id).toString('hex'), nowMs + this.#cfg.sessionTtlSeconds * 1000);
    return id;
  }

  /** The Set-Cookie header value for a session ID. */
  sessionCookie(id: string): string {
    return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${this.#cfg.sessionTtlSeconds}; HttpOnly; Secure; SameSite=Strict`;
  }

  #session(id: string): boolean {
    const key = hash(id).toString('hex');
    const exp = this.#sessions.get(key);
    if (exp === undefined) return false;
    if (exp <= this.#cfg.now().getTime()) {
      this.#sessions.delete(key);
      return false;
    }
    return true;
  }

  /** Judges a request: a bearer token, then a session cookie, then the client certificate. */
  async authenticate(req: IncomingMessage): Promise<AuthOutcome> {
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Bearer ([^\s]+)$/i.exec(authz.trim());
      if (m === null) return { ok: false, status: 401, reason: 'the Authorization header must be "Bearer <token>"' };
      return this.checkToken(m[1]!) ? { ok: true, caller: { kind: 'token' } } : { ok: false, status: 401, reason: 'wrong token' };
    }
    const sid = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (sid !== undefined && this.#session(sid)) return { ok: true, caller: { kind: 'session' } };
    const socket = req.socket as Partial<TLSSocket>;
    const chain = typeof socket.getPeerCertificate === 'function' ? peerChain(socket.getPeerCertificate(true)) : [];
    if (chain.length === 0) {
      return { ok: false, status: 401, reason: sid !== undefined ? 'the session has expired: log in again' : 'log in with the console token, or present an admin X509-SVID' };
    }
    const now = this.#cfg.now();
    let id: SpiffeId;
    try {
      id = verifyX509Svid(chain, this.#cfg.bundle(), { now }).spiffeId;
    } catch (err) {
      return { ok: false, status: 401, reason: `the client certificate is no valid X509-SVID of this trust domain: ${(err as Error).message}` };
    }
    if (id.path.startsWith('/spire/agent/')) return { ok: false, status: 403, reason: `${id.toString()} is an agent, not an admin` };
    if (!(await this.#cfg.admins.isAdmin(id, Math.floor(now.getTime() / 1000)))) return { ok: false, status: 403, reason: `${id.toString()} is not an admin` };
    if (this.#cfg.admins.isScoped(id)) return { ok: false, status: 403, reason: `${id.toString()} is a scoped registrar; the console shows every entry, which its scope does not bound` };
    return { ok: true, caller: { kind: 'admin', spiffeId: id.toString() } };
  }
}
