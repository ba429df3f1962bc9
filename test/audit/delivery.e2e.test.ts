/**
 * Delivery records end to end: ServerRunner (LevelDB, the audit ledger on, disk keys so a
 * restarted server still trusts the agent) ← MayflyAgent (join token, grpc-js over mTLS) ←
 * workload processes (node children running the SDK from dist/ on the agent's socket: real
 * SO_PEERCRED, real unix attestor). The ledger is read back with the real
 * `mayfly-server audit show` binary. The cases run in order and share the server and agent.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent, type MayflyAgentConfig } from '../../src/agent/agent.js';
import { GrpcServerClient } from '../../src/agent/grpc-client.js';
import type { ServerClient } from '../../src/agent/server-client.js';
import { parseHcl } from '../../src/config/hcl.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig, type ServerSettings } from '../../src/server/config.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { TrustDomain } from '../../src/spiffe/id.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const SDK = join(ROOT, 'dist', 'src', 'sdk', 'index.js');
const TD = 'delivery.test';
const uid = process.getuid?.() ?? 0;
const dir = mkdtempSync(join(tmpdir(), 'mayfly-delivery-e2e-'));

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A workload process: fetches its X509-SVID (or a JWT-SVID) once and prints its pid and what it got. */
async function workload(socketPath: string, jwtAudience?: string): Promise<{ pid: number; serial?: string; spiffeId: string }> {
  const script = `
    import { X509Certificate } from 'node:crypto';
    import { WorkloadApiClient } from ${JSON.stringify(SDK)};
    const c = new WorkloadApiClient({ socketPath: ${JSON.stringify(socketPath)}, timeoutMs: 20000 });
    const aud = ${JSON.stringify(jwtAudience ?? '')};
    if (aud) {
      const j = await c.fetchJwtSvid({ audience: aud });
      console.log(JSON.stringify({ pid: process.pid, spiffeId: j.spiffeId.toString() }));
    } else {
      const s = await c.fetchX509Svid();
      console.log(JSON.stringify({ pid: process.pid, spiffeId: s.id.toString(), serial: new X509Certificate(s.certificates[0]).serialNumber }));
    }
    c.close();`;
  const r = await run(process.execPath, ['--input-type=module', '-e', script]);
  if (r.code !== 0) throw new Error(`workload failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as { pid: number; serial?: string; spiffeId: string };
}

interface Shown {
  kind: string;
  serial?: string;
  spiffeId?: string;
  pid?: number;
  uid?: number;
  gid?: number;
  svidType?: string;
  selectors?: string[];
  audience?: string[];
  reason?: string;
  count?: number;
  agentId?: string;
}

describe('delivery records in the audit ledger', () => {
  let settings: ServerSettings;
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let agentId = '';
  let port = 0;
  const socketPath = join(dir, 'wl', 'api.sock');
  let lastClient: ServerClient | undefined;
  let agentConfig: MayflyAgentConfig;

  const settingsFor = (bindPort: number): ServerSettings => {
    const s = resolveServerConfig(
      parseHcl(`
        server {
          trust_domain = "${TD}"
          data_dir = "${join(dir, 'server')}"
          socket_path = "${join(dir, 'admin.sock')}"
          bind_address = "127.0.0.1"
          bind_port = "${bindPort}"
        }
        audit { checkpoint_every = 50 }
        plugins {
          KeyManager "disk" { plugin_data { keys_path = "${join(dir, 'server', 'keys.json')}" } }
        }`),
      {},
    );
    s.metrics.enabled = false;
    return s;
  };
  const startServer = async (): Promise<void> => {
    settings = settingsFor(port);
    runner = new ServerRunner({ settings, logger: createServerLogger('error') });
    await runner.start();
    port = runner.server!.port;
    admin = adminSocketClients(settings.socketPath);
  };
  const stopServer = async (): Promise<void> => {
    admin.close();
    await runner.stop();
  };
  const show = async (...filter: string[]): Promise<Shown[]> => {
    const r = await run(process.execPath, [BIN, 'audit', 'show', '-socketPath', settings.socketPath, ...filter, '-output', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as { records: { record: Shown }[] }).records.map((h) => h.record);
  };
  const eventually = async <T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await read();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  beforeAll(async () => {
    await startServer();
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const td = TrustDomain.parse(TD);
    agentConfig = {
      serverAddress: `127.0.0.1:${port}`,
      trustDomain: TD,
      dataDir: join(dir, 'agent'),
      socketPath,
      joinToken: token.value,
      insecureBootstrap: true,
      // Small bounds so a short outage fills the buffer.
      deliveryRecords: { maxBuffered: 3, flushIntervalMs: 200, retryMinMs: 200, retryMaxMs: 1000 },
      serverClientFor: (address, credentials) => (lastClient = new GrpcServerClient({ address, trustDomain: td, credentials })),
    };
    agent = new MayflyAgent(agentConfig);
    await agent.start();
    await agent.whenReady(30_000);
    agentId = agent.agentSvid?.spiffeId ?? '';
    await unaryCall(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://${TD}/web`, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
    });
    const deadline = Date.now() + 30_000;
    while (!(agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.some((i) => i.spiffeId === `spiffe://${TD}/web`) ?? false)) {
      if (Date.now() > deadline) throw new Error('the agent never received its workload SVID');
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 90_000);

  afterAll(async () => {
    await agent?.stop();
    admin?.close();
    await runner?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('audit show -serial lists the issuance and the delivery to the workload process, with its pid and uid', async () => {
    const w = await workload(socketPath);
    expect(w.spiffeId).toBe(`spiffe://${TD}/web`);
    expect(w.pid).not.toBe(process.pid);
    const hits = await eventually('the delivery record', () => show('-serial', w.serial!), (h) => h.some((r) => r.kind === 'svid.delivered'));
    expect(hits.map((h) => h.kind)).toEqual(['x509-svid.issued', 'svid.delivered']);
    expect(hits[0]).toMatchObject({ agentId });
    expect(hits[1]).toMatchObject({ svidType: 'x509', spiffeId: `spiffe://${TD}/web`, agentId, pid: w.pid, uid, selectors: expect.arrayContaining([`unix:uid:${uid}`]) });
    expect(hits[1]!.serial!.replace(/^0+/, '')).toBe(w.serial!.toLowerCase().replace(/^0+/, ''));

    // A JWT-SVID delivery names its audience.
    const j = await workload(socketPath, 'db');
    const jwt = await eventually('the JWT delivery', () => show('-spiffeID', `spiffe://${TD}/web`), (h) => h.some((r) => r.kind === 'svid.delivered' && r.svidType === 'jwt'));
    expect(jwt.find((r) => r.svidType === 'jwt')).toMatchObject({ pid: j.pid, audience: ['db'] });
  }, 90_000);

  it('while the server is down the agent keeps serving, buffers what fits, counts what does not, and ships both later', async () => {
    // Start from an empty buffer: everything before has reached the ledger.
    await eventually('an empty delivery buffer', () => agent.metrics.text(), (t) => /mayfly_agent_delivery_records_buffered 0\b/.test(t));
    await stopServer();
    const pids: number[] = [];
    for (let i = 0; i < 5; i++) pids.push((await workload(socketPath)).pid);
    await startServer();
    const delivered = await eventually(
      'the buffered deliveries and the drop count',
      () => show(),
      (all) => all.some((r) => r.kind === 'svid.deliveries-lost' && r.reason === 'agent-buffer-full') && pids.slice(0, 3).every((p) => all.some((r) => r.kind === 'svid.delivered' && r.pid === p)),
      60_000,
    );
    // The first three fitted the buffer (3) and reached the ledger in order; the last two were dropped and counted.
    const shipped = delivered.filter((r) => r.kind === 'svid.delivered' && pids.includes(r.pid!)).map((r) => r.pid);
    expect(shipped).toEqual(pids.slice(0, 3));
    expect(delivered.find((r) => r.kind === 'svid.deliveries-lost' && r.reason === 'agent-buffer-full')).toMatchObject({ agentId, count: 2 });
    const metrics = await agent.metrics.text();
    expect(metrics).toMatch(/mayfly_agent_delivery_records_total\{outcome="dropped"\} 2\b/);
  }, 120_000);

  it('a reported identity the agent is not authorised for is refused, not recorded, and counted in the ledger', async () => {
    const client = lastClient!;
    const res = await client.reportDeliveries!({
      deliveries: [
        { kind: 'x509', spiffeId: `spiffe://${TD}/admin-tool`, serial: 'abcdef01', expiresAt: 1_900_000_000, deliveredAt: Date.now(), pid: 1, uid: 0, gid: 0, selectors: [] },
        { kind: 'x509', spiffeId: `spiffe://${TD}/web`, serial: 'not hex', expiresAt: 1_900_000_000, deliveredAt: Date.now(), pid: 1, uid: 0, gid: 0, selectors: [] },
        { kind: 'x509', spiffeId: `spiffe://${TD}/web`, serial: 'abcdef02', expiresAt: 1_900_000_000, deliveredAt: Date.now(), pid: 7, uid: 0, gid: 0, selectors: [] },
      ],
      dropped: 0,
      lostAtRestart: 0,
      lostAtRestartUnknownMore: false,
    });
    expect(res).toEqual({ recorded: 1, refused: 2 });
    expect(await show('-spiffeID', `spiffe://${TD}/admin-tool`)).toEqual([]);
    expect(await show('-serial', 'abcdef01')).toEqual([]);
    expect((await show('-serial', 'abcdef02')).map((r) => r.kind)).toEqual(['svid.delivered']);
    const lost = (await show()).filter((r) => r.kind === 'svid.deliveries-lost' && r.reason === 'refused');
    expect(lost.at(-1)).toMatchObject({ agentId, count: 2 });
  }, 60_000);

  it('records an agent could not send before it stopped are reported as lost by the next agent process', async () => {
    await eventually('an empty delivery buffer', () => agent.metrics.text(), (t) => /mayfly_agent_delivery_records_buffered 0\b/.test(t));
    await stopServer();
    await workload(socketPath);
    await workload(socketPath);
    await agent.stop(); // its last send fails: two records stay unsent and are counted on disk
    await startServer();
    agent = new MayflyAgent({ ...agentConfig, joinToken: undefined });
    await agent.start();
    await agent.whenReady(30_000);
    const lost = await eventually(
      'the lost-at-restart record',
      () => show(),
      (all) => all.some((r) => r.kind === 'svid.deliveries-lost' && r.reason === 'agent-restart'),
      60_000,
    );
    expect(lost.find((r) => r.kind === 'svid.deliveries-lost' && r.reason === 'agent-restart')).toMatchObject({ agentId, count: 2 });
    expect(lost.find((r) => r.reason === 'agent-restart')).not.toHaveProperty('atLeast');
  }, 120_000);

  it('the ledger with delivery records still verifies', async () => {
    const r = await run(process.execPath, [BIN, 'audit', 'verify', '-socketPath', settings.socketPath]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);
});
