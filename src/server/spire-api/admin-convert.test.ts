/**
 * SPIRE admin API conversions and paging (issue 14), without a server: SPIRE's page rules
 * over Mayfly's pages, SPIRE's filter checks and words, and partial updates that keep
 * Mayfly's own fields.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { TrustDomain } from '../../spiffe/id.js';
import type { WireAgent, WireEntry } from '../messages.js';
import { agentFilterFromSpire, agentIdFromSpire, expiresBeforeFromSpire } from './agent-convert.js';
import { entryFilterFromSpire, mergeEntryUpdate, repeatedSelector } from './entry-convert.js';
import { countAll, spirePage, type SourcePage } from './paging.js';

const TD = TrustDomain.parse('example.org');
const id = (path: string, td = 'example.org'): { trust_domain: string; path: string } => ({ trust_domain: td, path });

/** A Mayfly-like listing of 0..n-1 that pages by "after index" tokens and records each ask. */
function source(n: number, maxPage: number): { asks: { size: number; token: string }[]; fetch: (size: number, token: string) => Promise<SourcePage<number>> } {
  const asks: { size: number; token: string }[] = [];
  return {
    asks,
    fetch: async (size, token) => {
      asks.push({ size, token });
      if (size < 1 || size > maxPage) throw new Error(`page size ${size} out of range`);
      if (token !== '' && !/^\d+$/.test(token)) throw new Error('bad token');
      const from = token === '' ? 0 : Number(token) + 1;
      const items = Array.from({ length: Math.max(0, Math.min(size, n - from)) }, (_, i) => from + i);
      return { items, next: items.length === size && from + size < n ? String(from + size - 1) : '' };
    },
  };
}

describe('spirePage: SPIRE page rules over Mayfly pages', () => {
  it('page_size 0 or negative answers everything at once and ignores the token, as SPIRE', async () => {
    for (const pageSize of [0, -1, -2147483648]) {
      const s = source(2500, 1000);
      const page = await spirePage({ pageSize, pageToken: 'not-even-a-token', maxPage: 1000, fetch: s.fetch });
      expect(page.items).toHaveLength(2500);
      expect(page.next).toBe('');
      expect(s.asks.map((a) => a.token)).toEqual(['', '999', '1999']);
    }
  });

  it('a huge page_size is not refused: it gathers Mayfly pages, never asking beyond the limit', async () => {
    const s = source(2500, 1000);
    const page = await spirePage({ pageSize: 2147483647, pageToken: '', maxPage: 1000, fetch: s.fetch });
    expect(page.items).toEqual(Array.from({ length: 2500 }, (_, i) => i));
    expect(page.next).toBe('');
  });

  it('a page over several Mayfly pages ends exactly at page_size and continues from there', async () => {
    const s = source(2500, 1000);
    const first = await spirePage({ pageSize: 1500, pageToken: '', maxPage: 1000, fetch: s.fetch });
    expect(first.items).toHaveLength(1500);
    expect(s.asks.map((a) => a.size)).toEqual([1000, 500]);
    const second = await spirePage({ pageSize: 1500, pageToken: first.next, maxPage: 1000, fetch: s.fetch });
    expect(second.items).toEqual(Array.from({ length: 1000 }, (_, i) => 1500 + i));
    expect(second.next).toBe('');
  });

  it('with a filter Mayfly lacks, pages are read until one item is kept; only the last page is empty', async () => {
    const s = source(100, 1000);
    const keep = (n: number): boolean => n % 10 === 9;
    const seen: number[] = [];
    let token = '';
    let pages = 0;
    do {
      const p = await spirePage({ pageSize: 7, pageToken: token, maxPage: 1000, fetch: s.fetch, keep });
      pages++;
      if (p.next !== '') expect(p.items.length).toBeGreaterThan(0);
      seen.push(...p.items);
      token = p.next;
    } while (token !== '' && pages < 100);
    expect(seen).toEqual([9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
    expect(await countAll(1000, source(100, 1000).fetch, keep)).toBe(10);
  });

  it('a bad token reaches the source (which refuses it)', async () => {
    await expect(spirePage({ pageSize: 5, pageToken: 'garbage!', maxPage: 1000, fetch: source(10, 1000).fetch })).rejects.toThrow('bad token');
  });
});

describe('SPIRE entry filters', () => {
  const code = (fn: () => unknown): { code: unknown; message: string } => {
    try {
      fn();
    } catch (err) {
      return { code: (err as { code?: unknown }).code, message: (err as Error).message };
    }
    return { code: 'none', message: '' };
  };

  it('translates the filters Mayfly has and keeps hint/downstream as a predicate', () => {
    const f = entryFilterFromSpire(TD, {
      by_spiffe_id: id('/w'),
      by_parent_id: id('/spire/agent/x'),
      by_selectors: { selectors: [{ type: 'unix', value: 'uid:1' }], match: 'MATCH_SUPERSET' },
      by_federates_with: { trust_domains: ['spiffe://other.org', 'third.org'], match: 'MATCH_ANY' },
      by_hint: { value: 'h' },
      by_downstream: { value: false },
    });
    expect(f.mayfly).toEqual({
      by_spiffe_id: 'spiffe://example.org/w',
      by_parent_id: 'spiffe://example.org/spire/agent/x',
      by_selectors: { selectors: [{ type: 'unix', value: 'uid:1' }], match: 'MATCH_SUPERSET' },
      by_federates_with: { trust_domains: ['other.org', 'third.org'], match: 'MATCH_ANY' },
    });
    const e = { hint: 'h', downstream: false } as WireEntry;
    expect(f.keep?.(e)).toBe(true);
    expect(f.keep?.({ ...e, downstream: true })).toBe(false);
    expect(f.keep?.({ ...e, hint: 'other' })).toBe(false);
    // An empty hint is no filter (SPIRE's datastore); no filter at all is a plain count.
    expect(entryFilterFromSpire(TD, { by_hint: { value: '' } }).empty).toBe(true);
    expect(entryFilterFromSpire(TD, null).empty).toBe(true);
  });

  it('refuses malformed filters with INVALID_ARGUMENT in SPIRE words', () => {
    const cases: [Parameters<typeof entryFilterFromSpire>[1], string][] = [
      [{ by_parent_id: id('/x', 'other.org') }, 'malformed parent ID filter'],
      [{ by_parent_id: id('') }, 'malformed parent ID filter'],
      [{ by_spiffe_id: id('/spire/agent/x') }, 'malformed SPIFFE ID filter'],
      [{ by_spiffe_id: id('no-slash') }, 'malformed SPIFFE ID filter'],
      [{ by_spiffe_id: id('/a', 'Bad TD') }, 'malformed SPIFFE ID filter'],
      [{ by_selectors: { selectors: [], match: 'MATCH_EXACT' } }, 'malformed selectors filter: empty selector set'],
      [{ by_selectors: { selectors: [{ type: 'a:b', value: 'v' }], match: 'MATCH_EXACT' } }, "selector type contains ':'"],
      [{ by_selectors: { selectors: [{ type: 'unix', value: '' }], match: 'MATCH_EXACT' } }, 'missing selector value'],
      [{ by_federates_with: { trust_domains: [], match: 'MATCH_ANY' } }, 'empty trust domain set'],
      [{ by_federates_with: { trust_domains: ['not a td'], match: 'MATCH_ANY' } }, 'malformed federates with filter'],
    ];
    for (const [f, msg] of cases) {
      const r = code(() => entryFilterFromSpire(TD, f));
      expect(r.code, JSON.stringify(f)).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(r.message).toContain(msg);
    }
  });
});

describe('repeated selectors (SPIRE: ALREADY_EXISTS per item)', () => {
  it('names the first repeat, and nothing for distinct selectors', () => {
    expect(repeatedSelector([{ type: 'unix', value: 'uid:1' }, { type: 'unix', value: 'gid:1' }])).toBeUndefined();
    expect(repeatedSelector([{ type: 'unix', value: 'uid:1' }, { type: 'k8s', value: 'ns:a' }, { type: 'unix', value: 'uid:1' }])).toBe('unix:uid:1');
    expect(repeatedSelector([])).toBeUndefined();
  });
});

describe('SPIRE partial entry updates', () => {
  const stored: WireEntry = {
    id: 'e1',
    spiffe_id: 'spiffe://example.org/w',
    parent_id: 'spiffe://example.org/spire/agent/a',
    selectors: [{ type: 'unix', value: 'uid:1' }],
    x509_svid_ttl: 100,
    jwt_svid_ttl: 50,
    dns_names: ['a.example'],
    federates_with: [],
    admin: false,
    downstream: false,
    hint: 'old',
    expires_at: 0,
    revision: 4,
    created_at: 10,
    owner: 'team-a',
    labels: { env: 'prod' },
    purpose: 'payments',
  };

  it('a masked update changes only the named fields and keeps Mayfly fields and the stored revision', () => {
    const out = mergeEntryUpdate(stored, { id: 'e1', hint: 'new', x509_svid_ttl: 999, revision_number: 0 }, { hint: true });
    expect(out).toEqual({ ...stored, hint: 'new' });
  });

  it('no mask replaces every SPIRE field (as SPIRE) but still keeps owner, labels, purpose', () => {
    const out = mergeEntryUpdate(
      stored,
      { id: 'e1', spiffe_id: id('/w2'), parent_id: id('/spire/agent/b'), selectors: [{ type: 'k8s', value: 'ns:x' }], hint: '', x509_svid_ttl: 0, revision_number: 1 },
      null,
    );
    expect(out).toMatchObject({ spiffe_id: 'spiffe://example.org/w2', parent_id: 'spiffe://example.org/spire/agent/b', selectors: [{ type: 'k8s', value: 'ns:x' }], hint: '', x509_svid_ttl: 0, dns_names: [] });
    expect(out).toMatchObject({ owner: 'team-a', labels: { env: 'prod' }, purpose: 'payments', revision: 4, created_at: 10 });
  });

  it('judges only named fields: a malformed unnamed ID is ignored, a named one refused; store_svid refused', () => {
    expect(mergeEntryUpdate(stored, { id: 'e1', spiffe_id: id('broken'), hint: 'x' }, { hint: true }).spiffe_id).toBe(stored.spiffe_id);
    expect(() => mergeEntryUpdate(stored, { id: 'e1', spiffe_id: id('broken') }, { spiffe_id: true })).toThrow(/path/);
    expect(() => mergeEntryUpdate(stored, { id: 'e1', store_svid: true }, { store_svid: true })).toThrow(/store_svid/);
  });
});

describe('SPIRE agent filters and IDs', () => {
  const agent: WireAgent = {
    id: 'spiffe://example.org/spire/agent/join_token/t',
    attestation_type: 'join_token',
    x509svid_serial_number: '0a',
    x509svid_expires_at: 2000,
    selectors: [{ type: 'a', value: '1' }, { type: 'b', value: '2' }],
    banned: false,
    can_reattest: false,
    created_at: 1,
    updated_at: 1,
  };

  it('parses SPIRE by_expires_before (Go layout) and ignores what it cannot parse, as SPIRE', () => {
    expect(expiresBeforeFromSpire('2026-12-07 10:00:00 +0000 +00')).toBe(Date.UTC(2026, 11, 7, 10) / 1000);
    expect(expiresBeforeFromSpire('2026-12-07 12:00:00 +0200 +02')).toBe(Date.UTC(2026, 11, 7, 10) / 1000);
    expect(expiresBeforeFromSpire('tomorrow')).toBeUndefined();
    expect(agentFilterFromSpire({ by_expires_before: 'tomorrow' }).empty).toBe(true);
  });

  it('maps ban state to Mayfly and the rest to a predicate', () => {
    const f = agentFilterFromSpire({
      by_banned: { value: false },
      by_attestation_type: 'join_token',
      by_can_reattest: { value: false },
      by_selector_match: { selectors: [{ type: 'a', value: '1' }], match: 'MATCH_SUPERSET' },
    });
    expect(f.mayfly).toEqual({ by_banned: 'BAN_FILTER_NOT_BANNED', by_expired_before: 0 });
    expect(f.keep?.(agent)).toBe(true);
    expect(f.keep?.({ ...agent, attestation_type: 'x509pop' })).toBe(false);
    expect(f.keep?.({ ...agent, can_reattest: true })).toBe(false);
    expect(agentFilterFromSpire({ by_selector_match: { selectors: [{ type: 'a', value: '1' }], match: 'MATCH_EXACT' } }).keep?.(agent)).toBe(false);
    expect(agentFilterFromSpire({ by_banned: { value: true } }).mayfly.by_banned).toBe('BAN_FILTER_BANNED');
  });

  it('refuses an agent ID outside the trust domain or the agent namespace: INVALID_ARGUMENT "invalid agent ID"', () => {
    expect(agentIdFromSpire(TD, id('/spire/agent/x')).toString()).toBe('spiffe://example.org/spire/agent/x');
    for (const bad of [id('/spire/agent/x', 'other.org'), id('/workload'), id(''), id('x'), null]) {
      expect(() => agentIdFromSpire(TD, bad)).toThrow(/^invalid agent ID: /);
      try {
        agentIdFromSpire(TD, bad);
      } catch (err) {
        expect((err as { code: number }).code).toBe(GrpcStatus.INVALID_ARGUMENT);
      }
    }
  });
});
