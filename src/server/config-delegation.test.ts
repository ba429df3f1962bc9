import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HclObject } from '../config/hcl.js';
import { TestIdp } from '../delegation/testing.js';
import { resolveServerConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'mayfly-config-delegation-'));
const jwks = join(dir, 'jwks.json');
writeFileSync(jwks, JSON.stringify({ keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'k' }] }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rule = { agents: ['spiffe://example.org/agent/a'], users: ['alice'], audiences: ['https://mcp.test'], scopes: ['read'] };
const delegation = (extra: HclObject = {}): HclObject => ({
  server: { delegation: { upstream: { issuer: 'https://idp.test', audience: 'mayfly', algorithms: ['RS256'], jwks_file: jwks }, rules: [rule], ...extra } },
});
const resolve = (tree: HclObject) => resolveServerConfig(tree, { dataDir: join(dir, 'data') });

describe('server.delegation', () => {
  it('is off by default, and on with defaults when the block is there', () => {
    expect(resolve({}).delegation).toBeUndefined();
    const d = resolve(delegation()).delegation;
    expect(d).toMatchObject({ address: '127.0.0.1', port: 8445, maxTtlSeconds: 300, upstream: { issuer: 'https://idp.test', algorithms: ['RS256'] } });
    expect(d?.policy.rules).toHaveLength(1);
    expect(resolve(delegation({ enabled: false })).delegation).toBeUndefined();
  });

  it('refuses a bad rule, naming where', () => {
    expect(() => resolve(delegation({ rules: [{ ...rule, audiences: ['*'] }] }))).toThrow(/server\.delegation\.rules\[0\]\.audiences/);
    expect(() => resolve(delegation({ rules: [] }))).toThrow(/server\.delegation\.rules: must be a non-empty list/);
  });

  it('refuses a missing JWKS file, a symmetric algorithm and a max_ttl above 5m', () => {
    const bad = (u: HclObject, extra: HclObject = {}): HclObject => ({ server: { delegation: { upstream: { issuer: 'https://idp.test', audience: 'mayfly', algorithms: ['RS256'], jwks_file: jwks, ...u }, rules: [rule], ...extra } } });
    expect(() => resolve(bad({ jwks_file: join(dir, 'none.json') }))).toThrow(/server\.delegation\.upstream\.jwks_file: cannot read/);
    expect(() => resolve(bad({ algorithms: ['HS256'] }))).toThrow(/server\.delegation\.upstream\.algorithms: HS256 not allowed/);
    expect(() => resolve(bad({}, { max_ttl: '10m' }))).toThrow(/server\.delegation\.max_ttl/);
  });
});

describe('server.delegation.upstream discovery_url', () => {
  const ca = join(dir, 'idp-ca.pem');
  const notPem = join(dir, 'not.pem');
  writeFileSync(ca, new TestIdp(1).caPem);
  writeFileSync(notPem, 'hello');
  const up = (u: HclObject): HclObject => ({ server: { delegation: { upstream: { issuer: 'https://idp.test', audience: 'mayfly', algorithms: ['RS256'], ...u }, rules: [rule] } } });

  it('takes an https discovery URL, a ca_file and a refresh interval', () => {
    const d = resolve(up({ discovery_url: 'https://idp.test/.well-known/openid-configuration', ca_file: ca, refresh_interval: '1m' })).delegation;
    expect(d?.upstream.discovery).toMatchObject({ url: 'https://idp.test/.well-known/openid-configuration', caFile: ca, refreshIntervalSeconds: 60 });
    expect(d?.upstream.discovery?.ca).toMatch(/BEGIN CERTIFICATE/);
    expect(d?.upstream.jwks).toBeUndefined();
    expect(resolve(up({ discovery_url: 'https://idp.test/.well-known/openid-configuration' })).delegation?.upstream.discovery).toEqual({ url: 'https://idp.test/.well-known/openid-configuration', refreshIntervalSeconds: 300 });
  });

  it('refuses a malformed upstream at start, naming the key', () => {
    expect(() => resolve(up({}))).toThrow(/server\.delegation\.upstream: set exactly one of jwks_file .* and discovery_url/);
    expect(() => resolve(up({ jwks_file: jwks, discovery_url: 'https://idp.test/x' }))).toThrow(/set exactly one of jwks_file/);
    expect(() => resolve(up({ discovery_url: 'http://idp.test/.well-known/openid-configuration' }))).toThrow(/server\.delegation\.upstream\.discovery_url must be an https URL/);
    expect(() => resolve(up({ discovery_url: 'not a url' }))).toThrow(/server\.delegation\.upstream\.discovery_url: "not a url" is not a URL/);
    expect(() => resolve(up({ discovery_url: 'https://u:p@idp.test/x' }))).toThrow(/discovery_url must not carry userinfo/);
    expect(() => resolve(up({ discovery_url: 'https://idp.test/x', ca_file: join(dir, 'none.pem') }))).toThrow(/server\.delegation\.upstream\.ca_file: cannot read/);
    expect(() => resolve(up({ discovery_url: 'https://idp.test/x', ca_file: notPem }))).toThrow(/server\.delegation\.upstream\.ca_file: .* holds no PEM certificate/);
    expect(() => resolve(up({ discovery_url: 'https://idp.test/x', refresh_interval: '1s' }))).toThrow(/server\.delegation\.upstream\.refresh_interval must be between 10s/);
    expect(() => resolve(up({ jwks_file: jwks, ca_file: ca }))).toThrow(/server\.delegation\.upstream\.ca_file applies to discovery_url only/);
    expect(() => resolve(up({ discovery_url: 'https://idp.test/x', jwks_url: 'https://idp.test/jwks' }))).toThrow(/unknown key server\.delegation\.upstream\.jwks_url/);
  });
});

describe('server.delegation.rate_limit', () => {
  it('is on with sensible defaults, configurable, and can be turned off', () => {
    expect(resolve(delegation()).delegation?.rateLimit).toEqual({ perActor: { ratePerSecond: 10, burst: 20 }, perAddress: { ratePerSecond: 50, burst: 100 } });
    expect(resolve(delegation({ rate_limit: { per_actor: 0.5, per_actor_burst: 2, per_address: 5, per_address_burst: 10 } })).delegation?.rateLimit).toEqual({
      perActor: { ratePerSecond: 0.5, burst: 2 },
      perAddress: { ratePerSecond: 5, burst: 10 },
    });
    expect(resolve(delegation({ rate_limit: { enabled: false } })).delegation?.rateLimit).toBeUndefined();
  });

  it('refuses a bad limit, naming the key', () => {
    expect(() => resolve(delegation({ rate_limit: { per_actor: 0 } }))).toThrow(/server\.delegation\.rate_limit\.per_actor must be a positive number/);
    expect(() => resolve(delegation({ rate_limit: { per_address_burst: 1.5 } }))).toThrow(/server\.delegation\.rate_limit\.per_address_burst must be a positive whole number/);
    expect(() => resolve(delegation({ rate_limit: { per_actor: '10' } }))).toThrow(/rate_limit\.per_actor must be/);
    expect(() => resolve(delegation({ rate_limit: { rate: 1 } }))).toThrow(/unknown key server\.delegation\.rate_limit\.rate/);
  });
});
