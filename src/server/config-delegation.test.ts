import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HclObject } from '../config/hcl.js';
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
