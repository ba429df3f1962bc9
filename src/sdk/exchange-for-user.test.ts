/**
 * exchangeForUser against the real token endpoint handler (delegation/token-endpoint with a
 * real TokenExchanger) over real TLS, and against hostile endpoints: an impostor server
 * SVID, answers for another audience, actor or scope, a token bound to another certificate,
 * an oversized or non-JSON answer, a silent endpoint. Misuse is a TypeError.
 */
import { createHash, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenExchanger } from '../delegation/exchange.js';
import { parseDelegationPolicy } from '../delegation/policy.js';
import { tokenEndpointHandler } from '../delegation/token-endpoint.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { BundleSet } from '../spiffe/bundle/set.js';
import { SpiffeId } from '../spiffe/id.js';
import { JwtSvidSigner } from '../spiffe/jwt/signer.js';
import { makeTestCa, makeTestSvid, type TestCa } from '../spiffe/x509/testing.js';
import { validateDelegatedToken } from './delegated-token.js';
import { TokenExchangeError } from './errors.js';
import { exchangeForUser, type ExchangeForUserOptions } from './exchange-for-user.js';
import type { X509Svid } from './model.js';
import type { X509SvidSourceLike } from './tls.js';

const TD = 'example.org';
const ISSUER = 'https://oidc.example.org';
const AGENT = `spiffe://${TD}/agent/assistant`;
const MCP = 'https://mcp.example.org/';
const pem = (der: Buffer): string => new X509Certificate(der).toString();
const keyPem = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;

let ca: TestCa;
let idpKey: KeyObject;
let jwtKey: { privateKey: KeyObject; publicKey: KeyObject };
const servers: Server[] = [];
let endpoint: string;
let handled = 0;

function source(path: string, authority: TestCa = ca): X509SvidSourceLike & { cert: Buffer } {
  const s = makeTestSvid(authority, path);
  const svid: X509Svid = { id: SpiffeId.parse(`spiffe://${authority.trustDomain.name}${path}`), certificates: [s.certificate], privateKey: s.key.privateKey, keyType: 'ec-p256', hint: '', expiresAt: new Date(Date.now() + 3_600_000) };
  const bundles = new BundleSet({ bundles: [new Bundle({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate] })] });
  return { cert: s.certificate, getX509Svid: () => svid, getX509Bundles: () => bundles };
}

async function listen(path: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const svid = makeTestSvid(ca, path);
  const s = createServer({ cert: pem(svid.certificate), key: keyPem(svid.key.privateKey), requestCert: true, rejectUnauthorized: false }, handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `https://127.0.0.1:${(s.address() as AddressInfo).port}/token`;
}

beforeAll(async () => {
  ca = makeTestCa({ trustDomain: TD });
  const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  idpKey = idp.privateKey;
  jwtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const exchanger = new TokenExchanger({
    issuer: ISSUER,
    trustDomain: TD,
    upstream: { issuer: 'https://idp.test', audience: 'mayfly', algorithms: ['RS256'], jwks: { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256' }] } },
    policy: parseDelegationPolicy({ rules: [{ agents: [`spiffe://${TD}/agent/*`], users: ['alice'], audiences: [MCP], scopes: ['tools.read', 'tools.write'] }] }),
    signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: jwtKey.privateKey }),
    ownKeys: () => new Map([['k1', jwtKey.publicKey]]),
  });
  const handler = tokenEndpointHandler({
    exchanger,
    x509Bundle: () => ({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate] }),
    jwtBundle: () => new Bundle({ trustDomain: ca.trustDomain, jwtAuthorities: new Map([['k1', jwtKey.publicKey]]) }),
    actorTokenAudience: ISSUER,
  });
  endpoint = await listen('/spire/server', (req, res) => {
    handled++;
    handler(req, res);
  });
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const userToken = (sub = 'alice', exp = '10m', scope = 'tools.read tools.write'): Promise<string> =>
  new SignJWT({ sub, scope }).setProtectedHeader({ alg: 'RS256', kid: 'idp1' }).setIssuer('https://idp.test').setAudience('mayfly').setIssuedAt().setExpirationTime(exp).sign(idpKey);

async function refusal(p: Promise<unknown>): Promise<TokenExchangeError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenExchangeError);
  return err as TokenExchangeError;
}

describe('exchangeForUser', () => {
  it('over mTLS: returns the delegated token and its fields, bound to the SVID it presented; validateDelegatedToken accepts it', async () => {
    const agent = source('/agent/assistant');
    const t = await exchangeForUser(agent, await userToken(), { audience: MCP, scope: ['tools.read'], endpoint });
    expect(t).toMatchObject({ tokenType: 'N_A', issuedTokenType: 'urn:ietf:params:oauth:token-type:jwt', audience: MCP, scope: ['tools.read'], user: 'alice', actorChain: [AGENT] });
    expect(t.boundCertificateSha256).toBe(createHash('sha256').update(agent.cert).digest('base64url'));
    expect(t.expiresIn).toBeGreaterThan(0);
    expect(t.expiresAt.getTime()).toBe((t.claims.exp as number) * 1000);
    const bundle = new Bundle({ trustDomain: ca.trustDomain, jwtAuthorities: new Map([['k1', jwtKey.publicKey]]) });
    const v = await validateDelegatedToken(t.accessToken, { audience: MCP, issuer: ISSUER, trustDomain: TD, bundleSource: { getBundleForTrustDomain: () => bundle }, peerCertificate: agent.cert });
    expect(v).toMatchObject({ user: 'alice', actorChain: [AGENT], scope: ['tools.read'] });
  });

  it('with a JWT-SVID actor_token: presents no certificate and gets an unbound Bearer token', async () => {
    const actorToken = new JwtSvidSigner({ privateKey: jwtKey.privateKey, kid: 'k1', algorithm: 'ES256' }).mint({ spiffeId: SpiffeId.parse(AGENT), audience: [ISSUER], ttlSeconds: 300 });
    const t = await exchangeForUser(source('/agent/other'), await userToken(), { audience: MCP, scope: 'tools.read', endpoint, actorToken });
    expect(t).toMatchObject({ tokenType: 'Bearer', actorChain: [AGENT], user: 'alice' });
    expect(t.boundCertificateSha256).toBeUndefined();
  });

  it('a refusal carries the OAuth error: unauthorized_client, invalid_scope, invalid_target, invalid_grant', async () => {
    const agent = source('/agent/assistant');
    const cases: [() => Promise<unknown>, string][] = [
      [async () => exchangeForUser(agent, await userToken('mallory'), { audience: MCP, endpoint }), 'unauthorized_client'],
      [async () => exchangeForUser(source('/intruder'), await userToken(), { audience: MCP, endpoint }), 'unauthorized_client'],
      [async () => exchangeForUser(agent, await userToken('alice', '10m', 'tools.read'), { audience: MCP, scope: 'tools.write', endpoint }), 'invalid_scope'],
      [async () => exchangeForUser(agent, await userToken(), { audience: 'https://elsewhere/', endpoint }), 'invalid_target'],
      [async () => exchangeForUser(agent, await userToken('alice', '-1h'), { audience: MCP, endpoint }), 'invalid_grant'],
      [async () => exchangeForUser(agent, 'not.a.jwt', { audience: MCP, endpoint }), 'invalid_grant'],
    ];
    for (const [p, oauth] of cases) {
      const e = await refusal(p());
      expect(e).toMatchObject({ code: 'ERR_TOKEN_EXCHANGE_REFUSED', oauthError: oauth, status: 400 });
      expect(e.message).toContain(oauth);
      expect(e.description).not.toBe('');
    }
  });

  it('never sends the user token to an endpoint whose SVID is not the server it expects, or of a foreign trust domain', async () => {
    const impostor = await listen('/spire/imposter', () => {
      throw new Error('the impostor must not be reached');
    });
    const before = handled;
    const e = await refusal(exchangeForUser(source('/agent/assistant'), await userToken(), { audience: MCP, endpoint: impostor }));
    expect(e.code).toBe('ERR_TOKEN_EXCHANGE_FAILED');
    expect(e.message).toMatch(/spire\/imposter|not authori|unexpected/i);
    // An explicit authorizer naming another ID refuses the real endpoint too.
    const { authorizeId } = await import('./tls.js');
    const e2 = await refusal(exchangeForUser(source('/agent/assistant'), await userToken(), { audience: MCP, endpoint, authorizeServer: authorizeId(`spiffe://${TD}/somebody`) }));
    expect(e2.code).toBe('ERR_TOKEN_EXCHANGE_FAILED');
    expect(handled).toBe(before);
  });

  it('refuses answers that would make it act outside its request: other audience, other actor, wider scope, another binding, junk, oversize, silence', async () => {
    const agent = source('/agent/assistant');
    const claims = (over: Record<string, unknown>): string =>
      `e30.${Buffer.from(JSON.stringify({ sub: 'alice', aud: MCP, exp: Math.floor(Date.now() / 1000) + 60, scope: 'tools.read', act: { sub: AGENT }, ...over })).toString('base64url')}.c2ln`;
    const answer = (status: number, body: string) => (_req: IncomingMessage, res: ServerResponse): void => {
      _req.resume();
      _req.on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end(body));
    };
    const ok = (over: Record<string, unknown>): string => JSON.stringify({ access_token: claims(over), issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'N_A', expires_in: 60 });
    const hostile: [string, RegExp][] = [
      [ok({ aud: 'https://elsewhere/' }), /not the audience asked/],
      [ok({ aud: [MCP, 'https://elsewhere/'] }), /not the audience asked/],
      [ok({ act: { sub: `spiffe://${TD}/agent/someone-else` } }), /not this workload/],
      [ok({ act: undefined }), /not this workload/],
      [ok({ scope: 'tools.read admin' }), /beyond what was asked/],
      [ok({ cnf: { 'x5t#S256': 'AAAA' } }), /bound to another certificate/],
      [ok({ sub: undefined }), /names no user/],
      [JSON.stringify({ access_token: 'abc', issued_token_type: 'urn:ietf:params:oauth:token-type:jwt' }), /no compact JWT/],
      [JSON.stringify({ access_token: claims({}), issued_token_type: 'urn:ietf:params:oauth:token-type:saml2' }), /issued_token_type/],
      ['<html>oops</html>', /without a JSON object/],
      [JSON.stringify({ pad: 'x'.repeat(70_000) }), /larger than/],
    ];
    for (const [body, why] of hostile) {
      const e = await refusal(exchangeForUser(agent, await userToken(), { audience: MCP, scope: 'tools.read', endpoint: await listen('/spire/server', answer(200, body)) }));
      expect(e.code, body.slice(0, 80)).toBe('ERR_TOKEN_EXCHANGE_FAILED');
      expect(e.message, body.slice(0, 80)).toMatch(why);
    }
    const e500 = await refusal(exchangeForUser(agent, await userToken(), { audience: MCP, endpoint: await listen('/spire/server', answer(503, '{}')) }));
    expect(e500).toMatchObject({ code: 'ERR_TOKEN_EXCHANGE_REFUSED', oauthError: 'server_error', status: 503 });
    const silent = await listen('/spire/server', (req) => req.resume());
    expect((await refusal(exchangeForUser(agent, await userToken(), { audience: MCP, endpoint: silent, timeoutMs: 200 }))).message).toMatch(/did not answer/);
  });

  it('caller misuse is a TypeError', async () => {
    const agent = source('/agent/assistant');
    const t = await userToken();
    const bad: [X509SvidSourceLike, string, ExchangeForUserOptions][] = [
      [{} as X509SvidSourceLike, t, { audience: MCP, endpoint }],
      [agent, '', { audience: MCP, endpoint }],
      [agent, t, { audience: '', endpoint }],
      [agent, t, { audience: MCP, endpoint: 'http://127.0.0.1:1/token' }],
      [agent, t, { audience: MCP, endpoint: 'not a url' }],
      [agent, t, { audience: MCP, endpoint, scope: ['a b'] }],
      [agent, t, { audience: MCP, endpoint, scope: '  ' }],
      [agent, t, { audience: MCP, endpoint, timeoutMs: -1 }],
      [agent, t, { audience: MCP, endpoint, actorToken: '' }],
      [agent, t, undefined as unknown as ExchangeForUserOptions],
    ];
    for (const [s, tok, o] of bad) await expect(exchangeForUser(s, tok, o), JSON.stringify(o)).rejects.toBeInstanceOf(TypeError);
  });
});
