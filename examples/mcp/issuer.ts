/**
 * @module examples/mcp/issuer
 *
 * A stand-in for the users' identity provider (an OIDC issuer such as your SSO): an RS256
 * key made at start, its public half as a JWKS file (what Mayfly's
 * `server.delegation.upstream.jwks_file` pins), and user tokens carrying `sub`, `groups`,
 * `roles` and `scope`. A real deployment gets these tokens from the user's login.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';

export interface TestUser {
  readonly sub: string;
  readonly groups: readonly string[];
  readonly roles: readonly string[];
}

export interface TestIssuer {
  readonly issuer: string;
  /** The audience its user tokens name: Mayfly's token exchange. */
  readonly audience: string;
  /** `{ keys: [...] }`, the public key only. */
  jwks(): Promise<{ keys: object[] }>;
  /** A user token (RS256), valid for `ttlSeconds` (default 600). */
  userToken(user: TestUser, opts?: { scope?: string; ttlSeconds?: number }): Promise<string>;
}

export function createTestIssuer(issuer = 'https://idp.example.test', audience = 'mayfly-token-exchange'): TestIssuer {
  const { publicKey, privateKey }: { publicKey: KeyObject; privateKey: KeyObject } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'idp-key-1';
  return {
    issuer,
    audience,
    jwks: async () => ({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] }),
    userToken: (user, opts = {}) =>
      new SignJWT({ groups: [...user.groups], roles: [...user.roles], scope: opts.scope ?? 'tools.read tools.write' })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(user.sub)
        .setIssuedAt()
        .setExpirationTime(`${opts.ttlSeconds ?? 600}s`)
        .sign(privateKey),
  };
}
