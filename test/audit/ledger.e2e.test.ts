/**
 * The audit ledger on whole servers: ServerRunner (the composition `mayfly-server run` uses)
 * on LevelDB and on a real PostgreSQL shared by two servers, judged by the real
 * `mayfly-server audit verify|show|export` binary (from dist/). Each store is then tampered
 * with directly — a record edited, one deleted, two swapped, one inserted — behind the
 * server's back, and `audit verify` must name the record. A server process killed with
 * SIGKILL in the middle of issuing leaves a chain that verifies and holds every SVID the
 * client was given.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLink } from '../../src/audit/record.js';
import { parseHcl } from '../../src/config/hcl.js';
import { startTestPostgres, type TestPostgres } from '../../src/datastore/postgres/testing.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig, type ServerSettings } from '../../src/server/config.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { generateKeyPair } from '../../src/spiffe/keys.js';
import { createCsr } from '../../src/spiffe/x509/csr.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'audit.test';
const dir = mkdtempSync(join(tmpdir(), 'mayfly-audit-e2e-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function settingsFor(name: string, datastore: string, extra = ''): ServerSettings {
  const s = resolveServerConfig(
    parseHcl(`
      server {
        trust_domain = "${TD}"
        data_dir = "${join(dir, name)}"
        socket_path = "${join(dir, `${name}.sock`)}"
        bind_port = "0"
      }
      audit { checkpoint_every = 5 }
      ${extra}
      plugins {
        ${datastore}
        KeyManager "memory" { plugin_data {} }
      }`),
    {},
  );
  s.metrics.enabled = false;
  return s;
}

async function mint(admin: ServerApiClients, path: string): Promise<string> {
  const r = await unaryCall<{ svid: { serial_number: string } }>(admin.SVID, 'MintX509SVID', {
    csr: createCsr({ privateKey: generateKeyPair().privateKey }),
    spiffe_id: `spiffe://${TD}${path}`,
    ttl: 600,
  });
  return r.svid.serial_number;
}

describe('audit ledger on LevelDB', () => {
  const settings = settingsFor('level', '');
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let serial = '';
  let entryId = '';
  const sock = settings.socketPath;

  beforeAll(async () => {
    runner = new ServerRunner({ settings, logger: createServerLogger('error') });
    await runner.start();
    admin = adminSocketClients(sock);
    const created = await unaryCall<{ results: { entry: { id: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://${TD}/web`, parent_id: `spiffe://${TD}/spire/agent/x`, selectors: [{ type: 'unix', value: 'uid:1000' }] }],
    });
    entryId = created.results[0]!.entry.id;
    await unaryCall(admin.Agent, 'CreateJoinToken', { ttl: 60 });
    serial = await mint(admin, '/web');
    await unaryCall(admin.SVID, 'MintJWTSVID', { spiffe_id: `spiffe://${TD}/web`, audience: ['db'] });
    const prepared = await unaryCall<{ authority: { authority_id: string } }>(admin.LocalAuthority, 'PrepareJWTAuthority', {});
    await unaryCall(admin.LocalAuthority, 'ActivateJWTAuthority', { authority_id: prepared.authority.authority_id });
    for (let i = 0; i < 6; i++) await mint(admin, `/batch/${i}`);
    await unaryCall(admin.SVID, 'RevokeX509SVIDs', { serial_number: serial, reason: 'keyCompromise' });
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await runner?.stop();
  });

  it('records every issuance and change; verify, show and export read it', async () => {
    const v = await cli(['audit', 'verify', '-socketPath', sock, '-output', 'json']);
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
    const verdict = JSON.parse(v.stdout) as { ok: boolean; records: number; checkpoints: number };
    expect(verdict.ok).toBe(true);
    expect(verdict.checkpoints).toBeGreaterThanOrEqual(2);

    const show = await cli(['audit', 'show', '-socketPath', sock, '-spiffeID', `spiffe://${TD}/web`, '-output', 'json']);
    expect(show.code).toBe(0);
    const hits = (JSON.parse(show.stdout) as { records: { record: { kind: string; serial?: string; method?: string; details?: unknown; actor: { id: string } } }[] }).records.map((h) => h.record);
    expect(hits.map((h) => h.kind)).toEqual(['admin', 'x509-svid.issued', 'jwt-svid.issued', 'admin']);
    expect(hits[3]).toMatchObject({ method: 'RevokeX509SVIDs', details: { serial, reason: 'keyCompromise' } });
    expect(hits[1]).toMatchObject({ serial, actor: { id: 'admin-socket' } });
    const bySerial = await cli(['audit', 'show', '-socketPath', sock, '-serial', serial.toUpperCase(), '-output', 'json']);
    // Who held it, and who revoked it when.
    expect((JSON.parse(bySerial.stdout) as { records: { record: { kind: string } }[] }).records.map((h) => h.record.kind)).toEqual(['x509-svid.issued', 'admin']);
    expect((await cli(['audit', 'show', '-socketPath', sock, '-entryID', entryId, '-output', 'json'])).stdout).toContain('BatchCreateEntry');

    const exported = (await cli(['audit', 'export', '-socketPath', sock])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; record: { kind: string; details?: Record<string, unknown> } });
    expect(exported.map((r) => r.seq)).toEqual(exported.map((_r, i) => i + 1));
    const kinds = new Set(exported.map((r) => r.record.kind));
    for (const k of ['server.started', 'admin', 'x509-svid.issued', 'jwt-svid.issued', 'authority', 'checkpoint']) expect(kinds).toContain(k);
    // The join token is recorded by its hash only.
    const token = exported.find((r) => r.record.kind === 'admin' && (r.record as { method?: string }).method === 'CreateJoinToken')!;
    expect(Object.keys(token.record.details!)).toEqual(['tokenSha256', 'expiresAt']);

    expect((await cli(['audit', 'show', '-socketPath', sock, '-since', 'yesterday'])).code).toBe(2);
  });

  it('a record edited, deleted, swapped or inserted in the LevelDB files is named by audit verify', async () => {
    await runner.stop();
    admin.close();
    const path = settings.datastorePath;
    const key = (seq: number): string => `L!${String(seq).padStart(16, '0')}`;
    const tamper = async (fn: (db: Level<string, string>) => Promise<void>): Promise<{ code: number; stdout: string; stderr: string }> => {
      const db = new Level<string, string>(path, { valueEncoding: 'utf8' });
      await db.open();
      const snapshot = new Map<string, string>();
      for await (const [k, v] of db.iterator({ gte: 'L!', lt: 'L"' })) snapshot.set(k, v);
      await fn(db);
      await db.close();
      runner = new ServerRunner({ settings, logger: createServerLogger('error') });
      await runner.start();
      const r = await cli(['audit', 'verify', '-socketPath', sock]);
      await runner.stop();
      const restore = new Level<string, string>(path, { valueEncoding: 'utf8' });
      await restore.open();
      for await (const k of restore.keys({ gte: 'L!', lt: 'L"' })) await restore.del(k);
      for (const [k, v] of snapshot) await restore.put(k, v);
      await restore.close();
      return r;
    };
    const get = async (db: Level<string, string>, seq: number): Promise<{ prevHash: string; hash: string; body: string }> => JSON.parse((await db.get(key(seq)))!) as { prevHash: string; hash: string; body: string };

    const edited = await tamper(async (db) => {
      const r = await get(db, 4);
      await db.put(key(4), JSON.stringify({ ...r, body: r.body.replace('"v":1', '"v":1 ') }));
    });
    expect(edited.code).toBe(1);
    expect(edited.stderr).toContain('record 4: its hash does not match its content (edited)');

    const deleted = await tamper((db) => db.del(key(5)));
    expect(deleted.stderr).toContain('record 5 is missing');

    const swapped = await tamper(async (db) => {
      const [a, b] = [await get(db, 3), await get(db, 4)];
      await db.put(key(3), JSON.stringify(b));
      await db.put(key(4), JSON.stringify(a));
    });
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toContain('record 3:');

    const inserted = await tamper(async (db) => {
      // Shift 6.. up by one and insert a forged issuance at 6, with every later hash recomputed.
      const rows: { seq: number; prevHash: string; hash: string; body: string }[] = [];
      for await (const [k, v] of db.iterator({ gte: key(6), lt: 'L"' })) rows.push({ seq: Number(k.slice(2)), ...(JSON.parse(v) as { prevHash: string; hash: string; body: string }) });
      const forged = JSON.stringify({ v: 1, time: Date.now(), server: 'x', actor: { kind: 'admin', id: 'admin-socket' }, kind: 'x509-svid.issued', serial: 'ab', spiffeId: `spiffe://${TD}/evil`, notAfter: 1 });
      let prev = (await get(db, 5)).hash;
      let seq = 6;
      for (const body of [forged, ...rows.map((r) => r.body)]) {
        const hash = auditLink(seq, prev, body);
        await db.put(key(seq), JSON.stringify({ prevHash: prev, hash, body }));
        prev = hash;
        seq += 1;
      }
    });
    expect(inserted.code).toBe(1);
    expect(inserted.stderr).toMatch(/checkpoint/);

    // Restored: it verifies again.
    runner = new ServerRunner({ settings, logger: createServerLogger('error') });
    await runner.start();
    admin = adminSocketClients(sock);
    const again = await cli(['audit', 'verify', '-socketPath', sock]);
    expect(again.code, again.stderr).toBe(0);
  }, 120_000);
});

describe('audit ledger on PostgreSQL shared by two servers with skewed clocks', () => {
  let cluster: TestPostgres;
  const runners: ServerRunner[] = [];
  const clients: ServerApiClients[] = [];
  const sql = (): string => `DataStore "sql" { plugin_data { database_type = "postgres" connection_string = "host=${cluster.dir} user=mayfly dbname=postgres" } }`;

  beforeAll(async () => {
    cluster = await startTestPostgres();
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of runners) await r.stop();
    await cluster?.stop();
  });

  it('keeps one chain without forks; edits made in SQL are named', async () => {
    const skew = 3600_000;
    for (const [name, offset] of [['pg-a', 0], ['pg-b', skew]] as const) {
      const runner = new ServerRunner({ settings: settingsFor(name, sql()), logger: createServerLogger('error'), now: () => new Date(Date.now() + offset) });
      await runner.start();
      runners.push(runner);
      clients.push(adminSocketClients(join(dir, `${name}.sock`)));
    }
    const serials = await Promise.all(Array.from({ length: 30 }, (_, i) => mint(clients[i % 2]!, `/pg/${i}`)));
    const sock = join(dir, 'pg-a.sock');
    const v = await cli(['audit', 'verify', '-socketPath', sock, '-output', 'json']);
    expect(v.code, v.stderr).toBe(0);
    const exported = (await cli(['audit', 'export', '-socketPath', join(dir, 'pg-b.sock')])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { record: { serial?: string; server: string } });
    expect(new Set(exported.map((r) => r.record.serial).filter((s) => s !== undefined))).toEqual(new Set(serials));
    expect(new Set(exported.map((r) => r.record.server)).size).toBe(2);

    const pool = new pg.Pool({ ...cluster.poolConfig, max: 1 });
    try {
      await pool.query(`UPDATE "mayfly".audit_records SET body = replace(body, '/pg/3"', '/pg/x"') WHERE body LIKE '%/pg/3"%'`).catch(async () => {
        // The default schema name is not "mayfly": find it.
        const s = (await pool.query<{ table_schema: string }>("SELECT table_schema FROM information_schema.tables WHERE table_name = 'audit_records'")).rows[0]!.table_schema;
        await pool.query(`UPDATE "${s}".audit_records SET body = replace(body, '/pg/3"', '/pg/x"') WHERE body LIKE '%/pg/3"%'`);
      });
      const broken = await cli(['audit', 'verify', '-socketPath', sock]);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/record \d+: its hash does not match its content \(edited\)/);
    } finally {
      await pool.end();
    }
  }, 120_000);
});

describe('kill -9 in the middle of issuance', () => {
  it('leaves a chain that verifies and holds every SVID the client received', async () => {
    const data = join(dir, 'kill');
    const sock = join(dir, 'kill.sock');
    const start = (): ReturnType<typeof spawn> =>
      spawn(process.execPath, [BIN, 'run', '-trustDomain', TD, '-dataDir', data, '-socketPath', sock, '-serverPort', '0', '-metricsPort', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const waitUp = async (): Promise<void> => {
      for (let i = 0; i < 300; i++) {
        if ((await cli(['healthcheck', '-socketPath', sock])).code === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('server did not come up');
    };
    let child = start();
    await waitUp();
    const admin = adminSocketClients(sock);
    const acknowledged: string[] = [];
    let stop = false;
    const loops = Array.from({ length: 4 }, async (_v, w) => {
      for (let i = 0; !stop; i++) {
        try {
          acknowledged.push(await mint(admin, `/kill/${w}/${i}`));
        } catch {
          return;
        }
      }
    });
    while (acknowledged.length < 40) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    stop = true;
    await Promise.all(loops);
    admin.close();
    await new Promise((r) => child.once('exit', r));

    child = start();
    try {
      await waitUp();
      const v = await cli(['audit', 'verify', '-socketPath', sock, '-output', 'json']);
      expect(v.code, v.stderr).toBe(0);
      const issued = new Set(
        (await cli(['audit', 'export', '-socketPath', sock])).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { record: { serial?: string } }).record.serial),
      );
      expect(acknowledged.filter((s) => !issued.has(s))).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  }, 120_000);
});

describe('kill -9 in the middle of an agent batch (BatchNewX509SVID)', () => {
  it('every SVID the agent received is in the chain and revocable by its entry: issuance and audit records are one write', async () => {
    const data = join(dir, 'kill-batch');
    const sock = join(dir, 'kill-batch.sock');
    const port = await freePort();
    const start = (): ReturnType<typeof spawn> =>
      spawn(process.execPath, [BIN, 'run', '-trustDomain', TD, '-dataDir', data, '-socketPath', sock, '-serverPort', String(port), '-metricsPort', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const waitUp = async (): Promise<void> => {
      for (let i = 0; i < 300; i++) {
        if ((await cli(['healthcheck', '-socketPath', sock])).code === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('server did not come up');
    };
    let child = start();
    let admin: ServerApiClients | undefined;
    let agent: ServerApiClients | undefined;
    try {
      await waitUp();
      admin = adminSocketClients(sock);
      const bundleRoots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
      const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
      const anon = tcpClients({ address: `127.0.0.1:${port}`, trustDomain: TD, bundleRoots });
      const key = generateKeyPair();
      const attested = await unaryCall<{ svid: { spiffe_id: string; cert_chain: Buffer[] } }>(anon.Agent, 'AttestAgent', {
        attestation_data: { type: 'join_token', payload: Buffer.from(token.value) },
        csr: createCsr({ privateKey: key.privateKey }),
      }).finally(() => anon.close());
      agent = tcpClients({ address: `127.0.0.1:${port}`, trustDomain: TD, bundleRoots, svid: { certChain: attested.svid.cert_chain, privateKey: key.privateKey } });
      const created = await unaryCall<{ results: { entry: { id: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: `spiffe://${TD}/batch`, parent_id: attested.svid.spiffe_id, selectors: [{ type: 'unix', value: 'uid:1' }] }],
      });
      const entryId = created.results[0]!.entry.id;
      const csrs = Array.from({ length: 8 }, () => createCsr({ privateKey: generateKeyPair().privateKey }));
      const acknowledged: string[] = [];
      let stop = false;
      const client = agent;
      const loops = Array.from({ length: 4 }, async () => {
        while (!stop) {
          try {
            const res = await unaryCall<{ results: { status: { code: number }; svid: { serial_number: string } | null }[] }>(client.SVID, 'BatchNewX509SVID', {
              params: csrs.map((csr) => ({ entry_id: entryId, csr })),
            });
            for (const r of res.results) if (r.status.code === 0 && r.svid !== null) acknowledged.push(r.svid.serial_number);
          } catch {
            return;
          }
        }
      });
      while (acknowledged.length < 200) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGKILL');
      stop = true;
      await Promise.all(loops);
      await new Promise((r) => child.once('exit', r));
      admin.close();
      agent.close();
      admin = agent = undefined;

      child = start();
      await waitUp();
      const v = await cli(['audit', 'verify', '-socketPath', sock, '-output', 'json']);
      expect(v.code, v.stderr).toBe(0);
      const inLedger = new Set(
        (await cli(['audit', 'export', '-socketPath', sock])).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { record: { serial?: string } }).record.serial),
      );
      expect(acknowledged.filter((s) => !inLedger.has(s))).toEqual([]);
      // The issuance records survived with them: revoking by entry finds every acknowledged serial.
      admin = adminSocketClients(sock);
      const revoked = await unaryCall<{ revoked: { serial_number: string }[] }>(admin.SVID, 'RevokeX509SVIDs', { entry_id: entryId, reason: 'keyCompromise' });
      const revocable = new Set(revoked.revoked.map((r) => r.serial_number));
      expect(acknowledged.filter((s) => !revocable.has(s))).toEqual([]);
    } finally {
      admin?.close();
      agent?.close();
      child.kill('SIGKILL');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  }, 120_000);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
