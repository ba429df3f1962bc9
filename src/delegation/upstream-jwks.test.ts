/**
 * The upstream issuer's keys by OIDC discovery, against a real HTTPS test issuer on
 * loopback (delegation/testing: node:https, a test CA and RS256 keys made here), through the
 * token exchanger: success; a key rotation at the issuer picked up on the unknown kid (and
 * the refetch rate-limited); a discovery document naming another issuer; an http
 * jwks_uri; an oversize JWKS (declared and streamed); a redirect; the issuer down at start
 * then up; a failed refresh keeping the last good JWKS. Clock and timers injected.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DelegationError, httpStatus, oauthError } from './delegation-error.js';
import { TOKEN_TYPE_JWT, TokenExchanger } from './exchange.js';
import { FetchRefusal, httpsGetJson } from './https-get.js';
import { parseDelegationPolicy } from './policy.js';
import { freeLocalhostPort, makeIdpKey, TestIdp, type IdpKey } from './testing.js';
import { DiscoveredJwks, type SetTimer } from './upstream-jwks.js';

const AGENT = 'spiffe://example.org/agent/assistant';
const MCP = 'https://mcp.example.org/';
const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' });

class ManualTimers {
  readonly pending: { fn: () => void; ms: number }[] = [];
  readonly set: SetTimer = (fn, ms) => {
    const t = { fn, ms };
    this.pending.push(t);
    return {
      cancel: () => {
        const i = this.pending.indexOf(t);
        if (i >= 0) this.pending.splice(i, 1);
      },
    };
  };
  /** Fires what is scheduled now (not what those schedule). */
  fire(): void {
    for (const t of this.pending.splice(0)) t.fn();
  }
}

interface Logged {
  level: 'info' | 'warn';
  fields: Record<string, unknown>;
  message: string;
}

let idp: TestIdp;
let k1: IdpKey;
let k2: IdpKey;
let clock = 0;
const logs: Logged[] = [];
const sources: DiscoveredJwks[] = [];

function source(over: Partial<ConstructorParameters<typeof DiscoveredJwks>[0]> = {}, timers = new ManualTimers()): DiscoveredJwks {
  const s = new DiscoveredJwks({
    discoveryUrl: new URL(idp.discoveryUrl),
    issuer: idp.issuer,
    ca: idp.caPem,
    now: () => clock,
    setTimer: timers.set,
    logger: { info: (fields, message) => void logs.push({ level: 'info', fields, message }), warn: (fields, message) => void logs.push({ level: 'warn', fields, message }) },
    ...over,
  });
  sources.push(s);
  return s;
}

function exchanger(jwks: DiscoveredJwks): TokenExchanger {
  return new TokenExchanger({
    issuer: 'https://oidc.example.org',
    trustDomain: 'example.org',
    upstream: { issuer: idp.issuer, audience: 'mayfly', algorithms: ['RS256'], jwks },
    policy: parseDelegationPolicy({ rules: [{ agents: [AGENT], users: ['alice'], audiences: [MCP], scopes: ['tools.read'] }] }),
    signingKey: () => ({ kid: 'o1', alg: 'ES256', privateKey: ours.privateKey }),
    ownKeys: () => new Map([['o1', ours.publicKey]]),
  });
}

const exchange = async (x: TokenExchanger, key: IdpKey): Promise<string> => {
  const out = await x.exchange({ actor: { id: AGENT }, subjectToken: await idp.token(key, 'alice'), subjectTokenType: TOKEN_TYPE_JWT, resources: [MCP], scope: 'tools.read' });
  return out.scope;
};

async function refusal(p: Promise<unknown>): Promise<DelegationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof DelegationError)) throw new Error(`expected a DelegationError, got ${String(err)}`);
  return err;
}

const lastWarning = (): string => logs.filter((l) => l.level === 'warn').at(-1)?.message ?? '';

beforeAll(async () => {
  [k1, k2] = await Promise.all([makeIdpKey('k1'), makeIdpKey('k2')]);
  idp = new TestIdp(await freeLocalhostPort());
});

afterEach(async () => {
  for (const s of sources.splice(0)) s.stop();
  await idp.stop();
  idp.keys = [k1];
  idp.discoveryOverride = {};
  idp.jwksBody = undefined;
  idp.hits.discovery = idp.hits.jwks = 0;
  logs.length = 0;
  clock = 0;
});

afterAll(() => idp.stop());

describe('upstream keys by OIDC discovery', () => {
  it('fetches the discovery document and the JWKS over https with the private CA; exchanges succeed', async () => {
    idp.keys = [k1];
    await idp.start();
    const jwks = source();
    await jwks.ready();
    expect(jwks.current()?.keys.map((k) => k.kid)).toEqual(['k1']);
    expect(idp.hits).toEqual({ discovery: 1, jwks: 1 });
    expect(await exchange(exchanger(jwks), k1)).toBe('tools.read');
    expect(logs.some((l) => l.level === 'info' && /fetched JWKS/.test(l.message))).toBe(true);
  });

  it('without the private CA the issuer is not trusted (system roots only)', async () => {
    await idp.start();
    const jwks = source({ ca: undefined });
    await jwks.ready();
    expect(jwks.current()).toBeUndefined();
    expect(lastWarning()).toMatch(/cannot fetch the keys/);
  });

  it('picks up a key rotated in at the issuer on its unknown kid, refetching at most once per interval', async () => {
    idp.keys = [k1];
    await idp.start();
    const jwks = source({ minRefetchIntervalMs: 30_000 });
    await jwks.ready();
    const x = exchanger(jwks);
    idp.keys = [k2]; // rotation: k1 retired, k2 in
    clock = 1_000; // within the refetch interval: the unknown kid cannot force a fetch yet
    const early = await refusal(exchange(x, k2));
    expect(early.code).toBe('ERR_DELEGATION_INVALID_GRANT');
    expect(early.message).toMatch(/no key of the issuer has kid "k2"/);
    expect(idp.hits.jwks).toBe(1);
    clock = 31_000;
    expect(await exchange(x, k2)).toBe('tools.read');
    expect(idp.hits.jwks).toBe(2);
    expect(jwks.current()?.keys.map((k) => k.kid)).toEqual(['k2']);
    expect(logs.some((l) => /new JWKS/.test(l.message))).toBe(true);
    // A flood of made-up kids within the interval: no further fetch.
    const bogus = await makeIdpKey('made-up');
    for (let i = 0; i < 5; i++) expect((await refusal(exchange(x, bogus))).code).toBe('ERR_DELEGATION_INVALID_GRANT');
    expect(idp.hits.jwks).toBe(2);
    // A token of another issuer never triggers a fetch, whatever its kid.
    clock = 100_000;
    const foreign = await x.exchange({ actor: { id: AGENT }, subjectToken: await idp.token(bogus, 'alice', { issuer: 'https://other.test' }), subjectTokenType: TOKEN_TYPE_JWT, resources: [MCP] }).catch((e: unknown) => e);
    expect((foreign as DelegationError).code).toBe('ERR_DELEGATION_INVALID_GRANT');
    expect(idp.hits.jwks).toBe(2);
  });

  it('refuses a discovery document naming another issuer: no keys, exchanges answer temporarily_unavailable (503)', async () => {
    idp.discoveryOverride = { issuer: 'https://evil.test' };
    await idp.start();
    const jwks = source();
    await jwks.ready();
    expect(jwks.current()).toBeUndefined();
    expect(idp.hits.jwks).toBe(0);
    expect(lastWarning()).toMatch(/issuer "https:\/\/evil\.test" is not the pinned/);
    const err = await refusal(exchange(exchanger(jwks), k1));
    expect(err.code).toBe('ERR_DELEGATION_UNAVAILABLE');
    expect([oauthError(err.code), httpStatus(err.code)]).toEqual(['temporarily_unavailable', 503]);
  });

  it('refuses an http jwks_uri without fetching it', async () => {
    idp.discoveryOverride = { jwks_uri: `http://localhost:${idp.port}/jwks` };
    await idp.start();
    const jwks = source();
    await jwks.ready();
    expect(jwks.current()).toBeUndefined();
    expect(idp.hits.jwks).toBe(0);
    expect(lastWarning()).toMatch(/jwks_uri http:\/\/localhost:\d+\/jwks is not https/);
  });

  it('refuses an oversize JWKS, declared or streamed', async () => {
    const huge = JSON.stringify({ keys: [k1.jwk], pad: 'x'.repeat(300 * 1024) });
    await idp.start();
    for (const chunked of [false, true]) {
      idp.jwksBody = { body: huge, chunked };
      const jwks = source();
      await jwks.ready();
      expect(jwks.current()).toBeUndefined();
      expect(lastWarning()).toMatch(chunked ? /its body is over the 262144-byte limit/ : /its body of \d+ bytes is over the 262144-byte limit/);
    }
  });

  it('does not follow a redirect, and gives up on a silent issuer after its timeout', async () => {
    await idp.start();
    idp.discoveryOverride = { jwks_uri: `https://localhost:${idp.port}/redirect` };
    const jwks = source();
    await jwks.ready();
    expect(jwks.current()).toBeUndefined();
    expect(lastWarning()).toMatch(/it answered 302 \(a redirect\); redirects are not followed/);
    expect(idp.hits.jwks).toBe(0);
    const silent = await import('node:net').then(
      ({ createServer }) =>
        new Promise<import('node:net').Server>((resolve) => {
          const s = createServer(() => undefined); // accepts, never answers the TLS handshake
          s.listen(0, 'localhost', () => resolve(s));
        }),
    );
    try {
      const port = (silent.address() as import('node:net').AddressInfo).port;
      const err = await httpsGetJson(new URL(`https://localhost:${port}/x`), { timeoutMs: 200 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FetchRefusal);
      expect((err as Error).message).toMatch(/no complete answer within 200 ms/);
      // stop() aborts a fetch in flight (a shutdown is not held by a silent issuer).
      const timers = new ManualTimers();
      const stuck = source({ discoveryUrl: new URL(`https://localhost:${port}/.well-known/openid-configuration`), timeoutMs: 600_000 }, timers);
      const first = stuck.ready();
      logs.length = 0;
      stuck.stop();
      await first;
      expect(stuck.current()).toBeUndefined();
      expect(timers.pending).toEqual([]);
      expect(logs).toEqual([]);
    } finally {
      silent.close();
    }
    await expect(httpsGetJson(new URL(`http://localhost:${idp.port}/jwks`))).rejects.toThrow(/only https URLs/);
  });

  it('starts while the issuer is down (503 until keys are fetched), retries with backoff, then serves once it is up', async () => {
    const timers = new ManualTimers();
    const jwks = source({}, timers);
    await jwks.ready(); // settles: the server's start is not failed by a down issuer
    expect(jwks.current()).toBeUndefined();
    expect(timers.pending.map((t) => t.ms)).toEqual([1_000]);
    const x = exchanger(jwks);
    expect((await refusal(exchange(x, k1))).code).toBe('ERR_DELEGATION_UNAVAILABLE');
    timers.fire();
    await jwks.refresh(); // joins the retry in flight
    expect(timers.pending.map((t) => t.ms)).toEqual([2_000]);
    idp.keys = [k1];
    await idp.start();
    clock = 60_000; // the next exchange may ask for a fetch itself
    expect(await exchange(x, k1)).toBe('tools.read');
    expect(timers.pending.map((t) => t.ms)).toEqual([5 * 60_000]);
  });

  it('keeps the last good JWKS when a refresh fails', async () => {
    idp.keys = [k1];
    await idp.start();
    const timers = new ManualTimers();
    const jwks = source({}, timers);
    await jwks.ready();
    idp.discoveryOverride = { issuer: 'https://evil.test' };
    timers.fire();
    await jwks.refresh();
    expect(lastWarning()).toMatch(/keeping the last good JWKS/);
    expect(jwks.current()?.keys.map((k) => k.kid)).toEqual(['k1']);
    expect(await exchange(exchanger(jwks), k1)).toBe('tools.read');
  });
});
