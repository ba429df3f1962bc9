import { createHash, generateKeyPairSync } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { TOKEN_TYPE_JWT, TokenExchanger } from '../delegation/exchange.js';
import { parseDelegationPolicy } from '../delegation/policy.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { TrustDomain } from '../spiffe/id.js';
import { makeTestCa, makeTestSvid } from '../spiffe/x509/testing.js';
import { authorizeCall, type CallDecisionRecord, type CallRule } from './authorize-call.js';
import { validateDelegatedToken } from './delegated-token.js';

const AGENT = 'spiffe://example.org/agent/assistant';
const MCP = 'https://mcp.example.org/';
const ISSUER = 'https://oidc.example.org';

async function setup(): Promise<{ issue: (x5t?: string, resource?: string) => Promise<string>; bundleSource: { getBundleForTrustDomain: () => Bundle } }> {
  const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwks = { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp1', alg: 'RS256' }] };
  const x = new TokenExchanger({
    issuer: ISSUER, trustDomain: 'example.org',
    upstream: { issuer: 'https://idp.test', audience: 'agents', algorithms: ['RS256'], jwks },
    policy: parseDelegationPolicy({ rules: [{ agents: ['spiffe://example.org'], users: ['alice'], audiences: [MCP, 'https://other/'], scopes: ['tools:read'] }] }),
    signingKey: () => ({ kid: 'k1', alg: 'ES256', privateKey: ours.privateKey }), ownKeys: () => new Map([['k1', ours.publicKey]]),
  });
  const bundle = new Bundle({ trustDomain: TrustDomain.parse('example.org'), jwtAuthorities: new Map([['k1', ours.publicKey]]) });
  return {
    issue: async (x5t, resource = MCP) => {
      const user = await new SignJWT({ sub: 'alice', scope: 'tools:read' }).setProtectedHeader({ alg: 'RS256', kid: 'idp1' }).setIssuer('https://idp.test').setAudience('agents').setExpirationTime('1h').sign(idp.privateKey);
      return (await x.exchange({ actor: { id: AGENT, x5tS256: x5t }, subjectToken: user, subjectTokenType: TOKEN_TYPE_JWT, resources: [resource] })).access_token;
    },
    bundleSource: { getBundleForTrustDomain: () => bundle },
  };
}

describe('validateDelegatedToken', () => {
  it('returns user, actor chain and scope; checks audience and the certificate binding', async () => {
    const { issue, bundleSource } = await setup();
    const opts = { audience: MCP, issuer: ISSUER, trustDomain: 'example.org', bundleSource };
    const v = await validateDelegatedToken(await issue(), opts);
    expect(v).toMatchObject({ user: 'alice', actorChain: [AGENT], scope: ['tools:read'] });
    await expect(validateDelegatedToken(await issue(undefined, 'https://other/'), opts)).rejects.toMatchObject({ code: 'ERR_DELEGATED_TOKEN_INVALID', message: expect.stringMatching(/aud/) });
    const ca = makeTestCa();
    const mine = makeTestSvid(ca, '/agent/assistant').certificate;
    const theirs = makeTestSvid(ca, '/agent/thief').certificate;
    const bound = await issue(createHash('sha256').update(mine).digest('base64url'));
    await expect(validateDelegatedToken(bound, { ...opts, peerCertificate: mine })).resolves.toMatchObject({ user: 'alice' });
    await expect(validateDelegatedToken(bound, opts)).rejects.toThrow(/presented none/);
    await expect(validateDelegatedToken(bound, { ...opts, peerCertificate: theirs })).rejects.toThrow(/another client certificate/);
    const other = new Bundle({ trustDomain: TrustDomain.parse('example.org'), jwtAuthorities: new Map() });
    await expect(validateDelegatedToken(await issue(), { ...opts, bundleSource: { getBundleForTrustDomain: () => other } })).rejects.toThrow(/kid/);
  });
});

describe('authorizeCall', () => {
  const rules: CallRule[] = [
    { id: 'no-delete-for-interns', effect: 'deny', roles: ['intern'], tools: ['delete_file'] },
    { id: 'assistant-eng-files', effect: 'allow', agents: ['spiffe://example.org/agent/*'], groups: ['eng'], tools: ['read_file', 'delete_file'], resources: ['repo:mayfly/*'] },
    { id: 'td-search', effect: 'allow', agents: ['spiffe://example.org'], users: ['*'], tools: ['search'] },
  ];
  it('decides by agent, user claims, tool and resource, naming the rule and both identities', () => {
    const out: CallDecisionRecord[] = [];
    const emit = (r: CallDecisionRecord): void => void out.push(r);
    const alice = { sub: 'alice', groups: ['eng'] };
    expect(authorizeCall({ actor: AGENT, user: alice, tool: 'read_file', resource: 'repo:mayfly/README' }, { rules, emit })).toEqual({ allow: true, rule: 'assistant-eng-files' });
    expect(authorizeCall({ actor: AGENT, user: { ...alice, roles: ['intern'] }, tool: 'delete_file', resource: 'repo:mayfly/x' }, { rules, emit })).toEqual({ allow: false, rule: 'no-delete-for-interns' });
    expect(authorizeCall({ actor: AGENT, user: alice, tool: 'read_file', resource: 'repo:secret/x' }, { rules, emit })).toEqual({ allow: false, rule: undefined });
    expect(authorizeCall({ actor: 'spiffe://evil.org/agent/a', user: alice, tool: 'search' }, { rules, emit })).toEqual({ allow: false, rule: undefined });
    expect(authorizeCall({ actor: 'spiffe://example.org/bot', user: { sub: 'bob' }, tool: 'search' }, { rules, emit })).toEqual({ allow: true, rule: 'td-search' });
    expect(out[0]).toEqual({ event: 'authorize_call', decision: 'allow', rule: 'assistant-eng-files', actor: AGENT, user: 'alice', tool: 'read_file', resource: 'repo:mayfly/README', context: undefined });
    expect(out).toHaveLength(5);
  });
});
