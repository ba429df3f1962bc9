/**
 * Token buckets (delegation/rate-limit) with an injected clock, and the token endpoint
 * over real TLS with them: an actor over its limit gets 429 `temporarily_unavailable` with
 * Retry-After while another actor from the same address is served; a source address over
 * its limit is refused before its body is read while another address is served; one log
 * line when a key starts being limited, not one per refused request. Also: with the
 * upstream issuer's keys missing, the endpoint answers 503 with Retry-After.
 */
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { makeTestCa, makeTestSvid, type TestCa } from '../spiffe/x509/testing.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_JWT, TokenExchanger, type ExchangeRecord } from './exchange.js';
import { parseDelegationPolicy } from './policy.js';
import { addressKey, TokenBuckets } from './rate-limit.js';
import { tokenEndpointHandler } from './token-endpoint.js';

const ISSUER = 'https://oidc.example.org';
const MCP = 'https://mcp.example.org/';
const pem = (der: Buffer): string => new X509Certificate(der).toString();
const keyPem = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('TokenBuckets', () => {
  it('lets a burst through, refills at the rate, and says when to retry', () => {
    let t = 0;
    const b = new TokenBuckets({ ratePerSecond: 2, burst: 3, now: () => t });
    expect([b.take('a'), b.take('a'), b.take('a')].every((x) => x.ok)).toBe(true);
    expect(b.take('a')).toEqual({ ok: false, retryAfterSeconds: 1, first: true });
    expect(b.take('a')).toEqual({ ok: false, retryAfterSeconds: 1, first: false });
    expect(b.take('b').ok).toBe(true); // another key is untouched
    t = 500; // one token back
    expect(b.take('a').ok).toBe(true);
    expect(b.take('a')).toMatchObject({ ok: false, first: true });
    t = 10_000; // refills to the burst, not beyond
    expect([b.take('a'), b.take('a'), b.take('a')].every((x) => x.ok)).toBe(true);
    expect(b.take('a').ok).toBe(false);
    const slow = new TokenBuckets({ ratePerSecond: 0.1, burst: 1, now: () => t });
    slow.take('x');
    expect(slow.take('x')).toMatchObject({ ok: false, retryAfterSeconds: 10 });
  });

  it('holds at most maxKeys buckets, dropping full ones first, then the least recently used', () => {
    let t = 0;
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 2, now: () => t, maxKeys: 3 });
    b.take('a');
    b.take('a');
    b.take('a'); // a is empty and refusing
    b.take('b');
    b.take('c');
    t = 100_000; // b and c refill to full; a too (100 s at 1/s): all full
    b.take('a');
    b.take('a');
    b.take('a'); // a limited again, recently used
    b.take('d'); // at the cap: full b and c are dropped, a kept
    expect(b.size).toBe(2);
    expect(b.take('a').ok).toBe(false);
  });

  it('keys IPv4 addresses as themselves and IPv6 addresses by their /64', () => {
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::5')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('2001:0db8:0001:0002:0:0:0:9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('refuses a nonsensical configuration', () => {
    expect(() => new TokenBuckets({ ratePerSecond: 0, burst: 1, now: () => 0 })).toThrow(TypeError);
    expect(() => new TokenBuckets({ ratePerSecond: 1, burst: 0.5, now: () => 0 })).toThrow(TypeError);
  });
});

describe('token endpoint rate limit and missing upstream keys, over real TLS', () => {
  let ca: TestCa;
  let idpKey: KeyObject;
  let jwks: JSONWebKeySet;
  let keysPresent = true;
  let clock = 0;
  let server: Server;
  let port: number;
  const records: ExchangeRecord[] = [];

  beforeAll(async () => {
    ca = makeTestCa({ trustDomain: 'example.org' });
    const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    idpKey = idp.privateKey;
    jwks = { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256' }] };
    const jk = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const exchanger = new TokenExchanger({
      issuer: ISSUER,
      trustDomain: 'example.org',
      upstream: { issuer: 'https://idp.test', audience: 'mayfly-agents', algorithms: ['RS256'], jwks: { current: () => (keysPresent ? jwks : undefined), refresh: () => Promise.resolve() } },
      policy: parseDelegationPolicy({ rules: [{ agents: ['spiffe://example.org/agent/*'], users: ['alice'], audiences: [MCP], scopes: ['tools:read'] }] }),
      signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: jk.privateKey }),
      ownKeys: () => new Map([['k1', jk.publicKey]]),
      record: (r) => records.push(r),
    });
    const now = (): number => clock;
    const serverSvid = makeTestSvid(ca, '/mayfly/server', { dnsNames: ['localhost'] });
    server = createServer(
      { cert: pem(serverSvid.certificate), key: keyPem(serverSvid.key.privateKey), requestCert: true, rejectUnauthorized: false },
      tokenEndpointHandler({
        exchanger,
        x509Bundle: () => ({ trustDomain: ca.trustDomain, x509Authorities: [ca.certificate] }),
        jwtBundle: () => new Bundle({ trustDomain: ca.trustDomain, jwtAuthorities: new Map([['k1', jk.publicKey]]) }),
        actorTokenAudience: ISSUER,
        record: (r) => records.push(r),
        rateLimit: { perActor: new TokenBuckets({ ratePerSecond: 1, burst: 2, now }), perAddress: new TokenBuckets({ ratePerSecond: 1, burst: 6, now }) },
      }),
    );
    await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const userToken = (): Promise<string> =>
    new SignJWT({ sub: 'alice', scope: 'tools:read' }).setProtectedHeader({ alg: 'RS256', kid: 'idp1' }).setIssuer('https://idp.test').setAudience('mayfly-agents').setIssuedAt().setExpirationTime('1h').sign(idpKey);

  async function post(agentPath: string, from = '127.0.0.1'): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
    const agent = makeTestSvid(ca, agentPath);
    const body = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: await userToken(), subject_token_type: TOKEN_TYPE_JWT, resource: MCP }).toString();
    return new Promise((resolve, reject) => {
      const r = request(
        {
          host: '127.0.0.1',
          localAddress: from,
          port,
          method: 'POST',
          path: '/token',
          servername: 'localhost',
          ca: pem(ca.certificate),
          cert: pem(agent.certificate),
          key: keyPem(agent.key.privateKey),
          agent: false,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        },
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

  it('429 with Retry-After for an actor over its limit; another actor is served meanwhile; the actor is served again later', async () => {
    clock = 0;
    records.length = 0;
    expect((await post('/agent/a')).status).toBe(200);
    expect((await post('/agent/a')).status).toBe(200);
    const over = await post('/agent/a');
    expect(over.status).toBe(429);
    expect(over.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(over.body.error_description).toMatch(/actor spiffe:\/\/example\.org\/agent\/a is over its rate limit/);
    expect(over.headers['retry-after']).toBe('1');
    expect(over.headers['cache-control']).toBe('no-store');
    expect((await post('/agent/a')).status).toBe(429);
    expect((await post('/agent/b')).status).toBe(200); // never blocks another actor
    const limited = records.filter((r) => r.error === 'ERR_DELEGATION_RATE_LIMITED');
    expect(limited).toHaveLength(1); // one line when limiting starts, not per request
    expect(limited[0]).toMatchObject({ outcome: 'refused', actor: 'spiffe://example.org/agent/a', address: '127.0.0.1' });
    clock = 1_000;
    expect((await post('/agent/a')).status).toBe(200);
  });

  it('429 for a source address over its limit before the actor is looked at; another address is served', async () => {
    clock = 100_000; // every bucket full again: 6 from 127.0.0.1, per actor 2 each
    records.length = 0;
    const statuses: number[] = [];
    for (const a of ['c', 'c', 'd', 'd', 'e', 'e', 'f']) statuses.push((await post(`/agent/${a}`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
    const over = await post('/agent/g');
    expect(over.status).toBe(429);
    expect(over.body.error_description).toMatch(/source address 127\.0\.0\.1 is over its rate limit/);
    expect(records.filter((r) => r.error === 'ERR_DELEGATION_RATE_LIMITED')).toMatchObject([{ actor: '(unauthenticated)', address: '127.0.0.1' }]);
    expect((await post('/agent/g', '127.0.0.2')).status).toBe(200);
  });

  it('503 temporarily_unavailable with Retry-After while the upstream keys are missing', async () => {
    clock = 200_000;
    keysPresent = false;
    try {
      const res = await post('/agent/h');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
      expect(res.body.error_description).toMatch(/keys of the upstream issuer https:\/\/idp\.test are not available yet/);
      expect(res.headers['retry-after']).toBe('5');
      expect(records.at(-1)).toMatchObject({ outcome: 'refused', actor: 'spiffe://example.org/agent/h', user: 'unverified:alice', error: 'ERR_DELEGATION_UNAVAILABLE' });
    } finally {
      keysPresent = true;
    }
    expect((await post('/agent/h')).status).toBe(200);
  });
});
