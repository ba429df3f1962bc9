/**
 * The JWT-SVID cache's bounds end to end, against the REAL server: MayflyServer (LevelDB in
 * a temp dir, its own CA, TLS on 127.0.0.1) ← MayflyAgent (join token, mTLS, a small JWT
 * cache budget) ← a grpc-js Workload API client on the agent's Unix socket (real
 * SO_PEERCRED, real unix attestor, our uid).
 *
 * Threat: memory exhaustion by one entitled workload asking for JWT-SVIDs with ever new,
 * maximal audience sets (issue 16, finding 5). The agent's accounted cache size must stay
 * within its budget, and audiences past the server's limits must be refused by the agent
 * with INVALID_ARGUMENT (final), not forwarded and returned as UNAVAILABLE (retried).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { workloadServiceDefinition } from '../wire/workload/proto.js';
import { MayflyAgent } from './agent.js';

const uid = process.getuid?.() ?? 0;
const SPIFFE_ID = 'spiffe://example.org/workload/greedy';
/** The agent's JWT cache budget here: about a dozen maximal tokens (~77 KB each with their key). */
const BUDGET = 1024 * 1024;
/** 16 MiB of audiences; unbounded, the agent would keep ~39 MiB of cache for them. */
const SETS = 512;
/**
 * Fewest bytes a cached maximal set can take, whatever the estimate: its audiences in the
 * key (32 × 1,024) and in the token (base64url of claims holding them: ≥ 4/3 × 32,768).
 */
const MIN_ENTRY = 32_768 + 43_690;

type JwtRes = { svids: { spiffe_id: string; svid: string }[] };

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/** 32 audiences of 1,024 characters (the largest set the limits allow), distinct per `i`. */
function bigAudience(i: number, count = 32, length = 1024): string[] {
  return Array.from({ length: count }, (_, j) => `https://svc-${i}-${j}.example/`.padEnd(length, 'a'));
}

describe('JWT-SVID cache bounds with a real server, agent and Workload API client', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-jwtcache-e2e-'));
  const adminSocket = join(root, 'admin', 'admin.sock');
  const socketPath = join(root, 'wl', 'api.sock');
  let server: TestServer;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let wl: grpc.Client;

  const fetchJwt = (audience: string[]): Promise<JwtRes> =>
    new Promise((ok, fail) =>
      (wl as unknown as { FetchJWTSVID(r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: JwtRes) => void): void }).FetchJWTSVID(
        { audience }, header(), (e, r) => (e ? fail(e) : ok(r)),
      ),
    );
  const statusOf = async (audience: string[]): Promise<{ code: number; details: string }> => {
    try {
      await fetchJwt(audience);
      return { code: grpc.status.OK, details: '' };
    } catch (err) {
      const e = err as grpc.ServiceError;
      return { code: e.code, details: e.details };
    }
  };
  const cacheSize = (): number => agent.cache?.jwtCacheSize ?? 0;

  beforeAll(async () => {
    server = await startTestServer({ trustDomain: 'example.org', dataDir: join(root, 'server'), adminSocketPath: adminSocket, bindAddress: '127.0.0.1', port: 0, drainMs: 200 });
    admin = adminSocketClients(adminSocket);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const b = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    const bundlePath = join(root, 'trust-bundle.pem');
    writeFileSync(bundlePath, pemEncodeCertificates(b.x509_authorities));
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${server.port}`, trustDomain: 'example.org', dataDir: join(root, 'agent'), socketPath,
      joinToken: token.value, trustBundlePath: bundlePath, jwtSvidCache: { maxBytes: BUDGET },
    });
    await agent.start();
    await agent.whenReady(20_000);
    const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: SPIFFE_ID, parent_id: agent.agentSvid?.spiffeId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
    });
    expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
    const deadline = Date.now() + 20_000;
    while (!(agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.some((i) => i.spiffeId === SPIFFE_ID) ?? false)) {
      if (Date.now() > deadline) throw new Error(`the agent never received ${SPIFFE_ID}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const Ctor = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
    wl = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    wl?.close();
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it(`one workload asking for ${SETS} distinct maximal audience sets keeps the agent's cache within its byte budget`, async () => {
    const tokens: string[] = [];
    for (let i = 0; i < SETS; i += 16) {
      const batch = await Promise.all(Array.from({ length: 16 }, (_, k) => fetchJwt(bigAudience(i + k))));
      for (const r of batch) {
        expect(r.svids.map((s) => s.spiffe_id)).toEqual([SPIFFE_ID]);
        tokens.push(r.svids[0]?.svid ?? '');
      }
      expect(cacheSize() * MIN_ENTRY, `cached JWT-SVIDs after ${i + 16} sets`).toBeLessThanOrEqual(BUDGET);
      expect(agent.cache?.jwtCacheStats.bytes).toBeLessThanOrEqual(BUDGET);
    }
    const stats = agent.cache?.jwtCacheStats;
    expect(stats?.maxBytes).toBe(BUDGET);
    expect(stats?.entries).toBeGreaterThan(5); // the budget is used, not emptied
    expect(stats?.entries).toBeLessThan(SETS);
    // The most recent set is still served from the cache (the same token); the first one was evicted (a new one).
    // (Fetched alone: within a concurrent batch the completion order, and so which ones the
    // budget evicted, is not fixed.)
    const latest = (await fetchJwt(bigAudience(SETS + 1))).svids[0]?.svid;
    expect((await fetchJwt(bigAudience(SETS + 1))).svids[0]?.svid).toBe(latest);
    expect((await fetchJwt(bigAudience(0))).svids[0]?.svid).not.toBe(tokens[0]);
  }, 60_000);

  it('caps the audience sets cached for one SPIFFE ID (64)', async () => {
    for (let i = 0; i < 100; i += 10) await Promise.all(Array.from({ length: 10 }, (_, k) => fetchJwt([`small-${i + k}`])));
    expect(cacheSize()).toBeLessThanOrEqual(64);
    expect(agent.cache?.jwtCacheStats).toMatchObject({ identities: 1, largestIdentity: 64, maxPerIdentity: 64 });
  }, 60_000);

  it('33 audiences, or one of 1,025 characters: INVALID_ARGUMENT from the agent naming the limit, not UNAVAILABLE', async () => {
    const tooMany = await statusOf(bigAudience(SETS, 33, 10));
    expect(tooMany.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooMany.details).toBe('too many audiences: 33 distinct values (at most 32)');
    const tooLong = await statusOf(['svc-a', 'svc-b', 'svc-c', 'x'.repeat(1025)]);
    expect(tooLong.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(tooLong.details).toBe('audience[3] is 1025 characters (at most 1024)');
    // The limits themselves are fine (32 × 1,024 above); the same set minus the extra value is served.
    expect((await fetchJwt(bigAudience(SETS, 32, 10))).svids[0]?.spiffe_id).toBe(SPIFFE_ID);
  }, 60_000);

  it('a request over the endpoint\'s 64 KiB receive limit is refused by gRPC (RESOURCE_EXHAUSTED)', async () => {
    const huge = await statusOf(bigAudience(SETS + 1, 30, 3000)); // ~90 KiB
    expect(huge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  }, 60_000);
});
