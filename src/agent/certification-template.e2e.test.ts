/**
 * Certification applies to an entry template as to any entry (issue 11 items 5 and 6): the
 * set-up of certification.e2e.test.ts with one template entry, `spiffe://<td>/uid/{{unix:uid}}`
 * (`unix:uid:*`). The workload gets its concrete ID from it; once the template's
 * certification lapses the agent drops the template (and its instances) and the workload
 * gets PERMISSION_DENIED; once the owner certifies the template, the concrete ID is back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../config/hcl.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { resolveServerConfig } from '../server/config.js';
import type { WireEntry } from '../server/messages.js';
import { createServerLogger } from '../server/observability.js';
import { ServerRunner } from '../server/runner.js';
import { Client, unary } from '../workloadapi/testing.js';
import { MayflyAgent } from './agent.js';
import type { AgentLogger } from './logger.js';

const TD = 'example.org';
const root = mkdtempSync(join(tmpdir(), 'mayfly-certification-template-e2e-'));
let t = Date.now();
let runner: ServerRunner;
let admin: ServerApiClients;
let agent: MayflyAgent;
let entry: WireEntry;
const socketPath = join(root, 'wl', 'api.sock');
const warnings: { fields: Record<string, unknown>; msg: string }[] = [];
const logger: AgentLogger = { debug() {}, info() {}, warn: (fields, msg) => void warnings.push({ fields: fields as Record<string, unknown>, msg }), error() {} };

async function fetchJwt(): Promise<{ code: number; message: string; ids?: string[] }> {
  const wl = new Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
  try {
    const r = await unary<{ svids: { spiffe_id: string }[] }>(wl, 'FetchJWTSVID', { audience: ['e2e'] });
    return { code: 0, message: '', ids: r.svids.map((x) => x.spiffe_id) };
  } catch (err) {
    return { code: (err as grpc.ServiceError).code, message: (err as grpc.ServiceError).details };
  } finally {
    wl.close();
  }
}

async function until(pred: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  const conf = `server {\n trust_domain = "${TD}"\n agent_ttl = "6h"\n certification {\n interval = "1h"\n grace = "0s"\n }\n}\n`;
  const settings = resolveServerConfig(parseConfigText(conf), { dataDir: join(root, 'server'), socketPath: join(root, 'private', 'api.sock'), bindPort: 0 });
  runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200, now: () => new Date(t) });
  await runner.start();
  admin = adminSocketClients(settings.socketPath);
  const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
  agent = new MayflyAgent({ serverAddress: `127.0.0.1:${runner.server!.port}`, trustDomain: TD, dataDir: join(root, 'agent'), socketPath, joinToken: token.value, insecureBootstrap: true, logger });
  await agent.start();
  await agent.whenReady(20_000);
  const res = await unaryCall<{ results: { entry: WireEntry }[] }>(admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: `spiffe://${TD}/uid/{{unix:uid}}`, parent_id: agent.agentSvid?.spiffeId, selectors: [{ type: 'unix', value: 'uid:*' }], owner: 'team-a' }],
  });
  entry = res.results[0]!.entry;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  admin?.close();
  await runner?.stop();
  rmSync(root, { recursive: true, force: true });
}, 60_000);

describe('a lapsed certification of an entry template on the node', () => {
  it('the agent drops the template and says why; the workload gets PERMISSION_DENIED until the owner certifies', async () => {
    const mine = `spiffe://${TD}/uid/${process.getuid?.() ?? 0}`;
    await until(async () => (await fetchJwt()).code === 0, 'the workload to get its JWT-SVID');
    expect((await fetchJwt()).ids).toEqual([mine]);
    expect(agent.cache?.templateInstanceCount).toBe(1);
    t += 3601_000;
    await runner.server!.certification!.sweep();
    await until(async () => (await fetchJwt()).code === grpc.status.PERMISSION_DENIED, 'the workload to be refused');
    const w = warnings.find((x) => x.fields.entryId === entry.id);
    expect(w?.msg).toBe('the server withholds an entry: its SVIDs are no longer served');
    expect(String(w?.fields.reason)).toContain('owner certification lapsed');
    expect(agent.state).not.toBe('failed');
    expect(agent.cache?.templateInstanceCount).toBe(0);

    await unaryCall(admin.Entry, 'CertifyEntry', { entry_id: entry.id, owner: 'team-a', note: 'checkout still runs' });
    await until(async () => (await fetchJwt()).code === 0, 'the workload to get its JWT-SVID again');
    expect((await fetchJwt()).ids).toEqual([mine]);
  });
});
