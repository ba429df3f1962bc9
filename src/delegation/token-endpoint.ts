/**
 * @module delegation/token-endpoint
 *
 * The HTTP face of the token exchange (RFC 8693 §2): `POST` form-encoded
 * `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, answered with the RFC 8693
 * §2.2 JSON or an RFC 6749 §5.2 error (`Cache-Control: no-store` on both). The actor is
 * whoever the TLS handshake proved (its X509-SVID verified here against the trust bundle)
 * or, without a client certificate, the JWT-SVID in `actor_token` (verified against the JWT
 * bundle, audience = our issuer). The listener (TLS with `requestCert`, limits) is the
 * composer's.
 *
 * Threat: an actor named by a claim it makes. Nothing in the form names the actor unless it
 * is a signed SVID of our trust domain; a client certificate that does not verify is refused,
 * never ignored in favour of a weaker credential.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { validateJwtSvid } from '../spiffe/jwt/validate.js';
import { verifyX509Svid, type X509BundleInput } from '../spiffe/x509/verify.js';
import { DelegationError, httpStatus, oauthError } from './delegation-error.js';
import { addressKey, type TokenBuckets } from './rate-limit.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_JWT, type ExchangeActor, type ExchangeRecord, type TokenExchanger } from './exchange.js';

export const MAX_TOKEN_REQUEST_BYTES = 64 * 1024;
const JWT_SVID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const SINGLE = ['grant_type', 'subject_token', 'subject_token_type', 'scope', 'requested_token_type', 'actor_token', 'actor_token_type'];

export interface TokenEndpointConfig {
  exchanger: TokenExchanger;
  /** Our trust domain's X.509 authorities (to verify the client certificate). */
  x509Bundle: () => X509BundleInput;
  /** Our trust domain's JWT bundle (to verify an `actor_token` JWT-SVID). */
  jwtBundle: () => Bundle;
  /** The audience an `actor_token` must carry (our issuer). */
  actorTokenAudience: string;
  now?: () => Date;
  /** Refusals decided before the exchange (no actor), with what is known of both identities. */
  record?: (r: ExchangeRecord) => void;
  /**
   * Token buckets: `perAddress` is taken before the body is read, `perActor` once the actor
   * is authenticated (before the subject token is verified). Over either: HTTP 429,
   * `temporarily_unavailable`, `Retry-After`. Each key has its own bucket.
   */
  rateLimit?: { readonly perActor?: TokenBuckets; readonly perAddress?: TokenBuckets };
}

/** Seconds a client is told to wait (Retry-After) while the upstream issuer's keys are missing. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

class RateLimited extends DelegationError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('ERR_DELEGATION_RATE_LIMITED', message);
  }
}

function send(res: ServerResponse, status: number, body: object, extra: Record<string, string> = {}): void {
  const b = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', 'content-length': String(b.length), ...extra });
  res.end(b);
}

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

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > MAX_TOKEN_REQUEST_BYTES) {
        reject(new DelegationError('ERR_DELEGATION_INVALID_REQUEST', `the request body is larger than ${MAX_TOKEN_REQUEST_BYTES} bytes`));
        req.resume();
        return;
      }
      parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/** A request handler for the token endpoint. */
export function tokenEndpointHandler(cfg: TokenEndpointConfig): (req: IncomingMessage, res: ServerResponse) => void {
  const now = cfg.now ?? (() => new Date());
  const bad = (msg: string): never => {
    throw new DelegationError('ERR_DELEGATION_INVALID_REQUEST', msg);
  };
  const actorOf = (req: IncomingMessage, form: URLSearchParams): ExchangeActor => {
    const socket = req.socket as Partial<TLSSocket>;
    const chain = typeof socket.getPeerCertificate === 'function' ? peerChain(socket.getPeerCertificate(true)) : [];
    if (chain.length > 0) {
      let id: string;
      try {
        id = verifyX509Svid(chain, cfg.x509Bundle(), { now: now() }).spiffeId.toString();
      } catch (err) {
        throw new DelegationError('ERR_DELEGATION_UNAUTHORIZED_CLIENT', `the client certificate is no X509-SVID of our trust domain: ${(err as Error).message}`);
      }
      if (form.has('actor_token')) bad('send actor_token or a client certificate, not both');
      return { id, x5tS256: createHash('sha256').update(chain[0] as Buffer).digest('base64url') };
    }
    const token = form.get('actor_token');
    if (token === null) throw new DelegationError('ERR_DELEGATION_UNAUTHORIZED_CLIENT', 'the actor must authenticate: present its X509-SVID over mTLS or a JWT-SVID as actor_token');
    if (form.get('actor_token_type') !== JWT_SVID_TOKEN_TYPE) bad(`actor_token_type must be ${JWT_SVID_TOKEN_TYPE}`);
    try {
      return { id: validateJwtSvid(token, { audience: cfg.actorTokenAudience, bundles: cfg.jwtBundle(), now: now() }).spiffeId.toString() };
    } catch (err) {
      throw new DelegationError('ERR_DELEGATION_UNAUTHORIZED_CLIENT', `actor_token is no valid JWT-SVID of our trust domain for ${cfg.actorTokenAudience}: ${(err as Error).message}`);
    }
  };
  return (req, res) => {
    if (req.method !== 'POST') {
      send(res, 405, { error: 'invalid_request', error_description: 'use POST' }, { allow: 'POST' });
      return;
    }
    let actorId = '';
    const address = req.socket.remoteAddress ?? '';
    let logRefusal = true;
    const limit = (buckets: TokenBuckets | undefined, key: string, who: string): void => {
      const t = buckets?.take(key);
      if (t === undefined || t.ok) return;
      logRefusal = t.first; // one log line when a key starts being limited, not one per request
      throw new RateLimited(`${who} is over its rate limit for token exchanges; retry after ${t.retryAfterSeconds}s`, t.retryAfterSeconds);
    };
    void (async () => {
      limit(cfg.rateLimit?.perAddress, addressKey(address), `source address ${addressKey(address)}`);
      if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) bad('the body must be application/x-www-form-urlencoded');
      const form = new URLSearchParams(await readBody(req));
      for (const k of SINGLE) if (form.getAll(k).length > 1) bad(`parameter ${k} is repeated`);
      if (form.get('grant_type') !== TOKEN_EXCHANGE_GRANT) bad(`grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
      const actor = actorOf(req, form);
      actorId = actor.id;
      limit(cfg.rateLimit?.perActor, actor.id, `actor ${actor.id}`);
      const out = await cfg.exchanger.exchange({
        actor,
        subjectToken: form.get('subject_token') ?? '',
        subjectTokenType: form.get('subject_token_type') ?? '',
        resources: [...form.getAll('resource'), ...form.getAll('audience')],
        scope: form.get('scope') ?? undefined,
        requestedTokenType: form.get('requested_token_type') ?? TOKEN_TYPE_JWT,
      });
      send(res, 200, out);
    })().catch((err: unknown) => {
      if (err instanceof RateLimited) {
        if (logRefusal) cfg.record?.({ event: 'token_exchange', outcome: 'refused', actor: actorId === '' ? '(unauthenticated)' : actorId, user: undefined, address, error: err.code, reason: err.message });
        send(res, 429, { error: oauthError(err.code), error_description: err.message }, { 'retry-after': String(err.retryAfterSeconds) });
      } else if (err instanceof DelegationError) {
        if (actorId === '') cfg.record?.({ event: 'token_exchange', outcome: 'refused', actor: '(unauthenticated)', user: undefined, address, error: err.code, reason: err.message });
        const status = httpStatus(err.code);
        send(res, status, { error: oauthError(err.code), error_description: err.message }, status === 503 ? { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_SECONDS) } : {});
      } else {
        send(res, 500, { error: 'server_error', error_description: 'the token exchange failed; see the server log' });
      }
    });
  };
}
