/**
 * @module delegation/exchange
 *
 * OAuth 2.0 Token Exchange (RFC 8693) for AI agents acting for users: the actor is an
 * agent already authenticated by its SVID (the caller of `exchange` verified the mTLS
 * X509-SVID or JWT-SVID `actor_token`); the subject is a user token from the one pinned
 * upstream issuer (issuer, audience, algorithms, keys), or one of our own delegated tokens
 * when a sub-agent re-exchanges. The issued JWT names both: `sub` = the user, `client_id`
 * and `act.sub` = the agent (earlier actors nested in `act.act`, depth capped), `aud` = the
 * one RFC 8707 target, `scope` = requested ∩ policy ∩ user token, life ≤ the user token's
 * and ≤ the cap, bound to the actor's certificate (`cnf.x5t#S256`, RFC 8705) under mTLS.
 * The user token's `groups` and `roles` (string lists) are carried over for the resource
 * server's per-call policy (sdk/authorize-call). Verification is synchronous
 * (delegation/verify-jwt), with keys imported once per JWKS document.
 *
 * Threats: a forged, expired or foreign user token (verified in full, algorithms pinned so
 * `alg: none` and HS256-with-a-public-key are refused by construction); an agent exceeding
 * its user or its mandate (policy, scope intersection, one audience); a stolen delegated
 * token replayed elsewhere (one audience, short life, certificate binding); an unbounded
 * delegation chain (depth cap). Every outcome is reported with both identities.
 */
import { randomUUID, sign, type KeyObject } from 'node:crypto';
import type { JSONWebKeySet, JWTPayload } from 'jose';
import { algorithmSpec, cryptoOptions, keyFitsAlgorithm } from '../spiffe/jwt/algorithms.js';
import { SpiffeId } from '../spiffe/id.js';
import { DelegationError, type DelegationErrorCode } from './delegation-error.js';
import { DEFAULT_MAX_TTL_SECONDS, rulesFor, type DelegationPolicy } from './policy.js';
import { decodeCompactJwt, importJwks, verifyJwt, type DecodedJwt, type VerificationKey } from './verify-jwt.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_ID = 'urn:ietf:params:oauth:token-type:id_token';
const SUBJECT_TOKEN_TYPES = new Set([TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS, TOKEN_TYPE_ID]);

/** Longest subject token accepted (bytes); larger is refused before any parsing. */
export const MAX_SUBJECT_TOKEN_LENGTH = 16 * 1024;
export const DEFAULT_MAX_DEPTH = 3;

export interface UpstreamIssuer {
  readonly issuer: string;
  readonly audience: string;
  /** Pinned algorithms (asymmetric only: RS*, PS*, ES*, EdDSA). */
  readonly algorithms: readonly string[];
  /**
   * Its keys: a JWKS document, a function returning the current one, or a source that can
   * also be asked to refetch (delegation/upstream-jwks, OIDC discovery) when a token names
   * a `kid` it lacks. Keys are imported once per document object, not per request.
   */
  readonly jwks: JSONWebKeySet | (() => JSONWebKeySet) | UpstreamKeySource;
}

/** Keys that may be absent for a while (the issuer down) and can be refetched on demand. */
export interface UpstreamKeySource {
  /** The current JWKS, or undefined while none was fetched. */
  current(): JSONWebKeySet | undefined;
  /** Refetches (rate-limited by the source); never rejects. */
  refresh(): Promise<void>;
}

export interface DelegationSigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: KeyObject;
}

export interface ExchangeRecord {
  readonly event: 'token_exchange';
  readonly outcome: 'issued' | 'refused';
  readonly actor: string;
  /** The verified user, or (prefixed `unverified:`) what a refused token claimed. */
  readonly user: string | undefined;
  readonly audience?: string;
  readonly scope?: string;
  readonly jti?: string;
  readonly error?: string;
  readonly reason?: string;
  /** The source address, on refusals the endpoint decides itself (rate limit, no actor). */
  readonly address?: string;
}

export interface TokenExchangerConfig {
  /** Our issuer (`iss` of issued tokens; the OIDC discovery issuer). */
  issuer: string;
  trustDomain: string;
  upstream: UpstreamIssuer;
  policy: DelegationPolicy;
  /** The trust domain's current JWT key. */
  signingKey: () => DelegationSigningKey;
  /** Our JWT public keys by kid (to verify a delegated token a sub-agent re-exchanges). */
  ownKeys: () => ReadonlyMap<string, KeyObject>;
  now?: () => Date;
  maxTtlSeconds?: number;
  maxDepth?: number;
  clockToleranceSeconds?: number;
  record?: (r: ExchangeRecord) => void;
}

export interface ExchangeActor {
  /** The agent's SPIFFE ID, from a verified SVID. */
  readonly id: string;
  /** base64url SHA-256 of its certificate's DER when it authenticated by mTLS. */
  readonly x5tS256?: string;
}

export interface ExchangeRequest {
  readonly actor: ExchangeActor;
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  /** RFC 8707 `resource` values (or RFC 8693 `audience`): exactly one target. */
  readonly resources: readonly string[];
  readonly scope?: string;
  readonly requestedTokenType?: string;
}

export interface ExchangeResult {
  readonly access_token: string;
  readonly issued_token_type: typeof TOKEN_TYPE_JWT;
  readonly token_type: 'Bearer' | 'DPoP' | 'N_A';
  readonly expires_in: number;
  readonly scope: string;
}

interface ActClaim {
  sub: string;
  act?: ActClaim;
}

function actDepth(act: unknown): number {
  let d = 0;
  let cur = act;
  while (typeof cur === 'object' && cur !== null && typeof (cur as ActClaim).sub === 'string') {
    d++;
    if (d > 64) break;
    cur = (cur as ActClaim).act;
  }
  return d;
}

function scopesOf(p: JWTPayload): string[] {
  const s = p.scope ?? p.scp;
  if (typeof s === 'string') return s.split(' ').filter((x) => x !== '');
  if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string');
  return [];
}

const stringList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function groupsOf(p: JWTPayload): string[] {
  return stringList(p.groups);
}

export class TokenExchanger {
  readonly #cfg: TokenExchangerConfig;
  readonly #upstreamKeys: () => readonly VerificationKey[] | undefined;
  readonly #refreshUpstream: (() => Promise<void>) | undefined;
  readonly #ownKeys: () => readonly VerificationKey[];
  readonly #now: () => Date;
  readonly #cap: number;
  readonly #maxDepth: number;

  constructor(cfg: TokenExchangerConfig) {
    for (const alg of cfg.upstream.algorithms) {
      if (!/^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$/.test(alg)) {
        throw new DelegationError('ERR_DELEGATION_CONFIG', `delegation upstream algorithms: ${JSON.stringify(alg)} is not an asymmetric JWS algorithm; pin RS256, ES256 or the like`);
      }
    }
    if (cfg.upstream.algorithms.length === 0) throw new DelegationError('ERR_DELEGATION_CONFIG', 'delegation upstream algorithms: name at least one');
    if (cfg.upstream.issuer === cfg.issuer) throw new DelegationError('ERR_DELEGATION_CONFIG', 'delegation upstream issuer must differ from our own issuer');
    this.#cfg = cfg;
    const jwks = cfg.upstream.jwks;
    if (typeof jwks === 'function') {
      this.#upstreamKeys = cachedBy(jwks, importJwks);
    } else if ('current' in jwks && typeof jwks.current === 'function') {
      const source = jwks;
      const imported = cachedBy(() => source.current() ?? NO_JWKS, importJwks);
      this.#upstreamKeys = () => (source.current() === undefined ? undefined : imported());
      this.#refreshUpstream = () => source.refresh();
    } else {
      const doc = jwks as JSONWebKeySet;
      this.#upstreamKeys = cachedBy(() => doc, importJwks);
    }
    this.#ownKeys = cachedBy(cfg.ownKeys, (m) => [...m].map(([kid, key]) => ({ kid, alg: undefined, key })));
    this.#now = cfg.now ?? (() => new Date());
    this.#cap = cfg.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    this.#maxDepth = cfg.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  /** Exchanges; throws DelegationError (its code maps to the OAuth error) and reports every outcome. */
  async exchange(req: ExchangeRequest): Promise<ExchangeResult> {
    let user: string | undefined;
    try {
      const decoded = typeof req.subjectToken === 'string' && req.subjectToken !== '' && req.subjectToken.length <= MAX_SUBJECT_TOKEN_LENGTH ? safeDecode(req.subjectToken) : undefined;
      const claimed = typeof decoded?.claims.sub === 'string' ? decoded.claims.sub.slice(0, 256) : undefined;
      user = claimed === undefined ? undefined : `unverified:${claimed}`;
      if (decoded !== undefined && this.#refreshUpstream !== undefined && this.#wantsRefetch(decoded)) await this.#refreshUpstream();
      return this.#exchange(req, decoded, (u) => (user = u));
    } catch (err) {
      if (err instanceof DelegationError) {
        this.#cfg.record?.({ event: 'token_exchange', outcome: 'refused', actor: req.actor.id, user, audience: req.resources[0], error: err.code, reason: err.message });
      }
      throw err;
    }
  }

  /** A token of the pinned issuer and algorithms whose `kid` we lack (or no keys yet): worth one (rate-limited) refetch. */
  #wantsRefetch(d: DecodedJwt): boolean {
    const up = this.#cfg.upstream;
    if (d.claims.iss !== up.issuer || typeof d.header.alg !== 'string' || !up.algorithms.includes(d.header.alg)) return false;
    const keys = this.#upstreamKeys();
    if (keys === undefined) return true;
    const kid = d.header.kid;
    return typeof kid === 'string' && !keys.some((k) => k.kid === kid);
  }

  #exchange(req: ExchangeRequest, decoded: DecodedJwt | undefined, setUser: (u: string) => void): ExchangeResult {
    const bad = (code: DelegationErrorCode, msg: string): never => {
      throw new DelegationError(code, msg);
    };
    if (typeof req.subjectToken !== 'string' || req.subjectToken === '') bad('ERR_DELEGATION_INVALID_REQUEST', 'subject_token is missing');
    if (req.subjectToken.length > MAX_SUBJECT_TOKEN_LENGTH) bad('ERR_DELEGATION_INVALID_REQUEST', `subject_token is longer than ${MAX_SUBJECT_TOKEN_LENGTH} bytes`);
    if (!SUBJECT_TOKEN_TYPES.has(req.subjectTokenType)) bad('ERR_DELEGATION_INVALID_REQUEST', `subject_token_type ${JSON.stringify(req.subjectTokenType)} is not supported (use ${TOKEN_TYPE_JWT})`);
    if (req.requestedTokenType !== undefined && req.requestedTokenType !== TOKEN_TYPE_JWT && req.requestedTokenType !== TOKEN_TYPE_ACCESS) {
      bad('ERR_DELEGATION_INVALID_REQUEST', `requested_token_type ${JSON.stringify(req.requestedTokenType)} is not supported (use ${TOKEN_TYPE_JWT})`);
    }
    if (req.resources.length !== 1) bad('ERR_DELEGATION_INVALID_TARGET', `name exactly one target with resource (RFC 8707); got ${req.resources.length}`);
    const audience = req.resources[0] as string;

    let actor: SpiffeId;
    try {
      actor = SpiffeId.parse(req.actor.id);
    } catch {
      return bad('ERR_DELEGATION_UNAUTHORIZED_CLIENT', 'the actor presented no valid SPIFFE ID');
    }
    if (actor.trustDomain.name !== this.#cfg.trustDomain) bad('ERR_DELEGATION_UNAUTHORIZED_CLIENT', `actor ${actor.toString()} is not of trust domain ${this.#cfg.trustDomain}`);

    // The subject: the upstream's user token, or our own delegated token (re-exchange).
    const now = this.#now();
    if (decoded === undefined) return bad('ERR_DELEGATION_INVALID_GRANT', 'subject_token is not a JWT');
    const reExchange = decoded.claims.iss === this.#cfg.issuer;
    const upstreamKeys = reExchange ? undefined : this.#upstreamKeys();
    if (!reExchange && upstreamKeys === undefined) bad('ERR_DELEGATION_UNAVAILABLE', `the keys of the upstream issuer ${this.#cfg.upstream.issuer} are not available yet (its discovery document or JWKS could not be fetched); retry later`);
    let payload: JWTPayload;
    try {
      const clockToleranceSeconds = this.#cfg.clockToleranceSeconds ?? 30;
      payload = reExchange
        ? verifyJwt(decoded, this.#ownKeys(), { issuer: this.#cfg.issuer, audience: actor.toString(), algorithms: [this.#cfg.signingKey().alg], now, clockToleranceSeconds })
        : verifyJwt(decoded, upstreamKeys ?? [], { issuer: this.#cfg.upstream.issuer, audience: this.#cfg.upstream.audience, algorithms: this.#cfg.upstream.algorithms, now, clockToleranceSeconds });
    } catch (err) {
      return bad('ERR_DELEGATION_INVALID_GRANT', `subject_token refused: ${(err as Error).message}${reExchange ? ' (a delegated token is re-exchanged only by the agent it was issued to)' : ''}`);
    }
    const sub = payload.sub as string;
    setUser(sub);
    const prevDepth = reExchange ? actDepth(payload.act) : 0;
    if (prevDepth + 1 > this.#maxDepth) bad('ERR_DELEGATION_INVALID_GRANT', `delegation chain would be ${prevDepth + 1} actors deep; the cap is ${this.#maxDepth}`);

    const rules = rulesFor(this.#cfg.policy, actor.toString(), { sub, groups: groupsOf(payload) });
    if (rules.length === 0) bad('ERR_DELEGATION_UNAUTHORIZED_CLIENT', `agent ${actor.toString()} may not act for user ${sub} (no delegation rule)`);
    const forTarget = rules.filter((r) => r.audiences.includes(audience));
    if (forTarget.length === 0) bad('ERR_DELEGATION_INVALID_TARGET', `agent ${actor.toString()} may not act for ${sub} toward ${audience}`);

    const userScopes = new Set(scopesOf(payload));
    const policyScopes = new Set(forTarget.flatMap((r) => r.scopes));
    const grantable = [...policyScopes].filter((s) => userScopes.has(s));
    let scopes: string[];
    if (req.scope !== undefined) {
      const asked = req.scope.split(' ').filter((s) => s !== '');
      const wider = asked.filter((s) => !grantable.includes(s));
      if (wider.length > 0) bad('ERR_DELEGATION_INVALID_SCOPE', `scope ${wider.join(' ')} is not granted to ${actor.toString()} for ${sub} toward ${audience}`);
      scopes = [...new Set(asked)];
    } else {
      scopes = grantable;
    }
    if (scopes.length === 0) bad('ERR_DELEGATION_INVALID_SCOPE', `no scope is granted by both the policy and the user token toward ${audience}`);

    const nowS = Math.floor(now.getTime() / 1000);
    const userLeft = (payload.exp as number) - nowS;
    const ttl = Math.min(this.#cap, Math.max(...forTarget.map((r) => r.maxTtlSeconds)), userLeft);
    if (ttl <= 0) bad('ERR_DELEGATION_INVALID_GRANT', 'subject_token has no life left to delegate');

    const act: ActClaim = { sub: actor.toString() };
    if (reExchange && typeof payload.act === 'object' && payload.act !== null) act.act = payload.act as ActClaim;
    const key = this.#cfg.signingKey();
    const jti = randomUUID();
    const claims: JWTPayload = { sub, client_id: actor.toString(), act, scope: scopes.join(' '), jti };
    const groups = groupsOf(payload);
    if (groups.length > 0) claims.groups = groups;
    const roles = stringList(payload.roles);
    if (roles.length > 0) claims.roles = roles;
    if (req.actor.x5tS256 !== undefined) claims.cnf = { 'x5t#S256': req.actor.x5tS256 };
    const token = signJwt({ iss: this.#cfg.issuer, aud: audience, iat: nowS, exp: nowS + ttl, ...claims }, key);
    this.#cfg.record?.({ event: 'token_exchange', outcome: 'issued', actor: actor.toString(), user: sub, audience, scope: scopes.join(' '), jti });
    return { access_token: token, issued_token_type: TOKEN_TYPE_JWT, token_type: req.actor.x5tS256 === undefined ? 'Bearer' : 'N_A', expires_in: ttl, scope: scopes.join(' ') };
  }
}

/** Signs with node:crypto (the JWS the JWT-SVID signer makes, with our claims). */
function signJwt(claims: JWTPayload, key: DelegationSigningKey): string {
  const spec = algorithmSpec(key.alg);
  if (spec === undefined || !keyFitsAlgorithm(key.privateKey, spec)) throw new TypeError(`signing key ${key.kid} does not fit algorithm ${key.alg}`);
  const input = `${Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(spec.hash, Buffer.from(input, 'latin1'), cryptoOptions(spec, key.privateKey)).toString('base64url')}`;
}

/** `derive(get())`, recomputed only when `get` returns another object (a rotated JWKS or bundle). */
function cachedBy<T extends object, U>(get: () => T, derive: (t: T) => U): () => U {
  let last: T | undefined;
  let value: U | undefined;
  return () => {
    const t = get();
    if (t !== last || value === undefined) {
      value = derive(t);
      last = t;
    }
    return value;
  };
}

const NO_JWKS: JSONWebKeySet = { keys: [] };

function safeDecode(token: string): DecodedJwt | undefined {
  try {
    return decodeCompactJwt(token);
  } catch {
    return undefined;
  }
}
