import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import { EntryError, entryUniqueKey, validateEntry, type EntryInput } from './entry.js';

const TD = TrustDomain.parse('example.org');
const base: EntryInput = {
  spiffeId: 'spiffe://example.org/web',
  parentId: 'spiffe://example.org/spire/agent/join_token/abc',
  selectors: [{ type: 'unix', value: 'uid:1000' }],
};

function fieldOf(input: unknown, opts: { trustDomain?: TrustDomain } = { trustDomain: TD }): string {
  try {
    validateEntry(input, opts);
  } catch (err) {
    if (isMayflyError(err, 'ERR_ENTRY_INVALID')) return (err as EntryError).field;
    throw err;
  }
  throw new Error('entry was accepted');
}

describe('validateEntry', () => {
  it('accepts a minimal entry, filling documented defaults and a random UUID', () => {
    const e = validateEntry(base, { trustDomain: TD });
    expect(e).toEqual({
      ...base,
      entryId: e.entryId,
      x509SvidTtl: 0,
      jwtSvidTtl: 0,
      dnsNames: [],
      federatesWith: [],
      admin: false,
      downstream: false,
      hint: '',
      expiresAt: 0,
      owner: '',
      labels: {},
      purpose: '',
    });
    expect(e.entryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(validateEntry(base).entryId).not.toBe(e.entryId);
  });

  it('keeps every field as given, with no silent normalisation', () => {
    const input: EntryInput = {
      ...base,
      entryId: 'Custom_ID-1.2',
      selectors: [{ type: 'unix', value: 'uid:2' }, { type: 'k8s', value: 'ns:Prod' }],
      x509SvidTtl: 3600,
      jwtSvidTtl: 300,
      dnsNames: ['Web.Example.org', '*.svc.example.org'],
      federatesWith: ['partner.org'],
      admin: true,
      downstream: true,
      hint: 'external ✓',
      expiresAt: 2_000_000_000,
      owner: 'team-payments ✓',
      labels: { env: 'prod', 'app.kubernetes.io/name': 'Web' },
      purpose: 'checkout API',
    };
    expect(validateEntry(input, { trustDomain: 'example.org' })).toEqual(input);
  });

  it('names the field and the rule for every broken rule', () => {
    const big = 'x'.repeat(1024 * 1024);
    const cases: [unknown, string][] = [
      [{ ...base, spiffeId: 'spiffe://other.org/web' }, 'spiffeId'],
      [{ ...base, parentId: 'spiffe://other.org/agent' }, 'parentId'],
      [{ ...base, spiffeId: 'spiffe://example.org' }, 'spiffeId'],
      [{ ...base, spiffeId: 'spiffe://example.org/a/../b' }, 'spiffeId'],
      [{ ...base, spiffeId: `spiffe://example.org/${big}` }, 'spiffeId'],
      [{ ...base, spiffeId: undefined }, 'spiffeId'],
      [{ ...base, selectors: [] }, 'selectors'],
      [{ ...base, selectors: 'unix:uid:1' }, 'selectors'],
      [{ ...base, selectors: Array.from({ length: 10_000 }, (_, i) => ({ type: 'unix', value: `uid:${i}` })) }, 'selectors'],
      [{ ...base, selectors: Array.from({ length: 65 }, (_, i) => ({ type: 'unix', value: `uid:${i}` })) }, 'selectors'],
      [{ ...base, selectors: [{ type: 'unix', value: big }] }, 'selectors[0]'],
      [{ ...base, selectors: [{ type: 'unix', value: 'uid:1' }, { type: 'unix', value: 'uid:1' }] }, 'selectors[1]'],
      [{ ...base, selectors: [null] }, 'selectors[0]'],
      [{ ...base, entryId: '' }, 'entryId'],
      [{ ...base, entryId: 'a/b' }, 'entryId'],
      [{ ...base, entryId: 'x'.repeat(256) }, 'entryId'],
      [{ ...base, x509SvidTtl: -1 }, 'x509SvidTtl'],
      [{ ...base, x509SvidTtl: 1.5 }, 'x509SvidTtl'],
      [{ ...base, jwtSvidTtl: 31_536_001 }, 'jwtSvidTtl'],
      [{ ...base, jwtSvidTtl: '60' }, 'jwtSvidTtl'],
      [{ ...base, dnsNames: ['bad_name.example.org'] }, 'dnsNames[0]'],
      [{ ...base, dnsNames: ['ok.org', '-bad.org'] }, 'dnsNames[1]'],
      [{ ...base, dnsNames: ['a.org', 'A.org'] }, 'dnsNames[1]'],
      [{ ...base, dnsNames: ['a..org'] }, 'dnsNames[0]'],
      [{ ...base, dnsNames: ['*'] }, 'dnsNames[0]'],
      [{ ...base, dnsNames: [big] }, 'dnsNames[0]'],
      [{ ...base, dnsNames: Array.from({ length: 33 }, (_, i) => `h${i}.org`) }, 'dnsNames'],
      [{ ...base, federatesWith: ['spiffe://partner.org'] }, 'federatesWith[0]'],
      [{ ...base, federatesWith: ['Partner.org'] }, 'federatesWith[0]'],
      [{ ...base, federatesWith: ['example.org'] }, 'federatesWith[0]'],
      [{ ...base, federatesWith: ['a.org', 'a.org'] }, 'federatesWith[1]'],
      [{ ...base, admin: 'yes' }, 'admin'],
      [{ ...base, downstream: 1 }, 'downstream'],
      [{ ...base, hint: big }, 'hint'],
      [{ ...base, hint: 'a\nb' }, 'hint'],
      [{ ...base, expiresAt: 253_402_300_800 }, 'expiresAt'],
      [{ ...base, surprise: true }, 'surprise'],
      [null, 'entry'],
      [[base], 'entry'],
    ];
    for (const [input, field] of cases) {
      expect(fieldOf(input), JSON.stringify(input).slice(0, 200)).toBe(field);
    }
    const err = (() => {
      try {
        validateEntry({ ...base, hint: big }, { trustDomain: TD });
      } catch (e) {
        return e as Error;
      }
    })()!;
    expect(err.message).toBe('invalid registration entry: hint is longer than 1024 bytes');
  });

  it('checks only shape and bounds when no trust domain is given', () => {
    expect(validateEntry({ ...base, spiffeId: 'spiffe://other.org/web' }).spiffeId).toBe('spiffe://other.org/web');
    expect(validateEntry({ ...base, federatesWith: ['example.org'] }).federatesWith).toEqual(['example.org']);
    expect(fieldOf({ ...base, selectors: [] }, {})).toBe('selectors');
  });
});

describe('entryUniqueKey', () => {
  it('ignores selector order and nothing else', () => {
    const a = { ...base, selectors: [{ type: 'unix', value: 'uid:1' }, { type: 'k8s', value: 'ns:a' }] };
    const b = { ...base, selectors: [{ type: 'k8s', value: 'ns:a' }, { type: 'unix', value: 'uid:1' }] };
    expect(entryUniqueKey(a)).toBe(entryUniqueKey(b));
    expect(entryUniqueKey(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(entryUniqueKey({ ...a, parentId: 'spiffe://example.org/other' })).not.toBe(entryUniqueKey(a));
    expect(entryUniqueKey({ ...a, spiffeId: 'spiffe://example.org/other' })).not.toBe(entryUniqueKey(a));
    expect(entryUniqueKey({ ...a, selectors: [{ type: 'unix', value: 'uid:1' }] })).not.toBe(entryUniqueKey(a));
    // A selector boundary cannot be shifted to forge a collision.
    expect(entryUniqueKey({ ...base, spiffeId: 'spiffe://example.org/a', parentId: 'spiffe://example.org/b/c' })).not.toBe(
      entryUniqueKey({ ...base, spiffeId: 'spiffe://example.org/b/a', parentId: 'spiffe://example.org/c' }),
    );
  });
});
