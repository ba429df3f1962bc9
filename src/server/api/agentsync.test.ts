import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../spiffe/keys.js';
import { createCsr } from '../../spiffe/x509/csr.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from '../client.js';
import type { WireBundle, WireEntry, WireX509Svid } from '../messages.js';
import { startTestServer, type TestServer } from '../testing.js';

const TD = 'sync.test';

interface Update {
  entries: WireEntry[];
  sequence: number;
}

let dir: string | undefined;
let server: TestServer | undefined;
const clients: ServerApiClients[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.stop();
  server = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A server with the given coalescing window, an attested agent, and its open push stream. */
async function agentStream(syncCoalesceMs: number) {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-agentsync-'));
  const srv = await startTestServer({
    trustDomain: TD,
    dataDir: dir,
    adminSocketPath: join(dir, 'admin.sock'),
    bindAddress: '127.0.0.1',
    port: 0,
    drainMs: 200,
    csrWorkers: 0,
    limits: { syncCoalesceMs },
  });
  server = srv;
  const admin = adminSocketClients(srv.adminSocketPath);
  clients.push(admin);
  const bundle = await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
  const token = (await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 60 })).value;
  const key = generateKeyPair();
  const anon = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: bundle.x509_authorities });
  clients.push(anon);
  const res = await unaryCall<{ svid: WireX509Svid }>(anon.Agent, 'AttestAgent', {
    attestation_data: { type: 'join_token', payload: Buffer.from(token) },
    csr: createCsr({ privateKey: key.privateKey }),
  });
  const agent = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: bundle.x509_authorities, svid: { certChain: res.svid.cert_chain, privateKey: key.privateKey } });
  clients.push(agent);
  const s = (agent.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<Update> }).SubscribeAuthorizedEntries({});
  const updates: Update[] = [];
  let wake: (() => void) | undefined;
  s.on('data', (u: Update) => {
    updates.push(u);
    wake?.();
  });
  s.on('error', () => undefined);
  const until = async (pred: () => boolean): Promise<void> => {
    while (!pred()) await new Promise<void>((r) => (wake = r));
  };
  await until(() => updates.length >= 1);
  const create = async (path: string): Promise<void> => {
    const r = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://${TD}${path}`, parent_id: res.svid.spiffe_id, selectors: [{ type: 'unix', value: 'uid:1' }] }],
    });
    expect(r.results[0]?.status.code, r.results[0]?.status.message).toBe(0);
  };
  const holds = (u: Update | undefined, path: string): boolean => u?.entries.some((e) => e.spiffe_id === `spiffe://${TD}${path}`) ?? false;
  return { updates, until, create, holds, cancel: () => s.cancel() };
}

describe('authorised-entry push: coalescing', () => {
  it('acts on the first change after a quiet spell at once, however long the window', async () => {
    // With a one-hour window, only a leading-edge push can deliver this within the test.
    const { updates, until, create, holds, cancel } = await agentStream(3_600_000);
    await create('/first');
    await until(() => holds(updates.at(-1), '/first'));
    expect(updates.map((u) => u.sequence)).toEqual([1, 2]);
    cancel();
  });

  it('coalesces a burst of changes into at most one more push after the first', async () => {
    const { updates, until, create, holds, cancel } = await agentStream(2000);
    const paths = Array.from({ length: 20 }, (_, i) => `/burst-${i}`);
    await Promise.all(paths.map((p) => create(p)));
    await until(() => paths.every((p) => holds(updates.at(-1), p)));
    // The subscription's own push, the leading edge, and at most one trailing push.
    expect(updates.length).toBeLessThanOrEqual(3);
    expect(updates.at(-1)?.sequence).toBe(updates.length);
    cancel();
  });
});
