/**
 * The conformance cases of issued X509-SVIDs and their revocations (issue 10), run inside
 * `runDatastoreConformance` for every store: recording, listing by SPIFFE ID, entry and agent,
 * revoking (unknown serials refused, first revocation kept), pruning after expiry, and
 * persistence across reopen.
 */
import { expect, it } from 'vitest';
import { isMayflyError, type ErrorCode } from '../../spiffe/errors.js';
import type { Datastore, X509SvidIssuance } from '../datastore.js';

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (isMayflyError(err)) return err.code;
    throw err;
  }
}

const TD = 'example.org';
const issuance = (n: number, over: Partial<X509SvidIssuance> = {}): X509SvidIssuance => ({
  serialHex: (0x1000 + n).toString(16).padStart(4, '0'),
  spiffeId: `spiffe://${TD}/workload/${n % 3}`,
  entryId: `entry-${n % 2}`,
  authorityId: 'ab'.repeat(20),
  notAfter: 1000 + n,
  ...over,
});

export function svidConformance(get: () => { ds: Datastore; reopen?: () => Promise<Datastore>; setDs(ds: Datastore): void }): void {
  it('records issued X509-SVIDs and lists them by SPIFFE ID and by entry', async () => {
    const { ds } = get();
    await ds.recordX509SvidIssuances(Array.from({ length: 6 }, (_, n) => issuance(n)));
    await ds.recordX509SvidIssuances([issuance(10, { entryId: '', spiffeId: `spiffe://${TD}/spire/agent/x` })]);
    expect(await ds.getX509SvidIssuance('1003')).toEqual(issuance(3));
    expect(await ds.getX509SvidIssuance('ffff')).toBeUndefined();
    expect((await ds.listX509SvidIssuances({ bySpiffeId: `spiffe://${TD}/workload/0` })).map((i) => i.serialHex)).toEqual(['1000', '1003']);
    expect((await ds.listX509SvidIssuances({ byEntryId: 'entry-1' })).map((i) => i.serialHex)).toEqual(['1001', '1003', '1005']);
    expect((await ds.listX509SvidIssuances({ byEntryId: 'entry-1', notExpiredAt: 1004 })).map((i) => i.serialHex)).toEqual(['1005']);
    // A serial recorded again is replaced, its old index keys with it.
    await ds.recordX509SvidIssuances([issuance(3, { entryId: 'entry-9', spiffeId: `spiffe://${TD}/moved` })]);
    expect((await ds.listX509SvidIssuances({ byEntryId: 'entry-1' })).map((i) => i.serialHex)).toEqual(['1001', '1005']);
    expect((await ds.listX509SvidIssuances({ bySpiffeId: `spiffe://${TD}/moved` })).map((i) => i.serialHex)).toEqual(['1003']);
  });

  it('lists by the agent an SVID was signed for; a record without one (or with \'\') names none', async () => {
    const { ds } = get();
    const agent = `spiffe://${TD}/spire/agent/a`;
    await ds.recordX509SvidIssuances([issuance(1, { agentId: agent }), issuance(2, { agentId: `spiffe://${TD}/spire/agent/b` }), issuance(3, { agentId: agent }), issuance(4, { agentId: '' }), issuance(5)]);
    expect(await ds.getX509SvidIssuance('1001')).toEqual(issuance(1, { agentId: agent }));
    expect(await ds.getX509SvidIssuance('1004')).toEqual(issuance(4));
    expect((await ds.listX509SvidIssuances({ byAgentId: agent })).map((i) => i.serialHex)).toEqual(['1001', '1003']);
    expect((await ds.listX509SvidIssuances({ byAgentId: agent, notExpiredAt: 1002 })).map((i) => i.serialHex)).toEqual(['1003']);
    // Recorded again for another agent: the old agent's index key goes.
    await ds.recordX509SvidIssuances([issuance(3, { agentId: `spiffe://${TD}/spire/agent/b` })]);
    expect((await ds.listX509SvidIssuances({ byAgentId: agent })).map((i) => i.serialHex)).toEqual(['1001']);
    const [revoked] = await ds.revokeX509Svids([{ serialHex: '1001', revokedAt: 1, reason: 'privilegeWithdrawn' }]);
    expect(revoked?.agentId).toBe(agent);
    expect(await codeOf(ds.listX509SvidIssuances({ byAgentId: agent, byEntryId: 'entry-1' }))).toBe('ERR_DATASTORE_INVALID');
    expect(await codeOf(ds.listX509SvidIssuances({ byAgentId: '' }))).toBe('ERR_DATASTORE_INVALID');
  });

  it('refuses bad issuance records and queries', async () => {
    const { ds } = get();
    expect(await codeOf(ds.recordX509SvidIssuances([issuance(1, { serialHex: 'ABCD' })]))).toBe('ERR_DATASTORE_INVALID');
    expect(await codeOf(ds.recordX509SvidIssuances([issuance(1, { serialHex: 'abc' })]))).toBe('ERR_DATASTORE_INVALID');
    expect(await codeOf(ds.recordX509SvidIssuances([issuance(1, { notAfter: -1 })]))).toBe('ERR_DATASTORE_INVALID');
    expect(await codeOf(ds.recordX509SvidIssuances([]))).toBe('ERR_DATASTORE_INVALID');
    expect(await codeOf(ds.listX509SvidIssuances({}))).toBe('ERR_DATASTORE_INVALID');
    expect(await codeOf(ds.getX509SvidIssuance('zz'))).toBe('ERR_DATASTORE_INVALID');
    expect(await ds.getX509SvidIssuance('1001')).toBeUndefined();
  });

  it('revokes recorded serials only, keeps the first revocation, and lists them', async () => {
    const { ds } = get();
    await ds.recordX509SvidIssuances([issuance(1), issuance(2), issuance(3)]);
    expect(await codeOf(ds.revokeX509Svids([{ serialHex: '1001', revokedAt: 500, reason: 'keyCompromise' }, { serialHex: 'dead', revokedAt: 500, reason: 'keyCompromise' }]))).toBe(
      'ERR_DATASTORE_NOT_FOUND',
    );
    // Nothing was written by the refused call.
    expect(await ds.listRevokedX509Svids()).toEqual([]);
    expect(await codeOf(ds.revokeX509Svids([{ serialHex: '1001', revokedAt: 500, reason: 'bogus' }]))).toBe('ERR_DATASTORE_INVALID');
    const out = await ds.revokeX509Svids([
      { serialHex: '1002', revokedAt: 500, reason: 'keyCompromise' },
      { serialHex: '1001', revokedAt: 501, reason: 'unspecified' },
    ]);
    expect(out).toEqual([
      { ...issuance(2), revokedAt: 500, reason: 'keyCompromise' },
      { ...issuance(1), revokedAt: 501, reason: 'unspecified' },
    ]);
    const again = await ds.revokeX509Svids([{ serialHex: '1002', revokedAt: 900, reason: 'superseded' }]);
    expect(again).toEqual([{ ...issuance(2), revokedAt: 500, reason: 'keyCompromise' }]);
    expect((await ds.listRevokedX509Svids()).map((r) => [r.serialHex, r.reason])).toEqual([
      ['1001', 'unspecified'],
      ['1002', 'keyCompromise'],
    ]);
  });

  it('prunes issuances and revocations once expired', async () => {
    const { ds } = get();
    await ds.recordX509SvidIssuances(Array.from({ length: 6 }, (_, n) => issuance(n)));
    await ds.revokeX509Svids([
      { serialHex: '1001', revokedAt: 1, reason: 'superseded' },
      { serialHex: '1004', revokedAt: 1, reason: 'superseded' },
    ]);
    expect(await ds.pruneX509Svids(1003)).toBe(3); // notAfter 1000, 1001, 1002
    expect(await ds.getX509SvidIssuance('1001')).toBeUndefined();
    expect((await ds.listRevokedX509Svids()).map((r) => r.serialHex)).toEqual(['1004']);
    expect((await ds.listX509SvidIssuances({ byEntryId: 'entry-1' })).map((i) => i.serialHex)).toEqual(['1003', '1005']);
    expect(await codeOf(ds.revokeX509Svids([{ serialHex: '1000', revokedAt: 1, reason: 'superseded' }]))).toBe('ERR_DATASTORE_NOT_FOUND');
    expect(await ds.pruneX509Svids(1003)).toBe(0);
  });

  it('keeps issuances and revocations across close and reopen', async () => {
    const h = get();
    expect(h.reopen, 'a persistent datastore harness must supply reopen()').toBeDefined();
    await h.ds.recordX509SvidIssuances([issuance(1), issuance(2)]);
    await h.ds.revokeX509Svids([{ serialHex: '1002', revokedAt: 7, reason: 'cessationOfOperation' }]);
    await h.ds.close();
    const ds = await h.reopen!();
    h.setDs(ds);
    expect(await ds.getX509SvidIssuance('1001')).toEqual(issuance(1));
    expect(await ds.listRevokedX509Svids()).toEqual([{ ...issuance(2), revokedAt: 7, reason: 'cessationOfOperation' }]);
  });

  it('holds 20,000 revoked serials and prunes them in one call', async () => {
    const { ds } = get();
    const many = Array.from({ length: 20_000 }, (_, n) => issuance(n, { serialHex: (0x100000 + n).toString(16), notAfter: 5000 }));
    for (let i = 0; i < many.length; i += 10_000) await ds.recordX509SvidIssuances(many.slice(i, i + 10_000));
    for (let i = 0; i < many.length; i += 10_000) await ds.revokeX509Svids(many.slice(i, i + 10_000).map((m) => ({ serialHex: m.serialHex, revokedAt: 1, reason: 'keyCompromise' })));
    expect(await ds.listRevokedX509Svids()).toHaveLength(20_000);
    expect(await ds.pruneX509Svids(5001)).toBe(20_000);
    expect(await ds.listRevokedX509Svids()).toEqual([]);
  });
}
