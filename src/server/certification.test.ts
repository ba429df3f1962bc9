/**
 * Owner certification (issue 11 item 5) on a real server with the audit ledger and a held
 * clock: an entry is served, then due (log line, inventory finding, counts), then lapsed
 * (agents' push drops it; BatchNewX509SVID and NewJWTSVID refuse it with the reason) until
 * its owner certifies it; an exemption (break-glass) serves it again; every attestation is
 * in the ledger and survives a restart. Hostile: unknown entry, wrong owner, no owner,
 * too-long note, a scoped registrar certifying or exempting outside its rights.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBody } from '../audit/record.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireEntry, WireX509Svid } from './messages.js';
import type { ServerLogger } from './ports.js';
import type { RegistrarScope } from './registrar-scope.js';
import { attestJoinTokenAgent, startTestServer, type TestServer } from './testing.js';

const TD = 'example.org';
const id = (p: string): string => `spiffe://${TD}${p}`;
const INTERVAL = 1000;
const GRACE = 500;

let t = Date.now();
const now = (): Date => new Date(t);
const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
const logger: ServerLogger = {
  info: (fields, msg) => void lines.push({ level: 'info', fields, msg }),
  warn: (fields, msg) => void lines.push({ level: 'warn', fields, msg }),
  error: (fields, msg) => void lines.push({ level: 'error', fields, msg }),
};
const dataDir = mkdtempSync(join(tmpdir(), 'mayfly-certification-'));
const scopes = new Map<string, RegistrarScope>();
let srv: TestServer;
let local: ServerApiClients;
let agent: { agentId: string; clients: ServerApiClients };
const opened: ServerApiClients[] = [];

async function start(): Promise<void> {
  srv = await startTestServer({ dataDir, now, logger, keyManager: 'disk', auditLedger: true, certification: { intervalSeconds: INTERVAL, graceSeconds: GRACE }, certificationSweepMs: 0, registrars: scopes });
  local = adminSocketClients(srv.adminSocketPath);
  opened.push(local);
}

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
    return { code: status.OK, message: '' };
  } catch (err) {
    return { code: (err as ServiceError).code, message: (err as ServiceError).details };
  }
}

async function createEntry(path: string, owner: string): Promise<WireEntry> {
  const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry }[] }>(local.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: id(path), parent_id: agent.agentId, selectors: [{ type: 'unix', value: `uid:${path.length}` }], owner }],
  });
  expect(res.results[0]?.status.message).toBe('OK');
  return res.results[0]!.entry;
}

async function sign(entryId: string): Promise<{ code: number; message: string }> {
  const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(agent.clients.SVID, 'BatchNewX509SVID', {
    params: [{ entry_id: entryId, csr: createCsr({ privateKey: generateKeyPair().privateKey }) }],
  });
  return res.results[0]!.status;
}

const certify = (c: ServerApiClients, req: Record<string, unknown>): Promise<{ state: string; due_at: number; lapses_at: number }> => unaryCall(c.Entry, 'CertifyEntry', req);

type Update = { entries: WireEntry[]; withheld_entries: { entry_id: string; spiffe_id: string; reason: string }[] };
let lastUpdate: Update | undefined;

async function pushedEntryIds(): Promise<string[]> {
  const s = (agent.clients.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<Update> }).SubscribeAuthorizedEntries({});
  try {
    const first = await new Promise<Update>((resolve, reject) => {
      s.once('data', resolve);
      s.once('error', reject);
    });
    lastUpdate = first;
    return first.entries.map((e) => e.id).sort();
  } finally {
    s.cancel();
    s.on('error', () => undefined);
  }
}

let web: WireEntry;
let db: WireEntry;
let noOwner: WireEntry;
let registrar: ServerApiClients | undefined;
const reg = id('/ci/team-a');

beforeAll(async () => {
  await start();
  agent = await attestJoinTokenAgent({ port: srv.port, admin: local, trustDomain: TD, bundleRoots: [...srv.ca.getBundle().x509Authorities] });
  opened.push(agent.clients);
  web = await createEntry('/team-a/web', 'team-a');
  db = await createEntry('/team-b/db', 'team-b');
  noOwner = await createEntry('/orphan', '');
  // A scoped registrar for team A, with its SVID minted now (TLS peers check it by the real clock).
  await unaryCall(local.Entry, 'BatchCreateEntry', { entries: [{ spiffe_id: reg, parent_id: id('/nodes/ops'), selectors: [{ type: 'unix', value: 'uid:0' }], admin: true }] });
  scopes.set(reg, { registrar: reg, spiffeIdPrefixes: [id('/team-a')], parentIds: [agent.agentId], owners: ['team-a'] });
  const key = generateKeyPair();
  const minted = await unaryCall<{ svid: WireX509Svid }>(local.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: reg, ttl: 3000 });
  registrar = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: [...srv.ca.getBundle().x509Authorities], svid: { certChain: minted.svid.cert_chain, privateKey: key.privateKey } });
  opened.push(registrar);
}, 60_000);

afterAll(async () => {
  for (const c of opened) c.close();
  await srv?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('owner certification', () => {
  it('serves a current entry, warns when due, refuses when lapsed, and serves again once certified', async () => {
    expect((await sign(web.id)).code).toBe(0);
    t += (INTERVAL + 10) * 1000;
    await srv.server.certification!.sweep();
    // the three entries and the registrar's admin entry
    expect(srv.server.certification!.counts.due).toBe(4);
    const due = lines.filter((l) => l.level === 'warn' && l.msg.startsWith('entry certification due') && l.fields.entryId === web.id);
    expect(due).toHaveLength(1);
    expect(due[0]?.fields.owner).toBe('team-a');
    // Due is a warning only: still issued, and named in the inventory.
    expect((await sign(web.id)).code).toBe(0);
    const inv = await unaryCall<{ entries: { kind: string; entry_id: string; owner: string; action: string }[] }>(local.Inventory, 'GetInventory', {});
    const finding = inv.entries.find((f) => f.entry_id === web.id && f.kind === 'certification_due');
    expect(finding?.owner).toBe('team-a');
    expect(finding?.action).toContain('entry certify');

    t += GRACE * 1000;
    // Refused from the second it lapses, before any sweep.
    const refused = await sign(web.id);
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect(refused.message).toContain('owner certification lapsed');
    expect(refused.message).toContain(`mayfly-server entry certify -entryID ${web.id}`);
    const jwt = await failure(unaryCall(agent.clients.SVID, 'NewJWTSVID', { entry_id: web.id, audience: ['x'] }));
    expect(jwt.code).toBe(status.PERMISSION_DENIED);
    expect(jwt.message).toContain('owner certification lapsed');
    await srv.server.certification!.sweep();
    expect(srv.server.certification!.counts.lapsed).toBe(4);
    expect(lines.some((l) => l.msg.startsWith('entry certification lapsed') && l.fields.entryId === web.id)).toBe(true);
    expect(await pushedEntryIds()).not.toContain(web.id);
    // The agent is told why (it logs it: agent/withheld).
    const why = lastUpdate?.withheld_entries.find((w) => w.entry_id === web.id);
    expect(why?.spiffe_id).toBe(id('/team-a/web'));
    expect(why?.reason).toContain('owner certification lapsed');
    const inv2 = await unaryCall<{ entries: { kind: string; entry_id: string }[] }>(local.Inventory, 'GetInventory', {});
    expect(inv2.entries.some((f) => f.entry_id === web.id && f.kind === 'certification_lapsed')).toBe(true);

    const res = await certify(local, { entry_id: web.id, owner: 'team-a', note: 'still serves checkout' });
    expect(res.state).toBe('current');
    expect(res.due_at).toBe(Math.floor(t / 1000) + INTERVAL);
    expect((await sign(web.id)).code).toBe(0);
    expect(await pushedEntryIds()).toContain(web.id);
  });

  it('refuses unknown entries, wrong or missing owners and over-long notes', async () => {
    const unknown = await failure(certify(local, { entry_id: 'no-such-entry', owner: 'team-a' }));
    expect(unknown.code).toBe(status.NOT_FOUND);
    const wrong = await failure(certify(local, { entry_id: db.id, owner: 'team-a' }));
    expect(wrong.code).toBe(status.FAILED_PRECONDITION);
    expect(wrong.message).toContain('is owned by "team-b", not "team-a"');
    const missing = await failure(certify(local, { entry_id: db.id }));
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    const ownerless = await failure(certify(local, { entry_id: noOwner.id, owner: 'team-a' }));
    expect(ownerless.code).toBe(status.FAILED_PRECONDITION);
    expect(ownerless.message).toContain('has no owner');
    const long = await failure(certify(local, { entry_id: db.id, owner: 'team-b', note: 'x'.repeat(1025) }));
    expect(long.code).toBe(status.INVALID_ARGUMENT);
    expect(long.message).toContain('note is longer than 1024 bytes');
    const ctl = await failure(certify(local, { entry_id: db.id, owner: 'team-b', note: 'a\nb' }));
    expect(ctl.code).toBe(status.INVALID_ARGUMENT);
    const bareExempt = await failure(certify(local, { entry_id: db.id, exempt: true }));
    expect(bareExempt.code).toBe(status.INVALID_ARGUMENT);
    expect((await sign(db.id)).code).toBe(status.PERMISSION_DENIED);
  });

  it('binds owners to admin identities through registrar scopes; exemptions are for unscoped admins', async () => {
    const a = registrar!;
    const other = await failure(certify(a, { entry_id: db.id, owner: 'team-b' }));
    expect(other.code, other.message).toBe(status.PERMISSION_DENIED);
    expect(other.message).toContain(`registrar ${reg} is scoped`);
    expect((await certify(a, { entry_id: web.id, owner: 'team-a' })).state).toBe('current');
    const selfExempt = await failure(certify(a, { entry_id: web.id, exempt: true, note: 'skip review' }));
    expect(selfExempt.code).toBe(status.PERMISSION_DENIED);
    expect(selfExempt.message).toContain('break-glass for unscoped admins');

    // Break-glass by the admin socket: team B's lapsed entry is served again, and recorded.
    const ex = await certify(local, { entry_id: db.id, exempt: true, note: 'INC-42: owner on leave' });
    expect(ex.state).toBe('exempt');
    expect((await sign(db.id)).code).toBe(0);
    expect(await pushedEntryIds()).toContain(db.id);

    const records = (await srv.datastore.listAuditRecords({ limit: 1000 })).map((r) => decodeRecordBody(r.body)).filter((b) => b?.kind === 'entry.certified');
    expect(records.map((b) => (b?.kind === 'entry.certified' ? [b.entryId, b.owner, b.exempt, b.actor.id] : []))).toEqual([
      [web.id, 'team-a', false, 'admin-socket'],
      [web.id, 'team-a', false, reg],
      [db.id, '', true, 'admin-socket'],
    ]);
    const note = records.find((b) => b?.kind === 'entry.certified' && b.exempt);
    expect(note?.kind === 'entry.certified' ? note.note : '').toBe('INC-42: owner on leave');
  });

  it('certifications come back from the ledger after a restart', async () => {
    for (const c of opened.splice(0)) c.close();
    await srv.stop();
    await start();
    agent = { agentId: agent.agentId, clients: agent.clients };
    const c = srv.server.certification!;
    const web2 = (await srv.datastore.getEntry(web.id))!;
    const db2 = (await srv.datastore.getEntry(db.id))!;
    const orphan = (await srv.datastore.getEntry(noOwner.id))!;
    expect(c.status(web2).state).toBe('current');
    expect(c.status(db2).state).toBe('exempt');
    expect(c.status(orphan).state).toBe('lapsed');
    // certification.enabled was written once, at the first start: the baseline did not move.
    const enabled = (await srv.datastore.listAuditRecords({ limit: 1000 })).filter((r) => decodeRecordBody(r.body)?.kind === 'certification.enabled');
    expect(enabled).toHaveLength(1);
  });
});
