/**
 * End to end against the REAL server: MayflyServer (LevelDB in a temp dir, its own CA,
 * TLS on 127.0.0.1) ← MayflyAgent (join token, grpc-js over mTLS) ← a grpc-js Workload
 * API client on the agent's Unix socket (real SO_PEERCRED, real unix attestor, our uid).
 * The cases run in order and share the server, the agent and their data directories.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { TrustDomain } from '../spiffe/id.js';
import { validateJwtSvid } from '../spiffe/jwt/validate.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { splitDerCertificates, pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { workloadServiceDefinition } from '../wire/workload/proto.js';
import { importSpki } from '../spiffe/keys.js';
import { MayflyAgent } from './agent.js';
import type { AgentLogger } from './logger.js';

const td = TrustDomain.parse('example.org');
const uid = process.getuid?.() ?? 0;

interface X509SvidMsg {
  svids: { spiffe_id: string; x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer; hint: string }[];
}

/** A stream's messages and end status, awaited one by one. */
class Inbox<T> {
  readonly items: T[] = [];
  status: grpc.StatusObject | undefined;
  #wake: (() => void) | undefined;

  constructor(stream: grpc.ClientReadableStream<T>) {
    stream.on('data', (m: T) => {
      this.items.push(m);
      this.#wake?.();
    });
    stream.on('error', () => {});
    stream.on('status', (s: grpc.StatusObject) => {
      this.status = s;
      this.#wake?.();
    });
  }

  async until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${this.items.length} messages, status ${JSON.stringify(this.status)}`);
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 100);
      });
    }
  }
}

function workloadClient(socketPath: string): grpc.Client {
  const Ctor = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
  return new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure());
}

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

function fetchX509(c: grpc.Client): { inbox: Inbox<X509SvidMsg>; call: grpc.ClientReadableStream<X509SvidMsg> } {
  const call = (c as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<X509SvidMsg> }).FetchX509SVID({}, header());
  return { inbox: new Inbox(call), call };
}

function verifyMsg(m: X509SvidMsg | undefined, spiffeId: string): void {
  const s = m?.svids.find((x) => x.spiffe_id === spiffeId);
  if (s === undefined) throw new Error(`no SVID for ${spiffeId}`);
  const v = verifyX509Svid(splitDerCertificates(s.x509_svid), { trustDomain: td, x509Authorities: splitDerCertificates(s.bundle) });
  expect(v.spiffeId.toString()).toBe(spiffeId);
}

const recorded: string[] = [];
const logger: AgentLogger = {
  debug() {},
  info() {},
  warn: (_f, m) => void recorded.push(`warn: ${m}`),
  error: (_f, m) => void recorded.push(`error: ${m}`),
};

describe('MayflyAgent against the real MayflyServer', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-agent-e2e-'));
  const serverDir = join(root, 'server');
  const agentDir = join(root, 'agent', 'data');
  const adminSocket = join(root, 'admin', 'admin.sock');
  const socketPath = join(root, 'wl', 'api.sock');
  let server: TestServer;
  let port = 0;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let wl: grpc.Client;
  let agentId = '';
  let stream: { inbox: Inbox<X509SvidMsg>; call: grpc.ClientReadableStream<X509SvidMsg> };

  const startServer = async (): Promise<void> => {
    server = await startTestServer({ trustDomain: 'example.org', dataDir: serverDir, adminSocketPath: adminSocket, bindAddress: '127.0.0.1', port, drainMs: 200 });
    port = server.port;
    admin = adminSocketClients(adminSocket);
  };
  const createEntry = async (path: string, extra: Record<string, unknown> = {}): Promise<string> => {
    const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: { id: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://example.org${path}`, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }], ...extra }],
    });
    expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
    return res.results[0]?.entry.id as string;
  };
  /** Waits until the agent's cache holds an SVID for `path` (the push reached the agent). */
  const agentHas = async (path: string): Promise<void> => {
    const id = `spiffe://example.org${path}`;
    const deadline = Date.now() + 20_000;
    while (!(agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.some((i) => i.spiffeId === id) ?? false)) {
      if (Date.now() > deadline) throw new Error(`the agent never received ${id}; logged: ${recorded.slice(-6).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const deleteEntry = async (id: string): Promise<void> => {
    const res = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchDeleteEntry', { ids: [id] });
    expect(res.results[0]?.status.code).toBe(0);
  };
  const newAgent = (joinToken?: string, trustBundlePath?: string): MayflyAgent =>
    new MayflyAgent({
      serverAddress: `127.0.0.1:${port}`, trustDomain: 'example.org', dataDir: agentDir, socketPath, logger,
      ...(joinToken !== undefined ? { joinToken } : {}), ...(trustBundlePath !== undefined ? { trustBundlePath } : {}),
    });

  beforeAll(async () => {
    await startServer();
  }, 60_000);

  afterAll(async () => {
    wl?.close();
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  let firstEntry = '';

  it('attests with a join token (server authenticated by a trust bundle file) and persists its SVID privately', async () => {
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const b = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    const bundlePath = join(root, 'trust-bundle.pem');
    writeFileSync(bundlePath, pemEncodeCertificates(b.x509_authorities));
    agent = newAgent(token.value, bundlePath);
    await agent.start();
    await agent.whenReady(20_000);
    agentId = agent.agentSvid?.spiffeId ?? '';
    expect(agentId).toMatch(/^spiffe:\/\/example\.org\/spire\/agent\/join_token\//);
    expect(statSync(agentDir).mode & 0o777).toBe(0o700);
    for (const f of ['agent-svid.pem', 'agent-key.pem', 'bundle.pem']) expect(statSync(join(agentDir, f)).mode & 0o777).toBe(0o600);
    // The token is single-use: the server now refuses it.
    const dir2 = mkdtempSync(join(root, 'other-'));
    const other = new MayflyAgent({ serverAddress: `127.0.0.1:${port}`, trustDomain: 'example.org', dataDir: dir2, socketPath: join(dir2, 's.sock'), joinToken: token.value, trustBundlePath: bundlePath });
    await expect(other.start()).rejects.toMatchObject({ grpcCode: grpc.status.PERMISSION_DENIED });
    expect(other.state).toBe('stopped');
    // Trust on first use (no bundle file): attests over TLS without verifying the server,
    // stores the bundle it got, and syncs over mTLS verified against that bundle.
    const token2 = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const dir3 = mkdtempSync(join(root, 'tofu-'));
    const tofu = new MayflyAgent({ serverAddress: `127.0.0.1:${port}`, trustDomain: 'example.org', dataDir: join(dir3, 'data'), socketPath: join(dir3, 's.sock'), joinToken: token2.value, insecureBootstrap: true, logger });
    await tofu.start();
    await tofu.whenReady(20_000);
    expect(tofu.agentSvid?.spiffeId).toMatch(/\/spire\/agent\/join_token\//);
    expect(recorded.some((l) => l.startsWith('warn: INSECURE BOOTSTRAP'))).toBe(true);
    await tofu.stop();
  }, 60_000);

  it('serves an X509-SVID for an entry with our uid; it verifies against the bundle', async () => {
    firstEntry = await createEntry('/workload/first', { hint: 'first' });
    await agentHas('/workload/first');
    wl = workloadClient(socketPath);
    stream = fetchX509(wl);
    await stream.inbox.until(() => stream.inbox.items.length >= 1, 'first X509-SVID message');
    const m = stream.inbox.items[0];
    expect(m?.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/workload/first']);
    expect(m?.svids[0]?.hint).toBe('first');
    verifyMsg(m, 'spiffe://example.org/workload/first');
  }, 60_000);

  it('pushes an entry created later to the already-open stream (no polling), oldest entry first', async () => {
    const before = stream.inbox.items.length;
    await createEntry('/workload/second');
    await stream.inbox.until(() => stream.inbox.items.at(-1)?.svids.length === 2, 'second identity on the open stream');
    expect(stream.inbox.items.length).toBeGreaterThan(before);
    const m = stream.inbox.items.at(-1);
    expect(m?.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/workload/first', 'spiffe://example.org/workload/second']);
    verifyMsg(m, 'spiffe://example.org/workload/second');
  }, 60_000);

  it('mints a JWT-SVID through the server and validates it against the cached bundle', async () => {
    type JwtRes = { svids: { spiffe_id: string; svid: string }[] };
    const fetch = (aud: string[]): Promise<JwtRes> =>
      new Promise((ok, fail) =>
        (wl as unknown as { FetchJWTSVID(r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: JwtRes) => void): void }).FetchJWTSVID(
          { audience: aud, spiffe_id: 'spiffe://example.org/workload/first' }, header(), (e, r) => (e ? fail(e) : ok(r)),
        ),
      );
    const a = await fetch(['svc-b', 'svc-a']);
    const b = await fetch(['svc-a', 'svc-b']);
    expect(b.svids[0]?.svid).toBe(a.svids[0]?.svid); // cached per sorted audience set
    const bundle = await unaryCall<{ jwt_authorities: { key_id: string; public_key: Buffer }[] }>(admin.Bundle, 'GetBundle', {});
    const jb = new Bundle({ trustDomain: td, jwtAuthorities: bundle.jwt_authorities.map((k) => [k.key_id, importSpki(k.public_key)] as [string, ReturnType<typeof importSpki>]) });
    expect(validateJwtSvid(a.svids[0]?.svid ?? '', { audience: 'svc-a', bundles: jb }).spiffeId.toString()).toBe('spiffe://example.org/workload/first');
  }, 60_000);

  it('drops a deleted entry from the open stream, and ends it with PERMISSION_DENIED when none is left', async () => {
    const second = stream.inbox.items.at(-1)?.svids.length;
    expect(second).toBe(2);
    const ids = await unaryCall<{ entries: { id: string; spiffe_id: string }[] }>(admin.Entry, 'ListEntries', {});
    const secondId = ids.entries.find((e) => e.spiffe_id === 'spiffe://example.org/workload/second')?.id as string;
    await deleteEntry(secondId);
    await stream.inbox.until(() => stream.inbox.items.at(-1)?.svids.length === 1, 'second identity removed');
    await deleteEntry(firstEntry);
    await stream.inbox.until(() => stream.inbox.status !== undefined, 'stream end');
    expect(stream.inbox.status?.code).toBe(grpc.status.PERMISSION_DENIED);
  }, 60_000);

  it('keeps serving the cached SVID while the server is stopped, and reconnects when it restarts', async () => {
    await createEntry('/workload/steady');
    await agentHas('/workload/steady');
    stream = fetchX509(wl);
    await stream.inbox.until(() => stream.inbox.items.length >= 1, 'SVID for the steady entry');
    const subsBefore = agent.sync?.subscriptions ?? 0;
    admin.close();
    await server.stop();
    // A new caller is still served from the cache, while the server is down.
    const during = fetchX509(wl);
    await during.inbox.until(() => during.inbox.items.length >= 1, 'SVID while the server is down');
    verifyMsg(during.inbox.items[0], 'spiffe://example.org/workload/steady');
    during.call.cancel();
    expect(agent.sync?.state).not.toBe('streaming');
    await startServer();
    // The agent's own stream comes back (backoff 1 s, 2 s, …), and new entries flow again.
    const deadline = Date.now() + 30_000;
    while (!(agent.sync?.state === 'streaming' && (agent.sync?.subscriptions ?? 0) > subsBefore)) {
      if (Date.now() > deadline) throw new Error(`agent did not reconnect (state ${agent.sync?.state})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await createEntry('/workload/after-restart');
    await stream.inbox.until(() => stream.inbox.items.at(-1)?.svids.length === 2, 'entry created after the server restart');
    verifyMsg(stream.inbox.items.at(-1), 'spiffe://example.org/workload/after-restart');
  }, 90_000);

  it('restarts with the same data directory without a join token, and serves workloads again', async () => {
    stream.call.cancel();
    wl.close();
    const oldId = agentId;
    await agent.stop();
    agent = newAgent();
    await agent.start();
    await agent.whenReady(20_000);
    expect(agent.agentSvid?.spiffeId).toBe(oldId);
    wl = workloadClient(socketPath);
    const s = fetchX509(wl);
    await s.inbox.until(() => s.inbox.items.length >= 1, 'SVIDs after agent restart');
    expect(s.inbox.items[0]?.svids.map((x) => x.spiffe_id)).toEqual(['spiffe://example.org/workload/steady', 'spiffe://example.org/workload/after-restart']);
    verifyMsg(s.inbox.items[0], 'spiffe://example.org/workload/steady');
    s.call.cancel();
  }, 60_000);

  it('evicted: without a new join token the log says what to do; restarted with one, it attests with it although its stored SVID is still valid', async () => {
    const evictedId = agentId;
    const errorsBefore = recorded.length;
    await unaryCall(admin.Agent, 'DeleteAgent', { id: evictedId });
    // The open stream is refused UNAUTHENTICATED (evicted); this agent has no token to attest with.
    const deadline = Date.now() + 20_000;
    while (!recorded.slice(errorsBefore).some((l) => l.startsWith('error: the server no longer accepts this agent'))) {
      if (Date.now() > deadline) throw new Error(`no eviction message; logged: ${recorded.slice(errorsBefore).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const explained = recorded.slice(errorsBefore).find((l) => l.startsWith('error: the server no longer accepts this agent')) ?? '';
    expect(explained).toContain('mayfly-server token generate');
    expect(explained).toContain('-joinToken');
    expect(explained).toContain(agentDir);
    wl.close();
    await agent.stop();

    // The new token names a node alias; the entry hangs off it (the agent ID itself is random).
    const alias = 'spiffe://example.org/node/after-evict';
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600, agent_id: alias });
    const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: 'spiffe://example.org/workload/after-evict', parent_id: alias, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
    });
    expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
    const storedBefore = readFileSync(join(agentDir, 'agent-svid.pem'), 'utf8');
    agent = newAgent(token.value);
    await agent.start();
    await agentHas('/workload/after-evict');
    const newId = agent.agentSvid?.spiffeId ?? '';
    expect(newId).toMatch(/^spiffe:\/\/example\.org\/spire\/agent\/join_token\//);
    expect(newId).not.toBe(evictedId);
    expect(readFileSync(join(agentDir, 'agent-svid.pem'), 'utf8')).not.toBe(storedBefore);
    agentId = newId;
    wl = workloadClient(socketPath);
    const s = fetchX509(wl);
    await s.inbox.until(() => s.inbox.items.length >= 1, 'SVIDs after re-attesting with the new token');
    verifyMsg(s.inbox.items[0], 'spiffe://example.org/workload/after-evict');
    s.call.cancel();
  }, 60_000);

  it("banned: the agent stops serving its workloads' SVIDs at once, and the log says what to do", async () => {
    const s = fetchX509(wl);
    await s.inbox.until(() => s.inbox.items.length >= 1, 'SVIDs before the ban');
    const errorsBefore = recorded.length;
    await unaryCall(admin.Agent, 'BanAgent', { id: agentId });
    await s.inbox.until(() => s.inbox.status !== undefined, 'the open stream to end after the ban');
    expect(s.inbox.status?.code).toBe(grpc.status.PERMISSION_DENIED);
    // A new caller gets nothing either, X.509 or JWT.
    const again = fetchX509(wl);
    await again.inbox.until(() => again.inbox.status !== undefined, 'a new fetch after the ban');
    expect(again.inbox.status?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(again.inbox.items).toHaveLength(0);
    const jwt = await new Promise<grpc.ServiceError | null>((resolve) => {
      (wl as unknown as { FetchJWTSVID(req: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void): void }).FetchJWTSVID({ audience: ['a'] }, header(), (e) => resolve(e));
    });
    expect(jwt?.code).toBe(grpc.status.PERMISSION_DENIED);
    const explained = recorded.slice(errorsBefore).find((l) => l.startsWith('error: the server banned')) ?? '';
    expect(explained).toContain(agentId);
    expect(explained).toContain('agent evict');
  }, 60_000);
});
