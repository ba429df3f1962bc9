import { describe, expect, it } from 'vitest';
import { validateEntry } from './entry.js';
import { parseSelector, type Selector } from './selector.js';
import { instantiateTemplate, isTemplateId, templateProblem, templateValueProblem, verifyInstantiation } from './template.js';

const sels = (...s: string[]): Selector[] => s.map(parseSelector);
const K8S = 'spiffe://example.org/ns/{{k8s:ns}}/sa/{{k8s:sa}}';
const K8S_SELS = sels('k8s:ns:*', 'k8s:sa:*', 'k8s:pod-label:tier:web');

describe('templateProblem (entry create)', () => {
  it('accepts a well-formed template', () => {
    expect(isTemplateId(K8S)).toBe(true);
    expect(isTemplateId('spiffe://example.org/web')).toBe(false);
    expect(templateProblem(K8S, K8S_SELS)).toBeUndefined();
    expect(templateProblem('spiffe://example.org/user-{{unix:user}}', sels('unix:user:*'))).toBeUndefined();
    expect(templateProblem('spiffe://example.org/app/{{k8s:pod-label:app}}', sels('k8s:pod-label:app:*'))).toBeUndefined();
  });

  it.each([
    ['spiffe://{{k8s:ns}}.example.org/x', sels('k8s:ns:*'), /placeholder in the trust domain/],
    ['spiffe://example.org/{{k8s}}', sels('k8s:ns:*'), /placeholder "\{\{k8s\}\}"; a placeholder is \{\{type:key\}\}/],
    ['spiffe://example.org/{{K8S:ns}}', sels('k8s:ns:*'), /placeholder "\{\{K8S:ns\}\}"/],
    ['spiffe://example.org/{{k8s:sa}}', sels('k8s:ns:*'), /\{\{k8s:sa\}\} with no wildcard selector k8s:sa:\*/],
    ['spiffe://example.org/{{k8s:ns}}', sels('k8s:ns:*', 'k8s:sa:*'), /wildcard selector "k8s:sa:\*" but no placeholder/],
    ['spiffe://example.org/{{k8s:ns}}', sels('k8s:ns:*', 'k8s:*:x'), /wildcard in a non-final position/],
    ['spiffe://example.org/{{k8s:ns}}', sels('k8s:ns:*', 'k8s:sa:a*'), /wildcard in a non-final position/],
    ['spiffe://example.org/{{k8s:ns}}}', sels('k8s:ns:*'), /unbalanced/],
    ['spiffe://example.org/{{k8s:ns}}/../x', sels('k8s:ns:*'), /not make a valid SPIFFE ID.*dot segment|not make a valid SPIFFE ID/],
    ['spiffe://example.org/{{k8s:ns}}/', sels('k8s:ns:*'), /not make a valid SPIFFE ID/],
    ['spiffe://example.org/A B/{{k8s:ns}}', sels('k8s:ns:*'), /not make a valid SPIFFE ID/],
    ['http://example.org/{{k8s:ns}}', sels('k8s:ns:*'), /must start with 'spiffe:\/\/'/],
    [`spiffe://example.org/${Array.from({ length: 9 }, (_, i) => `{{k8s:k${i}}}`).join('/')}`, sels(...Array.from({ length: 9 }, (_, i) => `k8s:k${i}:*`)), /9 placeholders; the limit is 8/],
  ])('refuses %s', (t, s, why) => {
    expect(templateProblem(t, s)).toMatch(why);
  });

  it('validateEntry refuses a malformed template with ERR_ENTRY_INVALID naming spiffeId, and keeps a good one byte for byte', () => {
    const base = { parentId: 'spiffe://example.org/agent', selectors: [{ type: 'k8s', value: 'ns:*' }] };
    expect(() => validateEntry({ ...base, spiffeId: 'spiffe://example.org/{{k8s:sa}}' }, { trustDomain: 'example.org' })).toThrow(
      /invalid registration entry: spiffeId is a template that has placeholder \{\{k8s:sa\}\} with no wildcard selector/,
    );
    expect(() => validateEntry({ ...base, spiffeId: 'spiffe://other.org/{{k8s:ns}}' }, { trustDomain: 'example.org' })).toThrow(/not in the server's trust domain/);
    const e = validateEntry({ ...base, spiffeId: 'spiffe://example.org/ns/{{k8s:ns}}' }, { trustDomain: 'example.org' });
    expect(e.spiffeId).toBe('spiffe://example.org/ns/{{k8s:ns}}');
    // Without a trust domain (the datastore's check) the template is still checked.
    expect(() => validateEntry({ ...base, spiffeId: 'spiffe://example.org/{{nope}}' })).toThrow(/placeholder/);
  });

  it('a non-template entry keeps literal selector meaning: `*` is allowed and matches only itself', () => {
    const e = validateEntry({ spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'k8s', value: 'ns:*' }] });
    expect(e.selectors).toEqual([{ type: 'k8s', value: 'ns:*' }]);
  });
});

describe('instantiateTemplate (agent) and verifyInstantiation (server)', () => {
  it('yields the ID, the bindings and the concrete selectors', () => {
    const r = instantiateTemplate(K8S, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api', 'k8s:pod-label:tier:web', 'unix:uid:0'));
    expect(r).toEqual({
      spiffeId: 'spiffe://example.org/ns/prod/sa/api',
      bindings: sels('k8s:ns:prod', 'k8s:sa:api'),
      selectors: sels('k8s:ns:prod', 'k8s:sa:api', 'k8s:pod-label:tier:web'),
    });
    expect(verifyInstantiation(K8S, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api'), 'spiffe://example.org/ns/prod/sa/api')).toEqual({ spiffeId: 'spiffe://example.org/ns/prod/sa/api' });
  });

  it('a caller without a literal selector or without any value for a wildcard does not match', () => {
    expect(instantiateTemplate(K8S, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api'))).toBeUndefined();
    expect(instantiateTemplate(K8S, K8S_SELS, sels('k8s:ns:prod', 'k8s:pod-label:tier:web'))).toBeUndefined();
  });

  const hostile: [string, RegExp][] = [
    ['a/b', /holds '\/', which would add path segments/],
    ['..', /is "\.\.", a dot segment/],
    ['.', /is "\.", a dot segment/],
    ['%2e%2e', /holds '%'/],
    ['A', /uppercase/],
    ['Prod', /uppercase/],
    ['', /is empty/],
    ['x'.repeat(256), /longer than 255 bytes/],
    ['prodé', /outside a-z, 0-9/],
    ['p\u0440od', /outside a-z, 0-9/], // Cyrillic er
    ['a b', /outside a-z/],
    ['a:b', /outside a-z/],
    ['a\\b', /outside a-z/],
    ['?x', /outside a-z/],
  ];
  it.each(hostile)('hostile value %j yields no ID and says why', (v, why) => {
    const r = instantiateTemplate('spiffe://example.org/ns/{{k8s:ns}}', sels('k8s:ns:*'), [{ type: 'k8s', value: `ns:${v}` }]);
    expect(r).toBeDefined();
    expect(r).not.toHaveProperty('spiffeId');
    expect((r as { problem: string }).problem).toMatch(why);
    expect((r as { problem: string }).problem).toMatch(/\{\{k8s:ns\}\}/);
    expect(templateValueProblem(v)).toBeDefined();
    // The server refuses the same value when an agent sends it.
    const s = verifyInstantiation('spiffe://example.org/ns/{{k8s:ns}}', sels('k8s:ns:*'), [{ type: 'k8s', value: `ns:${v}` }]);
    expect((s as { problem: string }).problem).toMatch(why);
  });

  it('a value that is acceptable alone but makes the whole ID too long yields no ID', () => {
    const t = `spiffe://example.org/${Array.from({ length: 8 }, (_, i) => `{{k8s:k${i}}}`).join('/')}`;
    const s = sels(...Array.from({ length: 8 }, (_, i) => `k8s:k${i}:*`));
    const caller = Array.from({ length: 8 }, (_, i) => ({ type: 'k8s', value: `k${i}:${'a'.repeat(255)}` }));
    expect((instantiateTemplate(t, s, caller) as { problem: string }).problem).toMatch(/not a valid SPIFFE ID.*2048/);
  });

  it('two values for one wildcard are ambiguous: no ID', () => {
    const r = instantiateTemplate('spiffe://example.org/g/{{unix:supplementary_gid}}', sels('unix:supplementary_gid:*'), sels('unix:supplementary_gid:10', 'unix:supplementary_gid:20'));
    expect((r as { problem: string }).problem).toMatch(/2 values for unix:supplementary_gid.*exactly one/);
  });

  it('the server refuses bindings that do not fit the template, and a claimed ID it does not derive', () => {
    const t = 'spiffe://example.org/ns/{{k8s:ns}}/sa/{{k8s:sa}}';
    expect(verifyInstantiation(t, K8S_SELS, sels('k8s:ns:prod'))).toEqual({ problem: 'no value was given for {{k8s:sa}}' });
    expect((verifyInstantiation(t, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api', 'k8s:node:n1')) as { problem: string }).problem).toMatch(/does not bind a wildcard/);
    expect((verifyInstantiation(t, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api', 'k8s:sa:admin')) as { problem: string }).problem).toMatch(/2 values for k8s:sa/);
    expect((verifyInstantiation(t, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api'), 'spiffe://example.org/ns/prod/sa/admin') as { problem: string }).problem).toMatch(
      /asked SPIFFE ID "spiffe:\/\/example.org\/ns\/prod\/sa\/admin" is not what the template yields/,
    );
    // A literal selector of the entry is no binding.
    expect((verifyInstantiation(t, K8S_SELS, sels('k8s:ns:prod', 'k8s:sa:api', 'k8s:pod-label:tier:web')) as { problem: string }).problem).toMatch(/does not bind/);
  });

  it('keys holding colons bind by the longest wildcard key', () => {
    const t = 'spiffe://example.org/app/{{k8s:pod-label:app}}';
    const s = sels('k8s:pod-label:app:*');
    expect(instantiateTemplate(t, s, sels('k8s:pod-label:app:web'))).toMatchObject({ spiffeId: 'spiffe://example.org/app/web' });
    expect(verifyInstantiation(t, s, sels('k8s:pod-label:app:web'))).toEqual({ spiffeId: 'spiffe://example.org/app/web' });
  });
});
