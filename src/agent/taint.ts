/**
 * @module agent/taint
 *
 * Which of the agent's SVIDs a tainted authority affects. The server names tainted X.509
 * authorities by their ID (the CA certificate's Subject Key Identifier, lowercase hex) and
 * tainted JWT authorities by their key ID (`kid`).
 *
 * Threat it stops: an SVID signed by an authority the operator no longer trusts (a key
 * suspected compromised) staying in use until it expires, and, once that authority is
 * revoked, the agent locking itself out because its own agent SVID still chains to it.
 * An X.509 chain is affected when its leaf was issued by a tainted authority (leaf AKI) or
 * when any intermediate is, or was issued by, one (SKI or AKI); a JWT-SVID when its header
 * `kid` is tainted.
 */
import { parseCertificate } from '../spiffe/x509/parse.js';

/** A set of tainted authority IDs, normalised to lowercase hex (X.509) or kept as is (JWT). */
export interface TaintedAuthorities {
  readonly x509: ReadonlySet<string>;
  readonly jwt: ReadonlySet<string>;
}

export const NO_TAINTED_AUTHORITIES: TaintedAuthorities = Object.freeze({ x509: new Set<string>(), jwt: new Set<string>() });

/** The tainted authorities an update names (absent lists: none). */
export function taintedAuthoritiesOf(u: { readonly taintedX509Authorities?: readonly string[]; readonly taintedJwtAuthorities?: readonly string[] }): TaintedAuthorities {
  const x509 = (u.taintedX509Authorities ?? []).filter((id) => typeof id === 'string' && id !== '').map((id) => id.toLowerCase().replace(/:/g, ''));
  const jwt = (u.taintedJwtAuthorities ?? []).filter((id) => typeof id === 'string' && id !== '');
  if (x509.length === 0 && jwt.length === 0) return NO_TAINTED_AUTHORITIES;
  return { x509: new Set(x509), jwt: new Set(jwt) };
}

/**
 * The IDs of the authorities `chain` (leaf first, DER) depends on: the leaf's issuer (its
 * AKI), and each intermediate itself (SKI) and its issuer (AKI). Lowercase hex. A
 * certificate that does not parse contributes nothing (the chain is judged by the bundle
 * elsewhere).
 */
export function chainAuthorityIds(chain: readonly Buffer[]): string[] {
  const ids: string[] = [];
  chain.forEach((der, i) => {
    let c;
    try {
      c = parseCertificate(der);
    } catch {
      return;
    }
    if (i > 0 && c.subjectKeyId !== undefined) ids.push(c.subjectKeyId.toString('hex'));
    if (c.authorityKeyId !== undefined) ids.push(c.authorityKeyId.toString('hex'));
  });
  return ids;
}

/** True when an X.509 chain depends on a tainted authority. */
export function isChainTainted(chain: readonly Buffer[], tainted: TaintedAuthorities): boolean {
  if (tainted.x509.size === 0) return false;
  return chainAuthorityIds(chain).some((id) => tainted.x509.has(id));
}

/** The `kid` in a compact JWS header, or undefined when it cannot be read. */
export function jwtKidOf(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0) return undefined;
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8')) as unknown;
    const kid = header !== null && typeof header === 'object' ? (header as { kid?: unknown }).kid : undefined;
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

/** True when a JWT-SVID was signed with a tainted key. */
export function isJwtTainted(token: string, tainted: TaintedAuthorities): boolean {
  if (tainted.jwt.size === 0) return false;
  const kid = jwtKidOf(token);
  return kid !== undefined && tainted.jwt.has(kid);
}
