/**
 * @module datastore/testdata/relationships-conformance
 *
 * The federation-relationship part of the datastore conformance suite (conformance.ts
 * calls it inside its describe block, with the same fresh store per test).
 */
import { describe, expect, it } from 'vitest';
import { isMayflyError, type ErrorCode } from '../../spiffe/errors.js';
import type { Datastore, NewFederationRelationship } from '../datastore.js';

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (isMayflyError(err)) return err.code;
    throw err;
  }
}

const web = (td: string): NewFederationRelationship => ({
  trustDomain: td,
  bundleEndpointUrl: `https://${td}/bundle`,
  bundleEndpointProfile: 'https_web',
  endpointSpiffeId: '',
});
const spiffe = (td: string): NewFederationRelationship => ({
  trustDomain: td,
  bundleEndpointUrl: `https://${td}:8443`,
  bundleEndpointProfile: 'https_spiffe',
  endpointSpiffeId: `spiffe://${td}/spire/server`,
});

export function relationshipConformance(h: { ds(): Datastore; reopen(): Promise<Datastore>; sibling(): Promise<Datastore | undefined> }): void {
  describe('federation relationships', () => {
    it('creates, reads, updates, lists and deletes relationships; the bundle outlives its relationship', async () => {
      const ds = h.ds();
      expect(await ds.getFederationRelationship('partner.org')).toBeUndefined();
      const created = await ds.createFederationRelationship(spiffe('partner.org'));
      expect(created).toMatchObject({ ...spiffe('partner.org') });
      expect(created.updatedAt).toBe(created.createdAt);
      expect(await ds.getFederationRelationship('partner.org')).toEqual(created);
      expect(await codeOf(ds.createFederationRelationship(web('partner.org')))).toBe('ERR_DATASTORE_ALREADY_EXISTS');

      const updated = await ds.updateFederationRelationship(web('partner.org'));
      expect(updated).toMatchObject({ ...web('partner.org'), createdAt: created.createdAt });
      expect(await ds.getFederationRelationship('partner.org')).toEqual(updated);
      expect(await codeOf(ds.updateFederationRelationship(web('nobody.org')))).toBe('ERR_DATASTORE_NOT_FOUND');

      await ds.createFederationRelationship(web('a.org'));
      await ds.createFederationRelationship(web('z.org'));
      const page = await ds.listFederationRelationships();
      expect(page.items.map((r) => r.trustDomain)).toEqual(['a.org', 'partner.org', 'z.org']);
      expect(page.nextPageToken).toBe('');

      await ds.setBundle({ trustDomain: 'partner.org', bundle: '{"keys":[]}', sequence: 3 });
      expect(await ds.deleteFederationRelationship('partner.org')).toEqual(updated);
      expect(await ds.getFederationRelationship('partner.org')).toBeUndefined();
      expect(await codeOf(ds.deleteFederationRelationship('partner.org'))).toBe('ERR_DATASTORE_NOT_FOUND');
      expect((await ds.getBundle('partner.org'))?.sequence).toBe(3);
    });

    it('pages relationships in trust domain order, each exactly once', async () => {
      const ds = h.ds();
      const names = Array.from({ length: 7 }, (_, i) => `td${i}.org`);
      for (const n of [...names].reverse()) await ds.createFederationRelationship(web(n));
      const seen: string[] = [];
      let pageToken = '';
      for (let i = 0; i < 10; i++) {
        const p = await ds.listFederationRelationships({ pageSize: 3, pageToken });
        expect(p.items.length).toBeLessThanOrEqual(3);
        seen.push(...p.items.map((r) => r.trustDomain));
        if (p.nextPageToken === '') break;
        pageToken = p.nextPageToken;
      }
      expect(seen).toEqual(names);
      expect(await codeOf(ds.listFederationRelationships({ pageSize: 0 }))).toBe('ERR_DATASTORE_INVALID');
      expect(await codeOf(ds.listFederationRelationships({ pageToken: 'forged' }))).toBe('ERR_DATASTORE_INVALID');
    });

    it.each([
      ['a SPIFFE ID as trust domain', { ...web('x.org'), trustDomain: 'spiffe://x.org' }],
      ['an upper-case trust domain', { ...web('x.org'), trustDomain: 'X.org' }],
      ['an http URL', { ...web('x.org'), bundleEndpointUrl: 'http://x.org/' }],
      ['userinfo', { ...web('x.org'), bundleEndpointUrl: 'https://u:p@x.org/' }],
      ['a query', { ...web('x.org'), bundleEndpointUrl: 'https://x.org/?a=1' }],
      ['a fragment', { ...web('x.org'), bundleEndpointUrl: 'https://x.org/#f' }],
      ['whitespace', { ...web('x.org'), bundleEndpointUrl: 'https://x.org/ a' }],
      ['a 3000-byte URL', { ...web('x.org'), bundleEndpointUrl: `https://x.org/${'a'.repeat(3000)}` }],
      ['an unknown profile', { ...web('x.org'), bundleEndpointProfile: 'acme' as 'https_web' }],
      ['https_spiffe without endpoint ID', { ...spiffe('x.org'), endpointSpiffeId: '' }],
      ['https_spiffe with a bad endpoint ID', { ...spiffe('x.org'), endpointSpiffeId: 'spiffe://X.org/a' }],
      ['https_web with an endpoint ID', { ...web('x.org'), endpointSpiffeId: 'spiffe://x.org/a' }],
    ])('refuses %s and stores nothing', async (_why, rel) => {
      const ds = h.ds();
      expect(await codeOf(ds.createFederationRelationship(rel))).toBe('ERR_DATASTORE_INVALID');
      expect((await ds.listFederationRelationships()).items).toEqual([]);
    });

    it('lets exactly one of 10 racing creates of one trust domain win', async () => {
      const ds = h.ds();
      const other = (await h.sibling()) ?? ds;
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? ds : other).createFederationRelationship(web('race.org'))));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(isMayflyError(r.reason, 'ERR_DATASTORE_ALREADY_EXISTS')).toBe(true);
    });

    it('keeps relationships across close and reopen', async () => {
      const ds = h.ds();
      const r = await ds.createFederationRelationship(spiffe('kept.org'));
      await ds.close();
      const again = await h.reopen();
      expect(await again.getFederationRelationship('kept.org')).toEqual(r);
    });
  });
}
