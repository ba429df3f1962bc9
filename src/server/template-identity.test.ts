/**
 * The server's own check of what an agent asks for from an entry template: the agent's
 * claim is never used as is (server/template-identity). The e2e path (a real agent asking)
 * is test/interop/entry-templates.interop.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { testEntry } from '../agent/testing.js';
import { isMayflyError } from '../spiffe/errors.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import type { ApiContext } from './api-context.js';
import { checkNotShadowing, identityForRequest, templateEntriesYielding } from './template-identity.js';

const warned: string[] = [];
const ctx = {
  trustDomain: TrustDomain.parse('example.org'),
  serverId: SpiffeId.parse('spiffe://example.org/spire/server'),
  logger: { warn: (_f: object, m: string) => warned.push(m), info() {}, debug() {}, error() {} },
} as unknown as ApiContext;

const template = testEntry({
  entryId: 'tpl',
  spiffeId: 'spiffe://example.org/ns/{{k8s:ns}}/sa/{{k8s:sa}}',
  parentId: 'spiffe://example.org/spire/agent/x',
  selectors: [{ type: 'k8s', value: 'ns:*' }, { type: 'k8s', value: 'sa:*' }],
});
const firstSegment = testEntry({ entryId: 'first', spiffeId: 'spiffe://example.org/{{unix:user}}/agent/x', parentId: 'spiffe://example.org/a', selectors: [{ type: 'unix', value: 'user:*' }] });
const plain = testEntry({ entryId: 'plain', spiffeId: 'spiffe://example.org/web', parentId: 'spiffe://example.org/a', selectors: [{ type: 'unix', value: 'uid:1' }] });

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(isMayflyError(err, 'ERR_PERMISSION_DENIED') || isMayflyError(err, 'ERR_REQUEST_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('identityForRequest', () => {
  it('derives the concrete ID from the stored template and the values sent', () => {
    const id = identityForRequest(ctx, template, { spiffe_id: 'spiffe://example.org/ns/prod/sa/api', template_selectors: [{ type: 'k8s', value: 'ns:prod' }, { type: 'k8s', value: 'sa:api' }] }, 'agent');
    expect(id.toString()).toBe('spiffe://example.org/ns/prod/sa/api');
  });

  it('refuses an ID the values do not yield, however plausible', () => {
    expect(refusal(() => identityForRequest(ctx, template, { spiffe_id: 'spiffe://example.org/ns/prod/sa/admin', template_selectors: [{ type: 'k8s', value: 'ns:prod' }, { type: 'k8s', value: 'sa:api' }] }, 'agent'))).toMatch(
      /yields no SVID: the asked SPIFFE ID "spiffe:\/\/example.org\/ns\/prod\/sa\/admin" is not what the template yields/,
    );
    expect(warned).toContain('refused an SVID for an entry template');
  });

  it.each([
    ['a/b', /holds '\/'/],
    ['..', /dot segment/],
    ['%2e%2e', /holds '%'/],
    ['Admin', /uppercase/],
    ['x'.repeat(300), /longer than 255 bytes/],
    ['ąb', /outside a-z/],
  ])('refuses the hostile value %j sent by an agent, naming the rule', (v, why) => {
    expect(refusal(() => identityForRequest(ctx, template, { template_selectors: [{ type: 'k8s', value: `ns:${v}` }, { type: 'k8s', value: 'sa:api' }] }, 'agent'))).toMatch(why);
  });

  it('refuses missing, extra and duplicate values, and template selectors for an ordinary entry', () => {
    expect(refusal(() => identityForRequest(ctx, template, {}, 'agent'))).toMatch(/no value was given for \{\{k8s:ns\}\}/);
    expect(refusal(() => identityForRequest(ctx, template, { template_selectors: [{ type: 'k8s', value: 'ns:a' }, { type: 'k8s', value: 'sa:b' }, { type: 'unix', value: 'uid:0' }] }, 'agent'))).toMatch(/does not bind/);
    expect(refusal(() => identityForRequest(ctx, template, { template_selectors: [{ type: 'k8s', value: 'ns:a' }, { type: 'k8s', value: 'ns:b' }, { type: 'k8s', value: 'sa:b' }] }, 'agent'))).toMatch(/2 values for k8s:ns/);
    expect(refusal(() => identityForRequest(ctx, template, { template_selectors: [{ type: 'k8s', value: 'ns:\n' }] }, 'agent'))).toMatch(/control character/);
    expect(refusal(() => identityForRequest(ctx, plain, { template_selectors: [{ type: 'unix', value: 'uid:1' }] }, 'agent'))).toMatch(/not a template/);
    expect(refusal(() => identityForRequest(ctx, plain, { spiffe_id: 'spiffe://example.org/other' }, 'agent'))).toMatch(/is for spiffe:\/\/example.org\/web/);
    expect(identityForRequest(ctx, plain, {}, 'agent').toString()).toBe('spiffe://example.org/web');
  });

  it('refuses an instantiation in the reserved /spire namespace (a placeholder in the first segment)', () => {
    expect(identityForRequest(ctx, firstSegment, { template_selectors: [{ type: 'unix', value: 'user:web' }] }, 'agent').toString()).toBe('spiffe://example.org/web/agent/x');
    expect(refusal(() => identityForRequest(ctx, firstSegment, { template_selectors: [{ type: 'unix', value: 'user:spire' }] }, 'agent'))).toMatch(/reserved/);
  });
});

describe('templateEntriesYielding (delivery attribution)', () => {
  it('finds the template behind a concrete ID for the reported selectors, and nothing for malformed ones', () => {
    expect(templateEntriesYielding([template, plain], 'spiffe://example.org/ns/a/sa/b', ['k8s:ns:a', 'k8s:sa:b', 'unix:uid:0'])).toEqual(['tpl']);
    expect(templateEntriesYielding([template], 'spiffe://example.org/ns/a/sa/c', ['k8s:ns:a', 'k8s:sa:b'])).toEqual([]);
    expect(templateEntriesYielding([template], 'spiffe://example.org/ns/a/sa/b', ['nocolon'])).toEqual([]);
    expect(templateEntriesYielding([template], 'spiffe://example.org/ns/a/sa/b', undefined)).toEqual([]);
  });
});

describe('checkNotShadowing', () => {
  it('refuses an instance whose ID an ordinary entry not authorised for the agent holds; allows it otherwise', async () => {
    const elsewhere = testEntry({ entryId: 'elsewhere', spiffeId: 'spiffe://example.org/ns/a/sa/b', parentId: 'spiffe://example.org/other', selectors: [{ type: 'unix', value: 'uid:9' }] });
    const withDs = (items: unknown[]): ApiContext => ({ ...ctx, ds: { listEntries: async () => ({ items, nextPageToken: '' }) } }) as unknown as ApiContext;
    const id = SpiffeId.parse('spiffe://example.org/ns/a/sa/b');
    await expect(checkNotShadowing(withDs([elsewhere]), template, id, new Map([['tpl', template]]), 'agent')).rejects.toThrow(/another registration entry \(not authorised for this agent\) holds/);
    await expect(checkNotShadowing(withDs([elsewhere]), template, id, new Map([['tpl', template], ['elsewhere', elsewhere]]), 'agent')).resolves.toBeUndefined();
    await expect(checkNotShadowing(withDs([]), template, id, new Map(), 'agent')).resolves.toBeUndefined();
    await expect(checkNotShadowing(withDs([elsewhere]), plain, id, new Map(), 'agent')).resolves.toBeUndefined();
  });
});
