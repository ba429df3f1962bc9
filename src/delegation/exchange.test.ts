import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { decodeJwt, exportJWK, SignJWT, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { DelegationError, oauthError } from './delegation-error.js';
import { TOKEN_TYPE_JWT, TokenExchanger, type ExchangeRecord, type ExchangeRequest } from './exchange.js';
import { parseDelegationPolicy } from './policy.js';

const NOW = new Date('2026-12-03T12:00:00Z');
const nowS = Math.floor(NOW.getTime() / 1000);
const UP = { issuer: 'https://idp.test', audience: 'mayfly-agents' };
const AGENT = 'spiffe://example.org/agent/assistant';
const SUB_AGENT = 'spiffe://example.org/agent/sub/researcher';
const MCP = 'https://mcp.example.org/';

let idpKey: KeyObject;
let otherIdpKey: KeyObject;
let ourKey: KeyObject;
let ourPub: KeyObject;
let jwks: { keys: object[] };

beforeAll(async () => {
  const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  idpKey = idp.privateKey;
  otherIdpKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  ourKey = ours.privateKey;
  ourPub = ours.publicKey;
  jwks = { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256', use: 'sig' }] };
});

async function userToken(over: JWTPayload = {}, opts: { key?: KeyObject; kid?: string; alg?: string } = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', groups: ['eng'], scope: 'tools:read tools:write admin', ...over })
    .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? 'idp1' })
    .setIssuer((over.iss as string | undefined) ?? UP.issuer)
    .setAudience((over.aud as string | undefined) ?? UP.audience)
    .setIssuedAt(nowS - 10)
    .setExpirationTime((over.exp as number | undefined) ?? nowS + 3600)
    .sign(opts.key ?? idpKey);
}

function exchanger(records: ExchangeRecord[] = [], maxDepth = 2): TokenExchanger {
  return new TokenExchanger({
    issuer: 'https://oidc.example.org',
    trustDomain: 'example.org',
    upstream: { ...UP, algorithms: ['RS256'], jwks: jwks as never },
    policy: parseDelegationPolicy({
      rules: [
        { agents: [AGENT], groups: ['eng'], audiences: [MCP, SUB_AGENT], scopes: ['tools:read', 'tools:write'], max_ttl_seconds: 120 },
        { agents: ['spiffe://example.org/agent/sub/*'], users: ['alice'], audiences: [MCP, AGENT], scopes: ['tools:read'] },
      ],
    }),
    signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: ourKey }),
    ownKeys: () => new Map([['k1', ourPub]]),
    now: () => NOW,
    maxDepth,
    record: (r) => records.push(r),
  });
}

const req = (subjectToken: string, over: Partial<ExchangeRequest> = {}): ExchangeRequest => ({
  actor: { id: AGENT },
  subjectToken,
  subjectTokenType: TOKEN_TYPE_JWT,
  resources: [MCP],
  ...over,
});

async function refused(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(DelegationError);
  return oauthError((err as DelegationError).code);
}

describe('TokenExchanger', () => {
  it('issues a short JWT naming user and agent, one audience, narrowed scope, cert binding; a separate jose process verifies it', async () => {
    const records: ExchangeRecord[] = [];
    const x5t = createHash('sha256').update('cert-der').digest('base64url');
    const out = await exchanger(records).exchange(req(await userToken({ roles: ['engineer', 7] as never }), { actor: { id: AGENT, x5tS256: x5t }, scope: 'tools:read' }));
    const c = decodeJwt(out.access_token);
    expect(c).toMatchObject({ iss: 'https://oidc.example.org', sub: 'alice', aud: MCP, client_id: AGENT, act: { sub: AGENT }, scope: 'tools:read', cnf: { 'x5t#S256': x5t } });
    // The user's groups and roles (strings only) travel for the resource server's per-call policy.
    expect(c).toMatchObject({ groups: ['eng'], roles: ['engineer'] });
    expect(c.exp).toBe(nowS + 120);
    expect(typeof c.jti).toBe('string');
    expect(records).toEqual([expect.objectContaining({ outcome: 'issued', actor: AGENT, user: 'alice' })]);
    const jwk = JSON.stringify({ ...(await exportJWK(ourPub)), kid: 'k1', alg: 'ES256' });
    const script = `import { jwtVerify, importJWK } from 'jose';
      const k = await importJWK(JSON.parse(process.env.JWK), 'ES256');
      const { payload } = await jwtVerify(process.env.TOKEN, k, { issuer: 'https://oidc.example.org', audience: ${JSON.stringify(MCP)}, algorithms: ['ES256'], currentDate: new Date(${NOW.getTime()}) });
      process.stdout.write(payload.sub + ' ' + payload.act.sub);`;
    const res = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, JWK: jwk, TOKEN: out.access_token }, cwd: process.cwd() });
    expect(res.toString()).toBe(`alice ${AGENT}`);
  });

  it('scope defaults to policy ∩ user token; life ≤ the user token', async () => {
    const out = await exchanger().exchange(req(await userToken({ exp: nowS + 30 })));
    expect(out.scope).toBe('tools:read tools:write');
    expect(out.expires_in).toBe(30);
  });

  it('refuses hostile user tokens with invalid_grant and logs both identities', async () => {
    const records: ExchangeRecord[] = [];
    const x = exchanger(records);
    expect(await refused(x.exchange(req(await userToken({ exp: nowS - 120 }))))).toBe('invalid_grant');
    expect(await refused(x.exchange(req(await userToken({ iss: 'https://evil.test' }))))).toBe('invalid_grant');
    expect(await refused(x.exchange(req(await userToken({ aud: 'other' }))))).toBe('invalid_grant');
    expect(await refused(x.exchange(req(await userToken({}, { kid: 'nope' }))))).toBe('invalid_grant');
    expect(await refused(x.exchange(req(await userToken({}, { key: otherIdpKey })))))
      .toBe('invalid_grant');
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none' })}.${b64({ sub: 'alice', iss: UP.issuer, aud: UP.audience, exp: nowS + 60 })}.`;
    expect(await refused(x.exchange(req(none)))).toBe('invalid_grant');
    // HS256 keyed with the IdP's public JWK as the secret (the classic confusion).
    const secret = new TextEncoder().encode(JSON.stringify(jwks.keys[0]));
    const hs = await new SignJWT({ sub: 'alice', scope: 'tools:read' }).setProtectedHeader({ alg: 'HS256', kid: 'idp1' }).setIssuer(UP.issuer).setAudience(UP.audience).setExpirationTime(nowS + 60).sign(secret);
    expect(await refused(x.exchange(req(hs)))).toBe('invalid_grant');
    expect(await refused(x.exchange(req('x'.repeat(20_000))))).toBe('invalid_request');
    expect(await refused(x.exchange(req('not-a-jwt')))).toBe('invalid_grant');
    expect(records.every((r) => r.outcome === 'refused' && r.actor === AGENT)).toBe(true);
    expect(records[0]?.user).toBe('unverified:alice');
  });

  it('refuses actors: other trust domain, no SVID, not allowed for this user', async () => {
    const t = await userToken();
    const x = exchanger();
    expect(await refused(x.exchange(req(t, { actor: { id: 'spiffe://evil.org/agent/assistant' } })))).toBe('unauthorized_client');
    expect(await refused(x.exchange(req(t, { actor: { id: '' } })))).toBe('unauthorized_client');
    expect(await refused(x.exchange(req(t, { actor: { id: 'spiffe://example.org/agent/other' } })))).toBe('unauthorized_client');
    const bob = await userToken({ sub: 'bob', groups: ['sales'] });
    expect(await refused(x.exchange(req(bob)))).toBe('unauthorized_client');
  });

  it('refuses a wider scope (invalid_scope) and an audience outside policy (invalid_target)', async () => {
    const t = await userToken();
    const x = exchanger();
    expect(await refused(x.exchange(req(t, { scope: 'tools:read admin' })))).toBe('invalid_scope');
    expect(await refused(x.exchange(req(await userToken({ scope: 'tools:read' }), { scope: 'tools:write' })))).toBe('invalid_scope');
    expect(await refused(x.exchange(req(t, { resources: ['https://elsewhere.example.org/'] })))).toBe('invalid_target');
    expect(await refused(x.exchange(req(t, { resources: [] })))).toBe('invalid_target');
    expect(await refused(x.exchange(req(t, { resources: [MCP, SUB_AGENT] })))).toBe('invalid_target');
  });

  it('a sub-agent re-exchanges into a nested act; depth is capped; replay to another audience fails', async () => {
    const x = exchanger([], 2);
    const first = await x.exchange(req(await userToken(), { resources: [SUB_AGENT], scope: 'tools:read' }));
    // Replay: the token for the sub-agent, presented by another agent, or our MCP-audience token re-exchanged.
    expect(await refused(x.exchange(req(first.access_token, { actor: { id: AGENT } })))).toBe('invalid_grant');
    const second = await x.exchange(req(first.access_token, { actor: { id: SUB_AGENT } }));
    expect(decodeJwt(second.access_token)).toMatchObject({ sub: 'alice', client_id: SUB_AGENT, act: { sub: SUB_AGENT, act: { sub: AGENT } }, scope: 'tools:read', aud: MCP });
    const toAgent = await x.exchange(req(first.access_token, { actor: { id: SUB_AGENT }, resources: [AGENT] }));
    const err = await x.exchange(req(toAgent.access_token, { actor: { id: AGENT } })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_DELEGATION_INVALID_GRANT', message: expect.stringMatching(/3 actors deep; the cap is 2/) });
  });
});

describe('parseDelegationPolicy', () => {
  it('says where a policy is wrong', () => {
    const msg = (p: unknown): string => {
      try {
        parseDelegationPolicy(p);
        return '';
      } catch (e) {
        expect((e as DelegationError).code).toBe('ERR_DELEGATION_CONFIG');
        return (e as Error).message;
      }
    };
    expect(msg({ rules: [] })).toMatch(/rules: must be a non-empty list/);
    expect(msg({ rules: [{ agents: ['nope'], users: ['a'], audiences: ['x'], scopes: ['s'] }] })).toMatch(/rules\[0\]\.agents\[0\]/);
    expect(msg({ rules: [{ agents: [AGENT], audiences: ['x'], scopes: ['s'] }] })).toMatch(/rules\[0\]: names no users/);
    expect(msg({ rules: [{ agents: [AGENT], users: ['a'], audiences: ['*'], scopes: ['s'] }] })).toMatch(/rules\[0\]\.audiences/);
    expect(msg({ rules: [{ agents: [AGENT], users: ['a'], audiences: ['x'], scopes: ['s'], max_ttl_seconds: 9999 }] })).toMatch(/rules\[0\]\.max_ttl_seconds/);
    expect(msg({ rules: [{ agents: [AGENT], users: ['a'], audiences: ['x'], scopes: ['s'], colour: 1 }] })).toMatch(/rules\[0\]\.colour: unknown key/);
  });

  it('refuses symmetric upstream algorithms at construction', () => {
    expect(() => new TokenExchanger({
      issuer: 'https://o', trustDomain: 'example.org', upstream: { ...UP, algorithms: ['HS256'], jwks: { keys: [] } },
      policy: parseDelegationPolicy({ rules: [{ agents: [AGENT], users: ['a'], audiences: ['x'], scopes: ['s'] }] }),
      signingKey: () => ({ kid: 'k', alg: 'ES256', privateKey: ourKey }), ownKeys: () => new Map(),
    })).toThrow(/HS256/);
  });
});
