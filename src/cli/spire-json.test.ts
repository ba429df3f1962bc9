/**
 * SPIRE-shaped JSON: the encoding (SPIRE v1.13.3's cliprinter output, recorded from a real
 * `spire-server entry create -output json`), the conversions, and `-data` reading both the
 * SPIRE file format and `entry show -output json`'s output.
 */
import { describe, expect, it } from 'vitest';
import type { WireEntry } from '../server/messages.js';
import { entriesFromData, idsFromDeleteFile } from './entry-data.js';
import { spireJsonText } from './output.js';
import { spireEntry, spirePurgeResult } from './spire-json.js';

// Printed by spire-server v1.13.3 `entry create -spiffeID spiffe://example.org/web
// -parentID spiffe://example.org/host -selector unix:uid:1000 -hint 'a<b&c' -output json`.
const SPIRE_CREATE =
  '{"results":[{"entry":{"admin":false,"created_at":"1796282755","dns_names":[],"downstream":false,"expires_at":"0","federates_with":[],"hint":"a\\u003cb\\u0026c","id":"02cfe8dd-0f4f-40bd-8ccc-fad81e43c38a","jwt_svid_ttl":0,"parent_id":{"path":"/host","trust_domain":"example.org"},"revision_number":"0","selectors":[{"type":"unix","value":"uid:1000"}],"spiffe_id":{"path":"/web","trust_domain":"example.org"},"store_svid":false,"x509_svid_ttl":0},"status":{"code":0,"message":"OK"}}]}\n';

const wire: WireEntry = {
  id: '02cfe8dd-0f4f-40bd-8ccc-fad81e43c38a',
  spiffe_id: 'spiffe://example.org/web',
  parent_id: 'spiffe://example.org/host',
  selectors: [{ type: 'unix', value: 'uid:1000' }],
  x509_svid_ttl: 0,
  jwt_svid_ttl: 0,
  dns_names: [],
  federates_with: [],
  admin: false,
  downstream: false,
  hint: 'a<b&c',
  expires_at: 0,
  revision: 0,
  created_at: 1796282755,
  owner: '',
  labels: {},
  purpose: '',
};

describe('SPIRE-shaped JSON', () => {
  it('prints a create response byte for byte as spire-server does', () => {
    expect(spireJsonText({ results: [{ status: { code: 0, message: 'OK' }, entry: spireEntry(wire) }] })).toBe(SPIRE_CREATE);
  });

  it('drops nulls and unset fields, in objects and lists, and sorts keys', () => {
    expect(spireJsonText({ b: 1, a: null, c: [null, { z: undefined, y: '\u2028' }] })).toBe('{"b":1,"c":[{"y":"\\u2028"}]}\n');
  });
});


it('prints agent purge results as SPIRE does: a one-element list of {expired_agents: [{agent_id, deleted}]}', () => {
  expect(spireJsonText(spirePurgeResult([]))).toBe('[{"expired_agents":[]}]\n');
  expect(spireJsonText(spirePurgeResult([{ id: 'spiffe://example.org/spire/agent/x', deleted: true }])))
    .toBe('[{"expired_agents":[{"agent_id":"spiffe://example.org/spire/agent/x","deleted":true}]}]\n');
});

describe('-data', () => {
  it("reads SPIRE's file format and entry show's output to the same entries", () => {
    const spireFile = JSON.stringify({
      entries: [{ spiffe_id: wire.spiffe_id, parent_id: wire.parent_id, selectors: wire.selectors, entry_id: wire.id, hint: wire.hint, entryExpiry: 5, x509_svid_ttl: 60 }],
    });
    const shown = JSON.stringify({ entries: [{ ...spireEntry({ ...wire, expires_at: 5, x509_svid_ttl: 60 }) }], next_page_token: '' });
    const a = entriesFromData(spireFile, 'a.json');
    const b = entriesFromData(shown, 'b.json');
    const { revision: _r, created_at: _c, ...fromShow } = b[0] as Partial<WireEntry>;
    expect(a[0]).toEqual({ spiffe_id: wire.spiffe_id, parent_id: wire.parent_id, selectors: wire.selectors, id: wire.id, hint: wire.hint, expires_at: 5, x509_svid_ttl: 60 });
    expect(fromShow).toMatchObject(a[0] as object);
    expect(b[0]?.revision).toBe(0);
  });

  it('refuses what it cannot carry, naming the field', () => {
    const one = (e: object): string => JSON.stringify({ entries: [e] });
    expect(() => entriesFromData(one({ spife_id: 'x' }), 'f')).toThrow(/entries\[0\] has unknown field "spife_id"/);
    expect(() => entriesFromData(one({ store_svid: true }), 'f')).toThrow(/entries\[0\]\.store_svid is true, but Mayfly has no SVIDStore/);
    expect(() => entriesFromData(one({ spiffe_id: { trust_domain: 'Ex.org', path: '/a' } }), 'f')).toThrow(/entries\[0\]\.spiffe_id/);
    expect(() => entriesFromData(one({ expires_at: '-1' }), 'f')).toThrow(/expires_at must be a non-negative integer/);
    expect(() => entriesFromData('{"entries": 1}', 'f')).toThrow(/must hold \{"entries"/);
    expect(() => entriesFromData('{', 'f')).toThrow(/-data f is not valid JSON/);
  });

  it('entry delete -file reads {"ids": [...]}', () => {
    expect(idsFromDeleteFile('{"ids": ["a", "b"]}', 'f')).toEqual(['a', 'b']);
    expect(() => idsFromDeleteFile('{"ids": [""]}', 'f')).toThrow(/-file f must hold \{"ids"/);
  });
});
