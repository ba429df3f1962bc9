import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../config/hcl.js';
import { resolveServerConfig } from './config.js';

const resolve = (text: string) => resolveServerConfig(parseConfigText(text), { dataDir: '/nonexistent/mayfly-config-registrars' });
const conf = (body: string): string => `server {\n  trust_domain = "example.org"\n  registrars {\n${body}\n  }\n}\n`;
const GOOD = `
    registrar "spiffe://example.org/ci/team-a" {
      spiffe_id_prefixes = ["spiffe://example.org/team-a/", "spiffe://example.org/shared/a"]
      parent_ids         = ["spiffe://example.org/spire/agent/k8s_psat/cluster-a/*", "spiffe://example.org/nodes/a"]
      owners             = ["team-a"]
    }
    registrar "spiffe://example.org/ci/team-b" {
      spiffe_id_prefixes = ["spiffe://example.org/team-b"]
      parent_ids         = ["spiffe://example.org/nodes/b"]
      owners             = ["team-b", "team-b-oncall"]
    }`;

describe('server.registrars', () => {
  it('is absent by default and reads each registrar, normalising a trailing slash', () => {
    expect(resolve('server { trust_domain = "example.org" }').registrars).toBeUndefined();
    const r = resolve(conf(GOOD)).registrars;
    expect([...(r?.keys() ?? [])]).toEqual(['spiffe://example.org/ci/team-a', 'spiffe://example.org/ci/team-b']);
    expect(r?.get('spiffe://example.org/ci/team-a')).toEqual({
      registrar: 'spiffe://example.org/ci/team-a',
      spiffeIdPrefixes: ['spiffe://example.org/team-a', 'spiffe://example.org/shared/a'],
      parentIds: ['spiffe://example.org/spire/agent/k8s_psat/cluster-a/*', 'spiffe://example.org/nodes/a'],
      owners: ['team-a'],
    });
  });

  it('refuses scopes wider than written or malformed, naming the registrar and item', () => {
    const bad = (prefixes: string, parents = '["spiffe://example.org/nodes/a"]', owners = '["team-a"]', label = 'spiffe://example.org/ci/x'): string =>
      conf(`registrar "${label}" {\n spiffe_id_prefixes = ${prefixes}\n parent_ids = ${parents}\n owners = ${owners}\n }`);
    const where = 'server.registrars.registrar.spiffe://example.org/ci/x';
    const cases: [string, RegExp][] = [
      [bad('["spiffe://example.org"]'), /spiffe_id_prefixes\[0\]: spiffe:\/\/example.org is the whole trust domain/],
      [bad('["spiffe://example.org/spire/server"]'), /spiffe_id_prefixes\[0\]: .* reserved \/spire namespace/],
      [bad('["spiffe://example.org/spire"]'), /reserved \/spire namespace/],
      [bad('["spiffe://example.org/team-a/../team-b"]'), /spiffe_id_prefixes\[0\]: .*'\.\.'/],
      [bad('["spiffe://example.org/team-a/%2e%2e"]'), /spiffe_id_prefixes\[0\]: .*percent-encoding/],
      [bad('["spiffe://example.org/team-a//"]'), /spiffe_id_prefixes\[0\]: .*empty segments/],
      [bad('["spiffe://other.org/team-a"]'), /not in this server's trust domain example.org/],
      [bad('[]'), /spiffe_id_prefixes must be a non-empty list/],
      [bad('["spiffe://example.org/a"]', '["spiffe://example.org/*"]'), /parent_ids\[0\]: .* covers every ID/],
      [bad('["spiffe://example.org/a"]', '["spiffe://example.org/nodes/a", 7]'), /parent_ids must be a non-empty list of strings/],
      [bad('["spiffe://example.org/a"]', undefined, '[""]'), /owners\[0\] is empty/],
      [bad('["spiffe://example.org/a"]', undefined, undefined, 'spiffe://example.org/spire/agent/x'), /reserved \/spire namespace/],
      [conf('registrar "spiffe://example.org/ci/x" {\n spiffe_id_prefixes = ["spiffe://example.org/a"]\n parent_ids = ["spiffe://example.org/n"]\n }'), /owners is required/],
      [conf('registrar "spiffe://example.org/ci/x" {\n spiffe_id_prefixes = ["spiffe://example.org/a"]\n parent_ids = ["spiffe://example.org/n"]\n owners = ["o"]\n admin = true\n }'), /unknown key .*\.admin/],
    ];
    for (const [text, re] of cases) {
      let message = '';
      try {
        resolve(text);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, text).toMatch(re);
      if (!text.includes('spire/agent/x')) expect(message).toContain(where);
    }
  });

  it('a problem names the line its registrar block opens on', () => {
    const text = conf('registrar "spiffe://example.org/ci/ok" {\n spiffe_id_prefixes = ["spiffe://example.org/a"]\n parent_ids = ["spiffe://example.org/n"]\n owners = ["o"]\n }\n registrar "spiffe://example.org/ci/x" {\n spiffe_id_prefixes = ["spiffe://example.org/spire"]\n parent_ids = ["spiffe://example.org/n"]\n owners = ["o"]\n }');
    expect(text.split('\n')[8]).toContain('registrar "spiffe://example.org/ci/x"');
    expect(() => resolve(text)).toThrow(/ci\/x\.spiffe_id_prefixes\[0\]: .*reserved \/spire namespace.* \(config line 9\)/);
  });

  it('a syntax error names the line', () => {
    expect(() => resolve(conf('registrar "spiffe://example.org/ci/x" {\n spiffe_id_prefixes = ["spiffe://example.org/a"\n }'))).toThrow(/line 6/);
  });
});
