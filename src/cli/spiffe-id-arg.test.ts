import { describe, expect, it } from 'vitest';
import { spiffeIdArg } from './server-common.js';

describe('spiffeIdArg and entry templates', () => {
  it('passes a template through only where entries take one (-spiffeID of entry create/update/show); the server checks it', () => {
    const t = 'spiffe://example.org/ns/{{k8s:ns}}';
    expect(spiffeIdArg(t, '-spiffeID', { template: true })).toBe(t);
    expect(() => spiffeIdArg(t, '-spiffeID')).toThrow(/-spiffeID: invalid SPIFFE ID/);
    expect(() => spiffeIdArg(t, '-parentID', {})).toThrow(/-parentID/);
    expect(() => spiffeIdArg('spiffe://example.org/a/../b', '-spiffeID', { template: true })).toThrow(/-spiffeID/);
  });
});
