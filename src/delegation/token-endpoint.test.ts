import { createHash, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { decodeJwt, exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { SpiffeId } from '../spiffe/id.js';
import { JwtSvidSigner } from '../spiffe/jwt/signer.js';
import { makeTestCa, makeTestSvid, type TestCa } from '../spiffe/x509/testing.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_JWT, TokenExchanger, type ExchangeRecord } from './exchange.js';
import { parseDelegationPolicy } from './policy.js';
import { tokenEndpointHandler } from './token-endpoint.js';

const ISSUER = 'https://oidc.example.org';
const AGENT = 'spiffe://example.org/agent/assistant';
const MCP = 'https://mcp.example.org/';
const pem = (der: Buffer): string => new X509Certificate(der).toString();
const keyPem = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;

let ca: TestCa;
let otherCa: TestCa;
let idpKey: KeyObject;
let jwtKey: KeyObject;
let server: Server;
let port: number;
const records: ExchangeRecord[] = [];

beforeAll(async () => {
  ca = makeTestCa({ trustDomain: 'example.org' });
  otherCa = makeTestCa({ trustDomain: 'evil.org' });
  const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  idpKey = idp.privateKey;
  const jk = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  jwtKey = jk.privateKey;
  const jwks = { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256' }] };
  const exchanger = new TokenExchanger({
    issuer: ISSUER,
    trustDomain: 'example.org',
    upstream: { issuer: 'https://idp.test', audience: 'mayfly-agents', algorithms: ['RS256'], jwks },
    policy: parseDelegationPolicy({ rules: [{ agents: ['spiffe://example.org/agent/*'], users: ['alice'], audiences: [MCP], scopes: ['tools:read'] }] }),
    signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: jwtKey }),
    ownKeys: () => new Map([['k1', jk.publicKey]]),
    record: (r) => records.push(r),
  });
  const serverSvid = makeTestSvid(ca, '/mayfly/server', { dnsNames: ['localhost'] });
  server = createServer(
    { cert: pem(serverSvid.certificate), key: keyPem(serverSvid.key.privateKey), requestCert: true, rejectUnauthorized: false },
    tokenEndpointHandler({
      exchanger,
      x509Bundle: () => ({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate] }),
      jwtBundle: () => new Bundle({ trustDomain: ca.trustDomain, jwtAuthorities: new Map([['k1', jk.publicKey]]) }),
      actorTokenAudience: ISSUER,
      record: (r) => records.push(r),
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const userToken = (sub = 'alice'): Promise<string> =>
  new SignJWT({ sub, scope: 'tools:read tools:write' }).setProtectedHeader({ alg: 'RS256', kid: 'idp1' }).setIssuer('https://idp.test').setAudience('mayfly-agents').setIssuedAt().setExpirationTime('1h').sign(idpKey);

function post(form: Record<string, string>, client?: { cert: Buffer; key: KeyObject }): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const r = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/token', servername: 'localhost', ca: pem(ca.certificate), headers: { 'content-type': 'application/x-www-form-urlencoded' }, ...(client ? { cert: pem(client.cert), key: keyPem(client.key) } : {}) },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(parts).toString()) as Record<string, unknown> }));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

const base = async (sub?: string): Promise<Record<string, string>> => ({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: await userToken(sub), subject_token_type: TOKEN_TYPE_JWT, resource: MCP });

describe('token endpoint over real TLS', () => {
  it('mTLS actor: issues a token bound to the client certificate', async () => {
    const agent = makeTestSvid(ca, '/agent/assistant');
    const res = await post(await base(), { cert: agent.certificate, key: agent.key.privateKey });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({ issued_token_type: TOKEN_TYPE_JWT, scope: 'tools:read' });
    const c = decodeJwt(res.body.access_token as string);
    expect(c).toMatchObject({ sub: 'alice', client_id: AGENT, act: { sub: AGENT }, cnf: { 'x5t#S256': createHash('sha256').update(agent.certificate).digest('base64url') } });
  });

  it('JWT-SVID actor_token: issues an unbound token', async () => {
    const signer = new JwtSvidSigner({ privateKey: jwtKey, kid: 'k1', algorithm: 'ES256' });
    const actorToken = signer.mint({ spiffeId: SpiffeId.parse(AGENT), audience: [ISSUER], ttlSeconds: 300 });
    const res = await post({ ...(await base()), actor_token: actorToken, actor_token_type: TOKEN_TYPE_JWT });
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token as string).cnf).toBeUndefined();
  });

  it('refuses an actor without SVID, with another trust domain, a bad grant, and logs both names', async () => {
    const none = await post(await base());
    expect(none).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    const evil = makeTestSvid(otherCa, '/agent/assistant');
    expect(await post(await base(), { cert: evil.certificate, key: evil.key.privateKey })).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    const agent = makeTestSvid(ca, '/agent/assistant');
    expect(await post({ ...(await base()), grant_type: 'password' }, { cert: agent.certificate, key: agent.key.privateKey })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await post(await base('mallory'), { cert: agent.certificate, key: agent.key.privateKey })).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } });
    expect(records.at(-1)).toMatchObject({ outcome: 'refused', actor: AGENT, user: 'mallory', error: 'ERR_DELEGATION_UNAUTHORIZED_CLIENT' });
    expect(await post({ ...(await base()), scope: 'tools:write' }, { cert: agent.certificate, key: agent.key.privateKey })).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });
    expect(await post({ ...(await base()), resource: 'https://other/' }, { cert: agent.certificate, key: agent.key.privateKey })).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    expect(await post({ ...(await base()), subject_token: 'x'.repeat(70_000) }, { cert: agent.certificate, key: agent.key.privateKey })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });
});
