/**
 * Per-SVID revocation on a real server (issue 10): issued SVIDs are recorded, `RevokeX509SVIDs`
 * revokes by serial, SPIFFE ID and entry, hostile requests get the right status, the CRLs are
 * re-issued and reach an open authorised-entry stream, and the audit hook is told.
 */
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { parseCrl, verifyCrlSignature } from '../spiffe/x509/crl.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import type { X509SvidsRevokedEvent } from './api-context.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireEntry, WireX509Svid } from './messages.js';
import { startTestServer, type TestServer } from './testing.js';

const TD = 'example.org';
let ts: TestServer;
let admin: ServerApiClients;
const opened: ServerApiClients[] = [];
const events: X509SvidsRevokedEvent[] = [];
let skewSeconds = 0;

async function codeOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
    return { code: status.OK, details: '' };
  } catch (err) {
    return { code: (err as ServiceError).code, details: (err as ServiceError).details };
  }
}

function clients(svid?: { certChain: Buffer[]; privateKey: KeyObject }): ServerApiClients {
  const c = tcpClients({ address: `127.0.0.1:${ts.port}`, trustDomain: TD, bundleRoots: [...ts.ca.getBundle().x509Authorities], ...(svid ? { svid } : {}) });
  opened.push(c);
  return c;
}

async function attest(): Promise<{ id: string; svid: WireX509Svid; clients: ServerApiClients }> {
  const t = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
  const key = generateKeyPair('ec-p256');
  const res = await unaryCall<{ svid: WireX509Svid }>(clients().Agent, 'AttestAgent', {
    attestation_data: { type: 'join_token', payload: Buffer.from(t.value) },
    csr: createCsr({ privateKey: key.privateKey }),
  });
  return { id: res.svid.spiffe_id, svid: res.svid, clients: clients({ certChain: res.svid.cert_chain, privateKey: key.privateKey }) };
}

async function newSvid(a: { clients: ServerApiClients }, entryId: string): Promise<WireX509Svid> {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; svid: WireX509Svid | null }[] }>(a.clients.SVID, 'BatchNewX509SVID', {
    params: [{ entry_id: entryId, csr: createCsr({ privateKey: generateKeyPair().privateKey }) }],
  });
  expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
  return res.results[0]?.svid as WireX509Svid;
}

async function entry(parent: string, path: string): Promise<WireEntry> {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry }[] }>(admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: `spiffe://${TD}${path}`, parent_id: parent, selectors: [{ type: 'unix', value: `uid:${path.length}` }] }],
  });
  expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
  return res.results[0]?.entry as WireEntry;
}

type Revoked = { serial_number: string; spiffe_id: string; entry_id: string; reason: string; already_revoked: boolean };
const revoke = (req: object): Promise<{ revoked: Revoked[] }> => unaryCall<{ revoked: Revoked[] }>(admin.SVID, 'RevokeX509SVIDs', req);

beforeAll(async () => {
  ts = await startTestServer({
    keyManager: 'memory',
    now: () => new Date(Date.now() + skewSeconds * 1000),
    onX509SvidsRevoked: (e) => {
      events.push(e);
    },
  });
  admin = adminSocketClients(ts.adminSocketPath);
  opened.push(admin);
});

afterAll(async () => {
  for (const c of opened) c.close();
  await ts.stop();
});

describe('RevokeX509SVIDs', () => {
  it('records every issued X509-SVID: agent SVIDs, batch SVIDs (with their entry) and admin mints', async () => {
    const a = await attest();
    const e = await entry(a.id, '/recorded');
    const svid = await newSvid(a, e.id);
    const minted = await unaryCall<{ svid: WireX509Svid }>(admin.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: generateKeyPair().privateKey }), spiffe_id: `spiffe://${TD}/minted` });
    const activeId = ts.ca.authorityState('x509').active?.id;
    expect(await ts.datastore.getX509SvidIssuance(a.svid.serial_number)).toMatchObject({ spiffeId: a.id, entryId: '', authorityId: activeId });
    expect(await ts.datastore.getX509SvidIssuance(svid.serial_number)).toMatchObject({ spiffeId: e.spiffe_id, entryId: e.id, authorityId: activeId, notAfter: Number(svid.expires_at), agentId: a.id });
    expect(await ts.datastore.getX509SvidIssuance(minted.svid.serial_number)).toMatchObject({ spiffeId: `spiffe://${TD}/minted`, entryId: '' });
  });

  it('revokes by serial; the CRL lists it and reaches an open authorised-entry stream at once', async () => {
    const a = await attest();
    const e = await entry(a.id, '/victim');
    const svid = await newSvid(a, e.id);
    const sync = a.clients.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<{ x509_crls: Buffer[] }> };
    const s = sync.SubscribeAuthorizedEntries({});
    const updates: { x509_crls: Buffer[] }[] = [];
    const waiters: (() => void)[] = [];
    s.on('data', (u: { x509_crls: Buffer[] }) => {
      updates.push(u);
      for (const w of waiters.splice(0)) w();
    });
    s.on('error', () => undefined);
    const next = async (pred: () => boolean): Promise<void> => {
      while (!pred()) await new Promise<void>((r) => waiters.push(r));
    };
    await next(() => updates.length >= 1);
    const listed = (u: { x509_crls: Buffer[] } | undefined): string[] => (u?.x509_crls ?? []).flatMap((c) => parseCrl(c).entries.map((x) => x.serialHex));
    expect(listed(updates[0])).not.toContain(svid.serial_number);

    const before = events.length;
    // openssl's colon form, upper case: normalised to the stored serial.
    const colon = svid.serial_number.replace(/^00/, '').toUpperCase().match(/../g)?.join(':') as string;
    const res = await revoke({ serial_number: colon, reason: 'keyCompromise' });
    expect(res.revoked).toEqual([expect.objectContaining({ serial_number: svid.serial_number, spiffe_id: e.spiffe_id, entry_id: e.id, reason: 'keyCompromise', already_revoked: false })]);
    await next(() => listed(updates[updates.length - 1]).includes(svid.serial_number));
    const crl = parseCrl((updates[updates.length - 1]?.x509_crls ?? []).find((c) => parseCrl(c).entries.length > 0) as Buffer);
    expect(crl.entries.find((x) => x.serialHex === svid.serial_number)?.reason).toBe('keyCompromise');
    const active = ts.ca.authorityState('x509').active;
    expect(verifyCrlSignature(crl, active?.certificate as Buffer)).toBe(true);
    expect(crl.authorityKeyId?.toString('hex')).toBe(active?.id);
    expect(parseCertificate(svid.cert_chain[0] as Buffer).authorityKeyId?.equals(crl.authorityKeyId as Buffer)).toBe(true);
    s.cancel();

    // The audit hook heard it once; a second revocation is idempotent and keeps the first reason.
    expect(events.slice(before)).toHaveLength(1);
    expect(events[before]?.revoked.map((r) => r.serialHex)).toEqual([svid.serial_number]);
    const again = await revoke({ serial_number: svid.serial_number, reason: 'superseded' });
    expect(again.revoked[0]).toMatchObject({ reason: 'keyCompromise', already_revoked: true });
    expect(events).toHaveLength(before + 1);
  });

  it('revokes every unexpired SVID of a SPIFFE ID, and of an entry', async () => {
    const a = await attest();
    const e1 = await entry(a.id, '/many');
    const e2 = await entry(a.id, '/by-entry');
    const s1 = await newSvid(a, e1.id);
    const s2 = await newSvid(a, e1.id);
    const s3 = await newSvid(a, e2.id);
    const byId = await revoke({ spiffe_id: e1.spiffe_id });
    expect(byId.revoked.map((r) => r.serial_number).sort()).toEqual([s1.serial_number, s2.serial_number].sort());
    expect(byId.revoked.every((r) => r.reason === 'unspecified')).toBe(true);
    const byEntry = await revoke({ entry_id: e2.id, reason: 'cessationOfOperation' });
    expect(byEntry.revoked.map((r) => r.serial_number)).toEqual([s3.serial_number]);
    const revoked = (await ts.datastore.listRevokedX509Svids()).map((r) => r.serialHex);
    expect(revoked).toEqual(expect.arrayContaining([s1.serial_number, s2.serial_number, s3.serial_number]));
  });

  it('banning an agent revokes its own SVID and its own workloads\' SVIDs (privilegeWithdrawn), not another agent\'s', async () => {
    const banned = await attest();
    const other = await attest();
    const mine = await newSvid(banned, (await entry(banned.id, '/banned-workload')).id);
    const theirs = await newSvid(other, (await entry(other.id, '/other-workload')).id);
    await unaryCall(admin.Agent, 'BanAgent', { id: banned.id });
    const revoked = new Map((await ts.datastore.listRevokedX509Svids()).map((r) => [r.serialHex, r.reason]));
    expect(revoked.get(banned.svid.serial_number)).toBe('privilegeWithdrawn');
    expect(revoked.get(mine.serial_number)).toBe('privilegeWithdrawn');
    expect(revoked.has(theirs.serial_number)).toBe(false);
    expect(revoked.has(other.svid.serial_number)).toBe(false);
  });

  it('banning an agent revokes what it was issued under a shared node alias, not the copies other agents of that alias hold', async () => {
    const banned = await attest();
    const other = await attest();
    // Both agents match one node alias (set before either asks for an SVID, so no cached set is stale).
    const cluster = [{ type: 'k8s_psat', value: 'cluster:shared' }];
    for (const a of [banned, other]) await ts.datastore.updateAgent(a.id, { selectors: cluster });
    const aliasRes = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://${TD}/alias/shared`, parent_id: `spiffe://${TD}/spire/server`, selectors: cluster }],
    });
    expect(aliasRes.results[0]?.status.code, aliasRes.results[0]?.status.message).toBe(0);
    const shared = await entry(aliasRes.results[0]!.entry.spiffe_id, '/shared-workload');
    const bannedCopies = [await newSvid(banned, shared.id), await newSvid(banned, shared.id)];
    const otherCopy = await newSvid(other, shared.id);
    expect(await ts.datastore.getX509SvidIssuance(otherCopy.serial_number)).toMatchObject({ entryId: shared.id, agentId: other.id });
    events.length = 0;
    await unaryCall(admin.Agent, 'BanAgent', { id: banned.id });
    const revoked = new Map((await ts.datastore.listRevokedX509Svids()).map((r) => [r.serialHex, r.reason]));
    for (const s of bannedCopies) expect(revoked.get(s.serial_number)).toBe('privilegeWithdrawn');
    expect(revoked.get(banned.svid.serial_number)).toBe('privilegeWithdrawn');
    expect(revoked.has(otherCopy.serial_number)).toBe(false);
    expect(revoked.has(other.svid.serial_number)).toBe(false);
    // The audit hook is told of each exactly once, although the ban found them two ways.
    expect(events.flatMap((e) => e.revoked.map((r) => r.serialHex)).sort()).toEqual([banned.svid.serial_number, ...bannedCopies.map((s) => s.serial_number)].sort());
    // The other agent still gets the shared entry's SVIDs.
    expect((await newSvid(other, shared.id)).spiffe_id).toBe(shared.spiffe_id);
  });

  it('refuses hostile requests with a status and a message that say what was wrong', async () => {
    const a = await attest();
    const e = await entry(a.id, '/hostile');
    const svid = await newSvid(a, e.id);
    const unknown = await codeOf(revoke({ serial_number: '7f'.repeat(16) }));
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(unknown.details).toMatch(/no X509-SVID with serial 7f7f.* was issued by trust domain example\.org/);
    expect((await codeOf(revoke({ spiffe_id: 'spiffe://other.org/workload' }))).code).toBe(status.NOT_FOUND);
    expect((await codeOf(revoke({ spiffe_id: `spiffe://${TD}/never-issued` }))).code).toBe(status.NOT_FOUND);
    expect((await codeOf(revoke({ entry_id: 'no-such-entry' }))).code).toBe(status.NOT_FOUND);
    for (const bad of ['xyz', '0', '00', 'ab'.repeat(22), '']) {
      const r = await codeOf(revoke({ serial_number: bad, ...(bad === '' ? { spiffe_id: '' } : {}) }));
      expect(r.code, bad).toBe(status.INVALID_ARGUMENT);
    }
    expect((await codeOf(revoke({ serial_number: svid.serial_number, reason: 'certificateHold' }))).details).toMatch(/not an RFC 5280 CRLReason Mayfly revokes with/);
    expect((await codeOf(revoke({ serial_number: svid.serial_number, spiffe_id: e.spiffe_id }))).code).toBe(status.INVALID_ARGUMENT);
    expect((await codeOf(revoke({ spiffe_id: 'not a spiffe id' }))).code).toBe(status.INVALID_ARGUMENT);
    // Agents may not revoke.
    expect((await codeOf(unaryCall(a.clients.SVID, 'RevokeX509SVIDs', { serial_number: svid.serial_number }))).code).toBe(status.PERMISSION_DENIED);
    // Expired on the server's clock: nothing to do. (The record is pruned at the next CRL refresh.)
    skewSeconds = 2 * 3600;
    try {
      const expired = await codeOf(revoke({ serial_number: svid.serial_number }));
      expect(expired.code).toBe(status.FAILED_PRECONDITION);
      expect(expired.details).toMatch(/expired at .*: nothing to revoke/);
    } finally {
      skewSeconds = 0;
    }
  });
});
