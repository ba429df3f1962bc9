/**
 * @module sdk/exchange-for-user
 *
 * What an AI agent (a workload with a Mayfly SVID) runs to act for a user: an OAuth 2.0
 * Token Exchange (RFC 8693) at Mayfly's token endpoint, the user's token as
 * `subject_token`, one RFC 8707 `resource` (the service it will call) and the scope it
 * needs. The agent authenticates with its X509-SVID over mTLS (the issued token is then
 * bound to that certificate, RFC 8705 `cnf.x5t#S256`), or with a JWT-SVID as
 * `actor_token` when `actorToken` is given; either way the endpoint's own X509-SVID is
 * verified against the source's bundle and authorised (default: the trust domain's
 * `spire/server` ID, which is what Mayfly's endpoint presents unless configured otherwise).
 *
 * Threats: handing the user's token to an impostor endpoint (server SVID verified and
 * authorised before a byte is sent; no redirects followed; no connection pooling across
 * identities); an endpoint answer that would make the agent act outside what it asked for
 * (the token's `aud` must be the one audience asked, its actor the agent itself, its scope
 * within the request, a bound token bound to the certificate this connection presented);
 * an unbounded or slow answer (64 KiB cap, timeout). The token is decoded here, not
 * verified: the resource server verifies it (sdk/delegated-token).
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { SpiffeId } from '../spiffe/id.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { actorChainOf, decodeClaims } from './delegated-claims.js';
import { TokenExchangeError } from './errors.js';
import { authorizeId, spiffeConnectOptions, type Authorizer, type X509SvidSourceLike } from './tls.js';

export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
/** Longest answer read from the endpoint (bytes). */
export const MAX_EXCHANGE_RESPONSE_BYTES = 64 * 1024;
const MAX_TOKEN_LENGTH = 16 * 1024;
export const DEFAULT_EXCHANGE_TIMEOUT_MS = 10_000;

export interface ExchangeForUserOptions {
  /** The one service the delegated token is for (RFC 8707 `resource`; its `aud`). */
  readonly audience: string;
  /** Scopes asked for (a list, or space-separated); omitted: all the policy and the user token grant. */
  readonly scope?: string | readonly string[];
  /** The token endpoint, `https://host:port/token` (Mayfly: `server.delegation`). */
  readonly endpoint: string | URL;
  /** Who the endpoint must be; default `authorizeId('spiffe://<our trust domain>/spire/server')`. */
  readonly authorizeServer?: Authorizer;
  /** A JWT-SVID (audience: the server's issuer) to authenticate with instead of the X509-SVID; the token is then unbound. */
  readonly actorToken?: string;
  /** `subject_token_type`; default `urn:ietf:params:oauth:token-type:jwt`. */
  readonly subjectTokenType?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface UserDelegatedToken {
  /** The delegated JWT: send it as `Authorization: Bearer …` to `audience`. */
  readonly accessToken: string;
  /** `N_A` for a certificate-bound token (present the same SVID), else `Bearer`. */
  readonly tokenType: string;
  readonly issuedTokenType: string;
  readonly expiresIn: number;
  readonly expiresAt: Date;
  readonly audience: string;
  readonly scope: readonly string[];
  /** The user (`sub`). */
  readonly user: string;
  /** Actors, most recent first: this workload, then whoever delegated to it. */
  readonly actorChain: readonly string[];
  /** base64url SHA-256 of the certificate the token is bound to (`cnf.x5t#S256`), when bound. */
  readonly boundCertificateSha256?: string;
  /** Every claim, decoded (not verified). */
  readonly claims: Readonly<Record<string, unknown>>;
}

const failed = (msg: string, cause?: unknown): TokenExchangeError => new TokenExchangeError('ERR_TOKEN_EXCHANGE_FAILED', msg, cause === undefined ? undefined : { cause });

function checkArgs(source: X509SvidSourceLike, userToken: string, o: ExchangeForUserOptions): { url: URL; scope: string[] | undefined } {
  if (typeof source?.getX509Svid !== 'function' || typeof source.getX509Bundles !== 'function') throw new TypeError('exchangeForUser needs an X509Source (or anything with getX509Svid and getX509Bundles)');
  if (typeof userToken !== 'string' || userToken === '') throw new TypeError('exchangeForUser needs the user token as a non-empty string');
  if (typeof o !== 'object' || o === null) throw new TypeError('exchangeForUser needs options { audience, endpoint, scope? }');
  if (typeof o.audience !== 'string' || o.audience === '') throw new TypeError('exchangeForUser: audience must be a non-empty string (the service the token is for)');
  let url: URL;
  try {
    url = new URL(o.endpoint);
  } catch {
    throw new TypeError(`exchangeForUser: endpoint ${JSON.stringify(String(o.endpoint))} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new TypeError('exchangeForUser: the endpoint must be https:// (the user token never travels in the clear)');
  let scope: string[] | undefined;
  if (o.scope !== undefined) {
    const list = typeof o.scope === 'string' ? o.scope.split(' ').filter((s) => s !== '') : o.scope;
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s !== '' && !/\s/.test(s))) throw new TypeError('exchangeForUser: scope must be a list of scope names without whitespace, or one space-separated string');
    if (list.length === 0) throw new TypeError('exchangeForUser: scope names no scope; omit it to ask for everything granted');
    scope = [...list];
  }
  if (o.timeoutMs !== undefined && (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0)) throw new TypeError('exchangeForUser: timeoutMs must be a positive number');
  if (o.actorToken !== undefined && (typeof o.actorToken !== 'string' || o.actorToken === '')) throw new TypeError('exchangeForUser: actorToken must be a non-empty JWT-SVID');
  if (o.authorizeServer !== undefined && typeof o.authorizeServer !== 'function') throw new TypeError('exchangeForUser: authorizeServer must be an Authorizer (authorizeId, authorizeOneOf, ...)');
  return { url, scope };
}

interface Answer {
  status: number;
  body: string;
  /** The DER of the certificate this side presented, if any. */
  presented: Buffer | undefined;
}

function post(url: URL, form: URLSearchParams, tlsOptions: tls.ConnectionOptions, timeoutMs: number, signal: AbortSignal | undefined): Promise<Answer> {
  const body = form.toString();
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        ...tlsOptions,
        agent: false,
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port === '' ? 443 : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
        ...(signal !== undefined ? { signal } : {}),
      },
      (res) => {
        const parts: Buffer[] = [];
        let n = 0;
        res.on('data', (d: Buffer) => {
          n += d.length;
          if (n > MAX_EXCHANGE_RESPONSE_BYTES) {
            req.destroy(failed(`the token endpoint's answer is larger than ${MAX_EXCHANGE_RESPONSE_BYTES} bytes`));
            return;
          }
          parts.push(d);
        });
        res.on('end', () => {
          const own = (res.socket as tls.TLSSocket | null)?.getCertificate?.();
          const presented = own !== null && own !== undefined && 'raw' in own ? own.raw : undefined;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8'), presented });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(failed(`the token endpoint did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Exchanges `userToken` for a delegated token naming the user and this workload, for one
 * `audience`. Throws TokenExchangeError (ERR_TOKEN_EXCHANGE_REFUSED with `oauthError`, or
 * ERR_TOKEN_EXCHANGE_FAILED) and TypeError for misuse.
 */
export async function exchangeForUser(source: X509SvidSourceLike, userToken: string, options: ExchangeForUserOptions): Promise<UserDelegatedToken> {
  const { url, scope } = checkArgs(source, userToken, options);
  const svid = source.getX509Svid();
  const authorize = options.authorizeServer ?? authorizeId(SpiffeId.parse(`spiffe://${svid.id.trustDomain.name}/spire/server`));
  let tlsOptions: tls.ConnectionOptions = spiffeConnectOptions(source, { authorize });
  if (options.actorToken !== undefined) {
    // Present no client certificate: the JWT-SVID is the credential. Still verify the server.
    const roots = [...source.getX509Bundles()].flatMap((b) => [...b.x509Authorities]);
    const { secureContext: _omit, ...rest } = tlsOptions;
    tlsOptions = { ...rest, secureContext: tls.createSecureContext({ ca: pemEncodeCertificates(roots), minVersion: 'TLSv1.2' }) };
  }
  const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT_TYPE, subject_token: userToken, subject_token_type: options.subjectTokenType ?? JWT_TOKEN_TYPE, resource: options.audience, requested_token_type: JWT_TOKEN_TYPE });
  if (scope !== undefined) form.set('scope', scope.join(' '));
  if (options.actorToken !== undefined) {
    form.set('actor_token', options.actorToken);
    form.set('actor_token_type', JWT_TOKEN_TYPE);
  }
  let answer: Answer;
  try {
    answer = await post(url, form, tlsOptions, options.timeoutMs ?? DEFAULT_EXCHANGE_TIMEOUT_MS, options.signal);
  } catch (err) {
    if (err instanceof TokenExchangeError) throw err;
    throw failed(`the token exchange at ${url.origin} failed: ${(err as Error).message}`, err);
  }
  let json: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(answer.body);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    json = v as Record<string, unknown>;
  } catch (cause) {
    throw new TokenExchangeError('ERR_TOKEN_EXCHANGE_FAILED', `the token endpoint answered HTTP ${answer.status} without a JSON object`, { cause, status: answer.status });
  }
  if (answer.status !== 200) {
    const oauthError = typeof json.error === 'string' ? json.error.slice(0, 64) : 'server_error';
    const description = typeof json.error_description === 'string' ? json.error_description.slice(0, 1024) : '';
    throw new TokenExchangeError('ERR_TOKEN_EXCHANGE_REFUSED', `the token exchange was refused (${oauthError}): ${description || `HTTP ${answer.status}`}`, { oauthError, description, status: answer.status });
  }
  const token = json.access_token;
  if (typeof token !== 'string' || token === '' || token.length > MAX_TOKEN_LENGTH) throw failed('the answer has no access_token (or one longer than 16 KiB)');
  if (json.issued_token_type !== JWT_TOKEN_TYPE) throw failed(`issued_token_type is ${JSON.stringify(json.issued_token_type)}, not ${JWT_TOKEN_TYPE}`);
  const claims = decodeClaims(token);
  const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
  if (aud !== options.audience) throw failed(`the issued token is for ${JSON.stringify(claims.aud)}, not the audience asked (${options.audience})`);
  if (typeof claims.sub !== 'string' || claims.sub === '') throw failed('the issued token names no user (sub)');
  if (typeof claims.exp !== 'number') throw failed('the issued token has no exp');
  const actorChain = actorChainOf(claims);
  if (options.actorToken === undefined && actorChain[0] !== svid.id.toString()) throw failed(`the issued token's actor is ${JSON.stringify(actorChain[0])}, not this workload (${svid.id.toString()})`);
  const granted = typeof claims.scope === 'string' ? claims.scope.split(' ').filter((s) => s !== '') : [];
  if (scope !== undefined && granted.some((s) => !scope.includes(s))) throw failed(`the issued token carries scope ${granted.join(' ')}, beyond what was asked (${scope.join(' ')})`);
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  const bound = typeof cnf?.['x5t#S256'] === 'string' ? (cnf['x5t#S256'] as string) : undefined;
  if (bound !== undefined) {
    const mine = answer.presented === undefined ? undefined : createHash('sha256').update(answer.presented).digest('base64url');
    if (mine !== bound) throw failed('the issued token is bound to another certificate than the one this workload presented');
  }
  return {
    accessToken: token,
    tokenType: typeof json.token_type === 'string' ? json.token_type : 'Bearer',
    issuedTokenType: JWT_TOKEN_TYPE,
    expiresIn: typeof json.expires_in === 'number' ? json.expires_in : Math.max(0, claims.exp - Math.floor(Date.now() / 1000)),
    expiresAt: new Date(claims.exp * 1000),
    audience: options.audience,
    scope: granted,
    user: claims.sub,
    actorChain,
    ...(bound !== undefined ? { boundCertificateSha256: bound } : {}),
    claims,
  };
}
