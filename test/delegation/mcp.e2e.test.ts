/**
 * The MCP example (examples/mcp, also `npm run demo:agents`) end to end: a real Mayfly
 * server with the delegation block and a real agent; the official MCP SDK's server and
 * client over Streamable HTTP on mutual TLS with Mayfly SVIDs; user tokens from an RS256
 * test issuer. The four decisions the issue names, each logged with agent and user; and the
 * hostile cases at the MCP server: no token, a token for another audience (no passthrough),
 * a token presented by another agent than it names, a tampered token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actForUser } from '../../examples/mcp/agent-client.js';
import { runScenarios, type ScenarioOutcome } from '../../examples/mcp/demo.js';
import { ASSISTANT, MCP_SERVER, OTHER_SERVICE, REPORTER, startAgentsExample, USERS, type AgentsExample } from '../../examples/mcp/example.js';
import { authorizeId, createSpiffeFetch, exchangeForUser } from '../../src/sdk/index.js';

let ex: AgentsExample;
let outcomes: ScenarioOutcome[];
const printed: string[] = [];

beforeAll(async () => {
  ex = await startAgentsExample();
  outcomes = await runScenarios(ex, (l) => printed.push(l));
}, 120_000);

afterAll(async () => {
  await ex?.stop();
});

const outcome = (name: string): ScenarioOutcome => {
  const o = outcomes.find((x) => x.name === name);
  if (o === undefined) throw new Error(`no scenario ${name}`);
  return o;
};

/** Raw MCP POST over the given agent's mTLS, with a chosen Authorization header. */
async function rawPost(hint: 'assistant' | 'reporter', authorization: string | undefined): Promise<{ status: number; wwwAuthenticate: string | null; body: string }> {
  const f = createSpiffeFetch(ex.source(hint), { authorize: authorizeId(MCP_SERVER) });
  try {
    const res = await f.fetch(ex.toolServer.resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(authorization !== undefined ? { authorization } : {}) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }),
    });
    return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate'), body: await res.text() };
  } finally {
    await f.close();
  }
}

describe('MCP example: AI agents acting for users', () => {
  it('allowed for one user (assistant for alice, read_file), logged with agent and user', () => {
    expect(outcome('allowed for one user')).toMatchObject({ outcome: 'allowed' });
    expect(ex.decisions).toContainEqual(expect.objectContaining({ event: 'authorize_call', decision: 'allow', rule: 'assistant-engineers-read', actor: ASSISTANT, user: 'alice', tool: 'read_file', resource: 'repo:README.md' }));
  });

  it('refused for another user (assistant for bob, a viewer)', () => {
    expect(outcome('refused for another user')).toMatchObject({ outcome: 'refused' });
    expect(ex.decisions).toContainEqual(expect.objectContaining({ decision: 'deny', rule: null, actor: ASSISTANT, user: 'bob', tool: 'read_file' }));
  });

  it('refused for an agent not allowed for that user (reporter for alice), while it may act for bob', () => {
    expect(outcome('refused for an agent not allowed for that user')).toMatchObject({ outcome: 'refused' });
    expect(ex.decisions).toContainEqual(expect.objectContaining({ decision: 'deny', actor: REPORTER, user: 'alice', tool: 'search' }));
    expect(outcome('allowed: that agent for the user it serves')).toMatchObject({ outcome: 'allowed' });
    expect(ex.decisions).toContainEqual(expect.objectContaining({ decision: 'allow', rule: 'reporter-for-bob-search', actor: REPORTER, user: 'bob' }));
  });

  it("refused for a tool outside the user's role (assistant for alice, deploy)", () => {
    expect(outcome("refused for a tool outside the user's role")).toMatchObject({ outcome: 'refused' });
    expect(ex.decisions).toContainEqual(expect.objectContaining({ decision: 'deny', actor: ASSISTANT, user: 'alice', tool: 'deploy' }));
  });

  it('an agent no delegation rule names is refused at the exchange (unauthorized_client), logged by the server with both identities', () => {
    expect(outcome('refused at the exchange: an agent no delegation rule names').outcome).toBe('exchange refused: unauthorized_client');
    const line = ex.mayfly.serverLog.find((l) => l.includes('"event":"token_exchange"') && l.includes('/intruder'));
    expect(line).toBeDefined();
    expect(line).toContain('"outcome":"refused"');
    expect(line).toContain('alice');
    expect(printed.length).toBe(6);
  });

  it('publishes Protected Resource Metadata (RFC 9728) naming itself and Mayfly as authorization server', async () => {
    const f = createSpiffeFetch(ex.source('assistant'), { authorize: authorizeId(MCP_SERVER) });
    try {
      for (const url of [ex.toolServer.metadataUrl, ex.toolServer.metadataUrl.replace(/\/mcp$/, '')]) {
        const prm = (await (await f.fetch(url)).json()) as Record<string, unknown>;
        expect(prm).toMatchObject({ resource: ex.toolServer.resource, authorization_servers: [ex.mayfly.issuer], bearer_methods_supported: ['header'], tls_client_certificate_bound_access_tokens: true });
      }
    } finally {
      await f.close();
    }
  });

  it('no token: 401 with a WWW-Authenticate pointing at the metadata', async () => {
    const r = await rawPost('assistant', undefined);
    expect(r.status).toBe(401);
    expect(r.wwwAuthenticate).toContain(`resource_metadata="${ex.toolServer.metadataUrl}"`);
  });

  it('a delegated token for another audience is refused (no passthrough), logged with the agent', async () => {
    const t = await exchangeForUser(ex.source('assistant'), await ex.issuer.userToken(USERS.alice), { audience: OTHER_SERVICE, endpoint: ex.mayfly.tokenEndpoint });
    const r = await rawPost('assistant', `Bearer ${t.accessToken}`);
    expect(r.status).toBe(401);
    expect(r.wwwAuthenticate).toContain('error="invalid_token"');
    expect(ex.decisions).toContainEqual(expect.objectContaining({ event: 'token_refused', actor: ASSISTANT, reason: expect.stringMatching(/aud/) }));
  });

  it("the assistant's token presented by the reporter (another SVID) is refused: the binding and the actor do not match", async () => {
    const t = await exchangeForUser(ex.source('assistant'), await ex.issuer.userToken(USERS.alice), { audience: ex.toolServer.resource, endpoint: ex.mayfly.tokenEndpoint });
    const r = await rawPost('reporter', `Bearer ${t.accessToken}`);
    expect(r.status).toBe(401);
    expect(ex.decisions).toContainEqual(expect.objectContaining({ event: 'token_refused', actor: REPORTER, reason: expect.stringMatching(/another client certificate/) }));
    // Tampered (user swapped to bob): the signature no longer verifies.
    const [h, p, s] = t.accessToken.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...(JSON.parse(Buffer.from(p, 'base64url').toString()) as object), sub: 'bob' })).toString('base64url');
    expect((await rawPost('assistant', `Bearer ${h}.${forged}.${s}`)).status).toBe(401);
    // And the genuine token works for the agent it names.
    const session = await actForUser({ source: ex.source('assistant'), mcpServerId: MCP_SERVER, metadataUrl: ex.toolServer.metadataUrl, tokenEndpoint: ex.mayfly.tokenEndpoint, userToken: await ex.issuer.userToken(USERS.alice) });
    try {
      expect(session.token).toMatchObject({ user: 'alice', actorChain: [ASSISTANT], audience: ex.toolServer.resource });
      expect((await session.callTool('search', { query: 'x' })).allowed).toBe(true);
    } finally {
      await session.close();
    }
  });

  it('a token without the tool scope is refused before the policy (scope narrowed at the exchange)', async () => {
    const session = await actForUser({ source: ex.source('assistant'), mcpServerId: MCP_SERVER, metadataUrl: ex.toolServer.metadataUrl, tokenEndpoint: ex.mayfly.tokenEndpoint, userToken: await ex.issuer.userToken({ sub: 'carol', groups: ['staff'], roles: ['admin'] }), scope: 'tools.read' });
    try {
      const r = await session.callTool('deploy', { service: 'billing' });
      expect(r.allowed).toBe(false);
      expect(r.text).toMatch(/scope tools.write/);
      expect(ex.decisions).toContainEqual(expect.objectContaining({ decision: 'deny', rule: 'scope:tools.write', actor: ASSISTANT, user: 'carol', tool: 'deploy' }));
    } finally {
      await session.close();
    }
  });
});
