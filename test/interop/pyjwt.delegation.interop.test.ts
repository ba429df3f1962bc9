/**
 * A delegated token (issue 12) judged by a part we did not write: PyJWT (pinned in the
 * py-spiffe venv) verifies its ES256 signature with the JWK our JWKS would publish, its
 * issuer, audience and expiry, and reads `sub`, `client_id` and the nested `act`.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_TYPE_JWT, TokenExchanger } from '../../src/delegation/exchange.js';
import { parseDelegationPolicy } from '../../src/delegation/policy.js';
import { ensurePySpiffe } from './py-spiffe/venv.js';

const SCRIPT = `
import json, os, sys, jwt
key = jwt.PyJWK.from_dict(json.loads(os.environ["JWK"]))
c = jwt.decode(os.environ["TOKEN"], key.key, algorithms=["ES256"], audience="https://mcp.example.org/", issuer="https://oidc.example.org", options={"require": ["exp", "sub", "iss", "aud", "jti"]})
print(json.dumps({"sub": c["sub"], "client_id": c["client_id"], "act": c["act"], "scope": c["scope"]}))
`;

let python: string;
beforeAll(async () => {
  python = await ensurePySpiffe();
}, 300_000);

describe('PyJWT verifies a delegated token', () => {
  it('signature, iss, aud, exp, and both identities', async () => {
    const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const agent = 'spiffe://example.org/agent/assistant';
    const x = new TokenExchanger({
      issuer: 'https://oidc.example.org', trustDomain: 'example.org',
      upstream: { issuer: 'https://idp.test', audience: 'agents', algorithms: ['RS256'], jwks: { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256' }] } },
      policy: parseDelegationPolicy({ rules: [{ agents: [agent], users: ['alice'], audiences: ['https://mcp.example.org/'], scopes: ['tools:read'] }] }),
      signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: ours.privateKey }), ownKeys: () => new Map([['k1', ours.publicKey]]),
    });
    const user = await new SignJWT({ sub: 'alice', scope: 'tools:read' }).setProtectedHeader({ alg: 'RS256', kid: 'idp1' }).setIssuer('https://idp.test').setAudience('agents').setExpirationTime('1h').sign(idp.privateKey);
    const out = await x.exchange({ actor: { id: agent }, subjectToken: user, subjectTokenType: TOKEN_TYPE_JWT, resources: ['https://mcp.example.org/'] });
    const jwk = JSON.stringify({ ...(await exportJWK(ours.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' });
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(python, ['-c', SCRIPT], { timeout: 30_000, env: { ...process.env, JWK: jwk, TOKEN: out.access_token } }, (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so)));
    });
    expect(JSON.parse(stdout)).toEqual({ sub: 'alice', client_id: agent, act: { sub: agent }, scope: 'tools:read' });
  });
});
