import { describe, expect, it } from 'vitest';
import { spiffeIdFromSpire, spiffeIdToSpire } from './ids.js';

describe('SPIRE SPIFFEID messages and entry templates', () => {
  it('shows a template with its placeholders literally in the path; SPIRE input stays strict, with its usual message', () => {
    expect(spiffeIdToSpire('spiffe://example.org/ns/{{k8s:ns}}/sa/{{k8s:sa}}')).toEqual({ trust_domain: 'example.org', path: '/ns/{{k8s:ns}}/sa/{{k8s:sa}}' });
    expect(spiffeIdToSpire('spiffe://example.org/web')).toEqual({ trust_domain: 'example.org', path: '/web' });
    expect(() => spiffeIdFromSpire({ trust_domain: 'example.org', path: '/ns/{{k8s:ns}}' }, 'entry.spiffe_id')).toThrow(/^entry\.spiffe_id: invalid SPIFFE ID/);
  });
});
