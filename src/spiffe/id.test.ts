import { describe, expect, it } from 'vitest';
import { SpiffeId, TrustDomain } from './id.js';
import { SpiffeIdError } from './errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof SpiffeIdError) return e.code;
    throw e;
  }
  return undefined;
}

describe('SpiffeId.parse', () => {
  it('accepts IDs with and without a path and keeps them byte for byte', () => {
    expect(SpiffeId.parse('spiffe://example.org/ns/default/sa/web').toString()).toBe('spiffe://example.org/ns/default/sa/web');
    const td = SpiffeId.parse('spiffe://example.org');
    expect(td.isTrustDomainId).toBe(true);
    expect(td.trustDomain.name).toBe('example.org');
    expect(SpiffeId.parse('spiffe://td/A-Z_a.z/..a/a..').path).toBe('/A-Z_a.z/..a/a..');
  });

  it.each([
    ['', 'ERR_SPIFFE_ID_EMPTY'],
    ['SPIFFE://td/x', 'ERR_SPIFFE_ID_WRONG_SCHEME'],
    ['https://td/x', 'ERR_SPIFFE_ID_WRONG_SCHEME'],
    ['spiffe:///x', 'ERR_SPIFFE_ID_MISSING_TRUST_DOMAIN'],
    ['spiffe://TD/x', 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://td:443/x', 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://user@td/x', 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://t%41/x', 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://td/a/%2e%2e/admin', 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR'],
    ['spiffe://td/a\tb', 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR'],
    ['spiffe://td/x?q=1', 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR'],
    ['spiffe://td/x#f', 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR'],
    ['spiffe://td/a/../b', 'ERR_SPIFFE_ID_DOT_SEGMENT'],
    ['spiffe://td/.', 'ERR_SPIFFE_ID_DOT_SEGMENT'],
    ['spiffe://td//x', 'ERR_SPIFFE_ID_EMPTY_SEGMENT'],
    ['spiffe://td/', 'ERR_SPIFFE_ID_TRAILING_SLASH'],
    ['spiffe://td/x/', 'ERR_SPIFFE_ID_TRAILING_SLASH'],
    [`spiffe://${'a'.repeat(256)}/x`, 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG'],
    [`spiffe://td/${'a'.repeat(2048)}`, 'ERR_SPIFFE_ID_TOO_LONG'],
  ])('rejects %j with %s', (input, code) => {
    expect(codeOf(() => SpiffeId.parse(input))).toBe(code);
  });

  it('accepts the longest IDs the standard allows', () => {
    expect(codeOf(() => SpiffeId.parse(`spiffe://${'a'.repeat(255)}/x`))).toBeUndefined();
    const id = `spiffe://td/${'a'.repeat(2048 - 'spiffe://td/'.length)}`;
    expect(codeOf(() => SpiffeId.parse(id))).toBeUndefined();
  });

  it('requires a path for workload IDs', () => {
    expect(codeOf(() => SpiffeId.parseWorkload('spiffe://td'))).toBe('ERR_SPIFFE_ID_PATH_REQUIRED');
  });

  it('misuse is a TypeError', () => {
    expect(() => SpiffeId.parse(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('TrustDomain', () => {
  it('parses a name or a trust domain ID', () => {
    expect(TrustDomain.parse('example.org').idString).toBe('spiffe://example.org');
    expect(TrustDomain.parse('spiffe://example.org').name).toBe('example.org');
    // As go-spiffe's TrustDomainFromString: a SPIFFE ID with a path names its trust domain.
    expect(TrustDomain.parse('spiffe://example.org/x').name).toBe('example.org');
    expect(codeOf(() => TrustDomain.parse('spiffe://example.org/'))).toBe('ERR_SPIFFE_ID_TRAILING_SLASH');
    expect(codeOf(() => TrustDomain.parse('Example.org'))).toBe('ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR');
  });

  it('builds workload IDs that obey the path rules', () => {
    const td = TrustDomain.parse('example.org');
    expect(td.idWithPath('/web').toString()).toBe('spiffe://example.org/web');
    expect(codeOf(() => td.idWithPath('web'))).toBe('ERR_SPIFFE_ID_NO_LEADING_SLASH');
    expect(codeOf(() => td.idWithPath(''))).toBe('ERR_SPIFFE_ID_PATH_REQUIRED');
  });
});
