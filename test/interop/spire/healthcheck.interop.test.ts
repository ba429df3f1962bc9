/**
 * SPIRE's own `spire-agent healthcheck -socketPath` (v1.13.3, built by .ci/run) against a
 * real Mayfly agent's Workload API socket: it calls `grpc.health.v1.Health/Check`, which
 * Mayfly serves there as SPIRE's agent does. Healthy while the agent serves; unhealthy once
 * its own SVID expired unrenewed (no valid SVID). The agent is the real `MayflyAgent`
 * (real endpoint and socket) over the in-memory `FakeServer` with a manual clock.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../../../src/agent/agent.js';
import { FakeServer, ManualScheduler, testEntry } from '../../../src/agent/testing.js';
import { pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';
import { checkHealth, healthServiceDefinition, ServingStatus } from '../../../src/workloadapi/health.js';
import { spireBinary } from './bin.js';

const run = promisify(execFile);

/** `spire-agent healthcheck`'s exit code and output. */
async function spireHealthcheck(socketPath: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run(spireBinary('spire-agent'), ['healthcheck', '-socketPath', socketPath], { timeout: 20_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

let dir: string;
let sched: ManualScheduler;
let server: FakeServer;
let agent: MayflyAgent;

beforeAll(async () => {
  spireBinary('spire-agent');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-health-'));
  sched = new ManualScheduler(new Date());
  server = new FakeServer({ scheduler: sched, joinTokens: ['tok'], agentTtlSeconds: 600 });
  writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([server.ca.certificate]));
  server.entries = [testEntry({ entryId: 'e', spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/spire/agent/join_token/tok' })];
  agent = new MayflyAgent({
    serverAddress: 'unused:1',
    trustDomain: 'example.org',
    dataDir: join(dir, 'data'),
    socketPath: join(dir, 'api.sock'),
    joinToken: 'tok',
    trustBundlePath: join(dir, 'roots.pem'),
    workloadAttestors: [{ name: 'unix', attest: async () => [{ type: 'unix', value: 'uid:1000' }] }],
    scheduler: sched,
    random: () => 0.5,
    serverClientFactory: (c) => server.client(c),
    onFatal: () => {},
  });
  await agent.start();
  await agent.whenReady(10_000);
});

afterAll(async () => {
  await agent?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('grpc.health.v1.Health on the Workload API socket', () => {
  it('spire-agent healthcheck reports a serving Mayfly agent healthy', async () => {
    const r = await spireHealthcheck(agent.socketPath);
    expect(r).toEqual({ code: 0, out: 'Agent is healthy.\n' });
    expect(await checkHealth(agent.socketPath, 5000)).toBe(ServingStatus.SERVING);
  });

  it('an unknown service name is NOT_FOUND, as grpc-go answers', async () => {
    const client = new grpc.Client(`unix://${agent.socketPath}`, grpc.credentials.createInsecure());
    const check = healthServiceDefinition().Check as grpc.MethodDefinition<object, { status: number }>;
    // HealthCheckRequest { service: "no.such.Service" }
    const req = Buffer.concat([Buffer.from([0x0a, 15]), Buffer.from('no.such.Service')]);
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest(check.path, () => req, check.responseDeserialize, {}, (e) => resolve(e)),
    );
    client.close();
    expect(err?.code).toBe(grpc.status.NOT_FOUND);
  });

  it('reports unhealthy (exit 1, NOT_SERVING) once the agent SVID expired unrenewed', async () => {
    server.setAvailable(false);
    for (let i = 0; i < 60 && agent.state !== 'failed'; i++) {
      sched.advance(30_000);
      await agent.cache?.settled();
      await new Promise((r) => setImmediate(r));
    }
    expect(agent.state).toBe('failed');
    expect(await checkHealth(agent.socketPath, 5000)).toBe(ServingStatus.NOT_SERVING);
    const r = await spireHealthcheck(agent.socketPath);
    expect(r.code).toBe(1);
    expect(r.out).toContain('Agent is unhealthy: agent returned status "NOT_SERVING"');
  });

  it('reports unhealthy when nothing listens on the socket', async () => {
    await agent.stop();
    const r = await spireHealthcheck(agent.socketPath);
    expect(r.code).toBe(1);
    expect(r.out).toContain('Agent is unhealthy');
  });
});
