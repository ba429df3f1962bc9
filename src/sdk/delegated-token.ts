/**
 * @module sdk/delegated-token
 *
 * What a resource server (an MCP server, an API) runs on a delegated token from Mayfly's
 * token exchange (RFC 8693): signature by a JWT authority of the issuing trust domain's
 * bundle, `iss`, `exp`, our audience only, the `act` chain, and — when the caller presented
 * a client certificate and the token carries `cnf.x5t#S256` — that the token belongs to
 * that certificate (RFC 8705).
 *
 * Threats: a token minted for another service replayed here (audience pinned, no
 * passthrough); a stolen certificate-bound token used from another TLS client (binding
 * checked); a token without an actor passed off as the user's own (`act` required).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { jwtVerify, type JWTPayload } from 'jose';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { MayflyError } from '../spiffe/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import type { SdkErrorCode } from './errors.js';

export class DelegatedTokenError extends MayflyError<SdkErrorCode> {
  constructor(message: string) {
    super('ERR_DELEGATED_TOKEN_INVALID', message);
  }
}

export interface DelegatedTokenOptions {
  /** Our own audience (the `resource` the agent asked for). */
  audience: string;
  /** The issuer expected (`iss`, the server's OIDC issuer). */
  issuer: string;
  /** Where the issuing trust domain's JWT keys come from (a JwtSource or BundleSource). */
  bundleSource: { getBundleForTrustDomain(td: TrustDomain | string): Bundle };
  trustDomain: string;
  /** The TLS client's certificate (DER), to check `cnf.x5t#S256`. Bound tokens are refused without it. */
  peerCertificate?: Uint8Array;
  now?: Date;
  clockToleranceSeconds?: number;
}

export interface DelegatedToken {
  readonly user: string;
  /** Actors, most recent first (the caller, then whoever delegated to it). */
  readonly actorChain: readonly string[];
  readonly scope: readonly string[];
  readonly claims: JWTPayload;
}

/** Verifies a delegated token; throws DelegatedTokenError saying why not. */
export async function validateDelegatedToken(token: string, opts: DelegatedTokenOptions): Promise<DelegatedToken> {
  if (typeof token !== 'string' || token.length > 16 * 1024) throw new DelegatedTokenError('the delegated token is missing or longer than 16 KiB');
  const bundle = opts.bundleSource.getBundleForTrustDomain(TrustDomain.parse(opts.trustDomain));
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      (h) => {
        const k = h.kid === undefined ? undefined : bundle.jwtAuthorities.get(h.kid);
        if (k === undefined) throw new Error(`kid ${JSON.stringify(h.kid)} is in no JWT authority of ${opts.trustDomain}`);
        return k;
      },
      { issuer: opts.issuer, audience: opts.audience, algorithms: ['ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'], currentDate: opts.now, clockTolerance: opts.clockToleranceSeconds ?? 30, requiredClaims: ['exp', 'sub', 'act'] },
    ));
  } catch (err) {
    throw new DelegatedTokenError(`the delegated token does not verify: ${(err as Error).message}`);
  }
  if (Array.isArray(payload.aud) && payload.aud.length !== 1) throw new DelegatedTokenError('a delegated token names exactly one audience');
  const chain: string[] = [];
  let act = payload.act as { sub?: unknown; act?: unknown } | undefined;
  while (typeof act === 'object' && act !== null && typeof act.sub === 'string' && chain.length < 16) {
    chain.push(act.sub);
    act = act.act as typeof act;
  }
  if (chain.length === 0) throw new DelegatedTokenError('the token has no act claim: it is no delegated token');
  const cnf = payload.cnf as Record<string, unknown> | undefined;
  const bound = cnf?.['x5t#S256'];
  if (bound !== undefined) {
    if (opts.peerCertificate === undefined) throw new DelegatedTokenError('the token is bound to a client certificate (cnf.x5t#S256) but the caller presented none');
    const der = new X509Certificate(Buffer.from(opts.peerCertificate)).raw;
    if (createHash('sha256').update(der).digest('base64url') !== bound) throw new DelegatedTokenError('the token is bound to another client certificate than the caller presented');
  }
  const scope = typeof payload.scope === 'string' ? payload.scope.split(' ').filter((s) => s !== '') : [];
  return { user: payload.sub as string, actorChain: chain, scope, claims: payload };
}
