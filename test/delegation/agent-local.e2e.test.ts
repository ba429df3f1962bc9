/**
 * The agent-local token exchange (issue 12, item 2): a workload with a user token and no
 * SVID handling asks the Mayfly agent over its Workload API socket (`ExchangeForUser`,
 * proto/agent-delegation.proto); the agent attests it, authenticates the exchange with a
 * JWT-SVID of the caller's identity, and returns a delegated token naming the user and
 * that identity, which validateDelegatedToken accepts. Refusals keep the server's OAuth
 * error; an identity the caller is not entitled to is refused by the agent itself.
 */
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentDelegationServiceDefinition } from '../../src/wire/workload/delegation-proto.js';
import { createTestIssuer, type TestIssuer } from '../../examples/mcp/issuer.js';
import { startMayflyForExample, type MayflyForExample } from '../../examples/mcp/mayfly.js';
import { exchangeForUserViaAgent, JwtSource, TokenExchangeError, validateDelegatedToken } from '../../src/sdk/index.js';

const TD = 'example.org';
const ASSISTANT = `spiffe://${TD}/agent/assistant`;
const INTRUDER = `spiffe://${TD}/intruder`;
const API = 'https://api.example.org/';

let mayfly: MayflyForExample;
let issuer: TestIssuer;
let jwt: JwtSource;

beforeAll(async () => {
  issuer = createTestIssuer();
  mayfly = await startMayflyForExample({
    trustDomain: TD,
    upstream: issuer,
    rulesHcl: `{ agents = ["spiffe://${TD}/agent/*"], users = ["alice"], audiences = ["${API}"], scopes = ["tools.read"] }`,
    workloads: { '/agent/assistant': 'assistant', '/intruder': 'intruder' },
    agentLocalExchange: true,
  });
  jwt = await JwtSource.create({ socketPath: mayfly.socketPath, timeoutMs: 20_000 });
}, 120_000);

afterAll(async () => {
  jwt?.close();
  await mayfly?.stop();
});

const alice = (): Promise<string> => issuer.userToken({ sub: 'alice', groups: [], roles: [] }, { scope: 'tools.read' });

async function refusal(p: Promise<unknown>): Promise<TokenExchangeError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenExchangeError);
  return err as TokenExchangeError;
}

describe('ExchangeForUser on the agent socket', () => {
  it('exchanges for an attested caller as the identity it asks for; the token names user and that identity, unbound', async () => {
    let t;
    for (let i = 0; ; i++) {
      try {
        t = await exchangeForUserViaAgent(await alice(), { audience: API, scope: 'tools.read', spiffeId: ASSISTANT, socketPath: mayfly.socketPath });
        break;
      } catch (err) {
        // The agent may not hold the entry's SVID yet right after start: bounded retry.
        if (i >= 50 || !(err instanceof TokenExchangeError) || err.code !== 'ERR_TOKEN_EXCHANGE_FAILED') throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(t).toMatchObject({ user: 'alice', actorChain: [ASSISTANT], audience: API, scope: ['tools.read'], tokenType: 'Bearer' });
    expect(t.claims.cnf).toBeUndefined();
    const v = await validateDelegatedToken(t.accessToken, { audience: API, issuer: mayfly.issuer, trustDomain: TD, bundleSource: jwt });
    expect(v).toMatchObject({ user: 'alice', actorChain: [ASSISTANT] });
    const line = mayfly.serverLog.find((l) => l.includes('"event":"token_exchange"') && l.includes(`"actor":"${ASSISTANT}"`) && l.includes('"outcome":"issued"'));
    expect(line).toContain('"user":"alice"');
  });

  it("keeps the server's OAuth error: an identity no rule names (unauthorized_client), a bad user token (invalid_grant), another audience (invalid_target)", async () => {
    expect(await refusal(exchangeForUserViaAgent(await alice(), { audience: API, spiffeId: INTRUDER, socketPath: mayfly.socketPath }))).toMatchObject({ code: 'ERR_TOKEN_EXCHANGE_REFUSED', oauthError: 'unauthorized_client' });
    expect(await refusal(exchangeForUserViaAgent('not.a.jwt', { audience: API, spiffeId: ASSISTANT, socketPath: mayfly.socketPath }))).toMatchObject({ code: 'ERR_TOKEN_EXCHANGE_REFUSED', oauthError: 'invalid_grant' });
    expect(await refusal(exchangeForUserViaAgent(await alice(), { audience: 'https://elsewhere/', spiffeId: ASSISTANT, socketPath: mayfly.socketPath }))).toMatchObject({ code: 'ERR_TOKEN_EXCHANGE_REFUSED', oauthError: 'invalid_target' });
    expect(mayfly.serverLog.some((l) => l.includes(`"actor":"${INTRUDER}"`) && l.includes('"outcome":"refused"') && l.includes('alice'))).toBe(true);
  });

  it('refuses, in the agent, an identity the caller is not entitled to, and caller misuse is a TypeError', async () => {
    const e = await refusal(exchangeForUserViaAgent(await alice(), { audience: API, spiffeId: `spiffe://${TD}/agent/someone-else`, socketPath: mayfly.socketPath }));
    expect(e.code).toBe('ERR_TOKEN_EXCHANGE_FAILED');
    expect(e.message).toMatch(/not entitled/);
    await expect(exchangeForUserViaAgent('', { audience: API, socketPath: mayfly.socketPath })).rejects.toBeInstanceOf(TypeError);
    await expect(exchangeForUserViaAgent('t', { audience: '', socketPath: mayfly.socketPath })).rejects.toBeInstanceOf(TypeError);
    await expect(exchangeForUserViaAgent('t', { audience: API, scope: ['a b'], socketPath: mayfly.socketPath })).rejects.toBeInstanceOf(TypeError);
  });

  it('refuses a call without the workload.spiffe.io header, and an oversized user token, before attesting or asking the server', async () => {
    const m = agentDelegationServiceDefinition().ExchangeForUser;
    if (m === undefined) throw new Error('no ExchangeForUser');
    const client = new Client(`unix://${mayfly.socketPath}`, credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
    try {
      const err = await new Promise<ServiceError>((resolve) => {
        client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { subject_token: 'x', audience: API }, new Metadata(), (e) => resolve(e as ServiceError));
      });
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/security header/);
    } finally {
      client.close();
    }
    const before = mayfly.serverLog.length;
    const e = await refusal(exchangeForUserViaAgent('x'.repeat(20_000), { audience: API, spiffeId: ASSISTANT, socketPath: mayfly.socketPath }));
    expect(e).toMatchObject({ code: 'ERR_TOKEN_EXCHANGE_FAILED', message: expect.stringMatching(/subject_token must be/) });
    expect(mayfly.serverLog.slice(before).some((l) => l.includes('"event":"token_exchange"'))).toBe(false);
  });
});
