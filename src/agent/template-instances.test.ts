import { describe, expect, it } from 'vitest';
import { SILENT_AGENT_LOGGER } from './logger.js';
import { TemplateInstances } from './template-instances.js';
import { testEntry } from './testing.js';

const tpl = testEntry({ entryId: 'tpl', spiffeId: 'spiffe://example.org/user/{{unix:user}}', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'unix', value: 'user:*' }] });
const plain = testEntry({ entryId: 'plain', spiffeId: 'spiffe://example.org/web', parentId: 'spiffe://example.org/agent', selectors: [{ type: 'unix', value: 'uid:0' }] });
const caller = (user: string): { type: string; value: string }[] => [{ type: 'unix', value: `uid:1` }, { type: 'unix', value: `user:${user}` }];

describe('TemplateInstances', () => {
  it('keeps templates apart, makes one instance per concrete ID and names the template on the server request', () => {
    const t = new TemplateInstances({ logger: SILENT_AGENT_LOGGER });
    expect(t.setEntries([tpl, plain])).toEqual([plain]);
    expect(t.resolve(caller('alice'))).toBe(true);
    expect(t.resolve(caller('alice'))).toBe(false);
    expect(t.resolve(caller('bob'))).toBe(true);
    const [a, b] = t.entries();
    expect([a?.spiffeId, b?.spiffeId]).toEqual(['spiffe://example.org/user/alice', 'spiffe://example.org/user/bob']);
    expect(a?.selectors).toEqual([{ type: 'unix', value: 'user:alice' }]);
    expect(TemplateInstances.isInstanceId(a!.entryId)).toBe(true);
    expect(t.request(a!.entryId)).toEqual({ templateId: 'tpl', spiffeId: 'spiffe://example.org/user/alice', templateSelectors: [{ type: 'unix', value: 'user:alice' }] });
    expect(t.request('plain')).toBeUndefined();
  });

  it('a hostile value makes no instance and is remembered as the reason for that selector set', () => {
    const t = new TemplateInstances({ logger: SILENT_AGENT_LOGGER });
    t.setEntries([tpl]);
    expect(t.resolve(caller('../root'))).toBe(false);
    expect(t.size).toBe(0);
    expect(t.refusals(caller('../root')).join()).toMatch(/selector value "\.\.\/root" for \{\{unix:user\}\} holds '\/'/);
    expect(t.refusals(caller('alice'))).toEqual([]);
  });

  it('drops instances when their template goes, re-derives them when it changes, and stops at its bound', () => {
    const t = new TemplateInstances({ logger: SILENT_AGENT_LOGGER, maxInstances: 2 });
    t.setEntries([tpl]);
    t.resolve(caller('a'));
    t.resolve(caller('b'));
    expect(t.resolve(caller('c'))).toBe(false);
    expect(t.refusals(caller('c')).join()).toMatch(/already serves 2 template instances/);
    const changed = { ...tpl, spiffeId: 'spiffe://example.org/u/{{unix:user}}', selectors: [{ type: 'unix', value: 'user:*' }, { type: 'unix', value: 'gid:5' }] };
    t.setEntries([changed]);
    expect(t.entries().map((e) => [e.spiffeId, e.selectors])).toEqual([
      ['spiffe://example.org/u/a', [{ type: 'unix', value: 'user:a' }, { type: 'unix', value: 'gid:5' }]],
      ['spiffe://example.org/u/b', [{ type: 'unix', value: 'user:b' }, { type: 'unix', value: 'gid:5' }]],
    ]);
    t.setEntries([plain]);
    expect(t.size).toBe(0);
  });
});
