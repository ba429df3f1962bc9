/**
 * No failed request during three rotations (issue 13), with a REAL server and agent: entries
 * with a 30 s X509-SVID TTL (backdated 10 s by the CA) make the agent rotate the workloads' SVIDs every ~10 s; a bounded
 * loop of requests over https, http2 and fetch (each on a new connection, so each handshake
 * presents and checks the SVIDs current at that moment) runs until both workloads have seen
 * three rotations. Every request succeeds, the server saw several client certificates, and a
 * workload with an unauthorised SPIFFE ID is refused at the handshake on every transport.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../agent/agent.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer as MayflyTestServer } from '../server/testing.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import type { X509Svid } from './model.js';
import { X509Source } from './sources.js';
import { authorizeId } from './tls.js';
import { requestOnce, startServer, type TestServer, type Transport } from './testdata/transports.js';

const uid = process.getuid?.() ?? 0;
const TD = 'example.org';
const API = `spiffe://${TD}/api`;
const WEB = `spiffe://${TD}/web`;
const INTRUDER = `spiffe://${TD}/intruder`;
const KINDS: Transport[] = ['https', 'http2', 'fetch'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('SDK transports under continuous load across SVID rotations', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-sdk-rotload-'));
  const socketPath = join(root, 'wl', 'api.sock');
  let server: MayflyTestServer;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  const sources: Record<string, X509Source> = {};
  const servers = new Map<Transport, TestServer>();

  beforeAll(async () => {
    server = await startTestServer({ trustDomain: TD, dataDir: join(root, 'server'), adminSocketPath: join(root, 'admin', 'admin.sock'), drainMs: 200 });
    admin = adminSocketClients(server.adminSocketPath);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const b = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    writeFileSync(join(root, 'bundle.pem'), pemEncodeCertificates(b.x509_authorities));
    agent = new MayflyAgent({ serverAddress: `127.0.0.1:${server.port}`, trustDomain: TD, dataDir: join(root, 'agent'), socketPath, joinToken: token.value, trustBundlePath: join(root, 'bundle.pem') });
    await agent.start();
    await agent.whenReady(20_000);
    for (const id of [API, WEB, INTRUDER]) {
      const r = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: id, parent_id: agent.agentSvid?.spiffeId, selectors: [{ type: 'unix', value: `uid:${uid}` }], x509_svid_ttl: 30 }],
      });
      expect(r.results[0]?.status.code).toBe(0);
    }
    const deadline = Date.now() + 20_000;
    while (agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.length !== 3) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the three SVIDs at the agent');
      await sleep(20);
    }
    for (const id of [API, WEB, INTRUDER]) {
      sources[id] = await X509Source.create({ address: `unix://${socketPath}`, picker: (svids: readonly X509Svid[]) => svids.find((s) => s.id.toString() === id) as X509Svid });
    }
    for (const kind of KINDS) servers.set(kind, await startServer(kind, sources[API] as X509Source, authorizeId(WEB), { closeEach: kind === 'fetch' }));
  }, 90_000);

  afterAll(async () => {
    for (const s of servers.values()) await s.close();
    for (const s of Object.values(sources)) s.close();
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('every request succeeds while both workloads rotate three times; an unauthorised ID is refused at the handshake', async () => {
    const web = sources[WEB] as X509Source;
    const api = sources[API] as X509Source;
    const serials = (s: X509Source): Set<string> => new Set([s.getX509Svid().certificates[0]?.toString('hex') ?? '']);
    const webSeen = serials(web);
    const apiSeen = serials(api);
    const failures: string[] = [];
    let requests = 0;
    // Bounded: at most 2,000 rounds; three rotations take ~30 s.
    for (let round = 0; round < 2000 && (webSeen.size < 4 || apiSeen.size < 4); round++) {
      for (const kind of KINDS) {
        const out = await requestOnce(kind, (servers.get(kind) as TestServer).port, web, authorizeId(API));
        requests++;
        if (out.error || out.body !== `hi ${WEB}`) failures.push(`${kind}: ${out.error?.message ?? out.body}`);
      }
      for (const [set, s] of [[webSeen, web], [apiSeen, api]] as const) for (const x of serials(s)) set.add(x);
      await sleep(5);
    }
    expect(failures).toEqual([]);
    expect(webSeen.size).toBeGreaterThanOrEqual(4); // the first SVID and three rotations
    expect(apiSeen.size).toBeGreaterThanOrEqual(4);
    expect(requests).toBeGreaterThan(KINDS.length * 3);
    for (const kind of KINDS) {
      const s = servers.get(kind) as TestServer;
      expect(new Set(s.serials).size).toBeGreaterThanOrEqual(3); // new connections carried the rotated client SVIDs
      const refused = await requestOnce(kind, s.port, sources[INTRUDER] as X509Source, authorizeId(API));
      expect(refused.body).toBeUndefined();
      expect(s.rejected.at(-1)?.message).toMatch(/intruder is not the expected/);
    }
  }, 120_000);
});
