/**
 * The agent as an operator watches it, end to end against the REAL server: a MayflyAgent
 * (join token, grpc-js over mTLS, real Unix socket and SO_PEERCRED) with its `/metrics`,
 * `/live` and `/ready` listener on 127.0.0.1, scraped over real HTTP; the grpc.health.v1
 * check on the Workload API socket as `mayfly-agent healthcheck` calls it. Time that
 * matters (the server-unreachable threshold) moves on the agent's injected clock only.
 * The cases run in order and share the server and the agent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { checkHealthDetail, ServingStatus } from '../workloadapi/health.js';
import { Client, header, Reader, unary, unaryStatus } from '../workloadapi/testing.js';
import { MayflyAgent } from './agent.js';
import type { AgentLogger } from './logger.js';

const uid = process.getuid?.() ?? 0;

/** The value of one series (`name{labels}`) in a Prometheus text exposition; undefined when absent. */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = (m[2] ?? '').split(',').filter((x) => x !== '').sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

async function until(cond: () => Promise<boolean> | boolean, what: string, boundMs = 20_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const debugLines: { fields: Record<string, unknown>; msg: string }[] = [];
const logger: AgentLogger = {
  debug: (f, m) => void debugLines.push({ fields: f as Record<string, unknown>, msg: m }),
  info() {},
  warn() {},
  error() {},
  isLevelEnabled: (level) => level === 'debug',
};

describe('agent metrics, readiness and health against the real server', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-agent-obs-'));
  const socketPath = join(root, 'wl', 'api.sock');
  let server: TestServer | undefined;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let wl: grpc.Client;
  /** The agent's clock runs this far ahead of real time. */
  let skewMs = 0;
  let entryId = '';
  const base = (): string => `http://127.0.0.1:${agent.httpPorts[0]}`;
  const scrape = async (): Promise<string> => (await fetch(`${base()}/metrics`)).text();

  beforeAll(async () => {
    server = await startTestServer({ trustDomain: 'example.org', bindAddress: '127.0.0.1', port: 0, drainMs: 100 });
    admin = adminSocketClients(server.adminSocketPath);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${server.port}`,
      trustDomain: 'example.org',
      dataDir: join(root, 'data'),
      socketPath,
      joinToken: token.value,
      insecureBootstrap: true,
      logger,
      now: () => new Date(Date.now() + skewMs),
      http: { metrics: { host: '127.0.0.1', port: 0 }, health: { host: '127.0.0.1', port: 0, livePath: '/livez', readyPath: '/readyz' } },
      serverUnreachableThresholdSeconds: 600,
      processMetrics: false,
    });
    await agent.start();
    await agent.whenReady(20_000);
    const res = await unaryCall<{ results: { status: { code: number }; entry: { id: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: 'spiffe://example.org/obs', parent_id: agent.agentSvid?.spiffeId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
    });
    entryId = res.results[0]?.entry.id ?? '';
    await until(() => agent.cache?.svidFor(entryId) !== undefined, 'the entry’s X509-SVID at the agent');
    wl = new Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    wl?.close();
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('serves the agent series over HTTP: attestation, SVIDs held, connection, sync age, bundle age, SVID expiry', async () => {
    const text = await scrape();
    expect(series(text, 'mayfly_agent_node_attestations_total', { attestor: 'join_token', outcome: 'success' })).toBe(1);
    expect(series(text, 'mayfly_agent_x509_svids_cached')).toBe(1);
    expect(series(text, 'mayfly_agent_server_connected')).toBe(1);
    expect(series(text, 'mayfly_agent_seconds_since_last_sync')).toBe(0);
    expect(series(text, 'mayfly_agent_trust_bundle_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(series(text, 'mayfly_agent_svid_expiry_seconds')).toBeGreaterThan(0);
    expect(text).toMatch(/^# TYPE mayfly_agent_x509_svids_rotated_total counter$/m);
    expect(text).not.toMatch(/^mayfly_agent_process_/m);
  });

  it('counts Workload API calls by method and status code as they end', async () => {
    const calls = async (method: string, code: string): Promise<number> => series(await scrape(), 'mayfly_agent_workload_api_calls_total', { method, code }) ?? 0;
    const ok = await unary<{ svids: { spiffe_id: string }[] }>(wl, 'FetchJWTSVID', { audience: ['db'] });
    expect(ok.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/obs']);
    expect(await calls('FetchJWTSVID', 'OK')).toBe(1);
    expect((await unaryStatus(wl, 'FetchJWTSVID', { audience: ['db'] }, header())).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryStatus(wl, 'ValidateJWTSVID', { audience: 'db', svid: 'not-a-jwt' })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await calls('FetchJWTSVID', 'INVALID_ARGUMENT')).toBe(1);
    expect(await calls('ValidateJWTSVID', 'INVALID_ARGUMENT')).toBe(1);
    // A stream is counted when it ends: here, when the client cancels it.
    const stream = new Reader<unknown>(wl, 'FetchX509SVID');
    await stream.next();
    expect(await calls('FetchX509SVID', 'CANCELLED')).toBe(0);
    stream.call.cancel();
    await until(async () => (await calls('FetchX509SVID', 'CANCELLED')) === 1, 'the cancelled stream counted');
  });

  it('logs at debug, per call, the caller, the selectors each attestor found and the entries that matched', () => {
    const line = debugLines.find((l) => l.msg === 'workload attested');
    expect(line?.fields.caller).toMatchObject({ pid: process.pid, uid });
    expect((line?.fields.selectors as Record<string, string[]>).unix).toContain(`uid:${uid}`);
    expect(line?.fields.matchedEntries).toEqual([{ entryId, spiffeId: 'spiffe://example.org/obs' }]);
  });

  it('is live and ready on both listeners, and SERVING on the socket, while it holds a valid SVID and reaches the server', async () => {
    const ready = await fetch(`${base()}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { agentSvid: true, entries: true, workloadApi: true, server: true } });
    expect((await fetch(`${base()}/live`)).status).toBe(200);
    const health = `http://127.0.0.1:${agent.httpPorts[1]}`;
    expect((await fetch(`${health}/readyz`)).status).toBe(200);
    expect((await fetch(`${health}/livez`)).status).toBe(200);
    expect((await fetch(`${health}/metrics`)).status).toBe(404);
    expect(await checkHealthDetail(socketPath, 3000)).toEqual({ status: ServingStatus.SERVING });
  });

  it('reports the server lost at once, and unhealthy (with the reason) once it has been unreachable past the threshold', async () => {
    await server?.stop();
    server = undefined;
    await until(async () => series(await scrape(), 'mayfly_agent_server_connected') === 0, 'the connection gauge to drop');
    // Within the threshold: still serving cached SVIDs, still healthy.
    skewMs += 599_000;
    expect((await checkHealthDetail(socketPath, 3000)).status).toBe(ServingStatus.SERVING);
    expect(series(await scrape(), 'mayfly_agent_seconds_since_last_sync')).toBeGreaterThanOrEqual(599);
    skewMs += 2_000;
    const detail = await checkHealthDetail(socketPath, 3000);
    expect(detail.status).toBe(ServingStatus.NOT_SERVING);
    expect(detail.reason).toBe('the server has been unreachable for longer than 600s (server_unreachable_threshold)');
    const ready = await fetch(`${base()}/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks).toEqual({ agentSvid: true, entries: true, workloadApi: true, server: false });
    // Live still: the agent serves what it holds and keeps reconnecting; a restart would not help.
    expect((await fetch(`${base()}/live`)).status).toBe(200);
  }, 60_000);

  it('is unhealthy once its agent SVID expired, whatever the threshold', async () => {
    const svid = agent.agentSvid;
    expect(svid).toBeDefined();
    skewMs = (svid?.notAfter.getTime() ?? 0) - Date.now() + 1_000;
    const detail = await checkHealthDetail(socketPath, 3000);
    expect(detail.status).toBe(ServingStatus.NOT_SERVING);
    expect(detail.reason).toBe('the agent holds no valid agent SVID');
    expect(series(await scrape(), 'mayfly_agent_svid_expiry_seconds')).toBeLessThan(0);
  }, 60_000);
});
