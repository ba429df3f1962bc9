/**
 * @module test/interop/harness
 *
 * A real Mayfly deployment for the foreign-client interop tests: a `MayflyServer` (LevelDB
 * and CA keys in a temp dir, TLS on a free loopback port, admin API on a Unix socket) and a
 * `MayflyAgent` attested with a join token, both in this process, serving the SPIFFE
 * Workload API on a Unix socket that foreign clients (go-spiffe, py-spiffe, java-spiffe,
 * openssl via the CLI) reach from their own processes. Entries go through the server's admin
 * API exactly as `mayfly-server entry create` does; nothing is faked.
 *
 * The agent attests callers by SO_PEERCRED and the unix workload attestor, so an entry
 * selecting `unix:uid:<our uid>` is what a child process of the test gets.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MayflyAgent } from '../../src/agent/agent.js';
import type { AgentLogger } from '../../src/agent/logger.js';
import type { WorkloadAttestor } from '../../src/attestors/workload/attestor.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import type { ApiLimits } from '../../src/server/api-context.js';
import { startTestServer, type TestServer } from '../../src/server/testing.js';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';

export interface StartMayflyOptions {
  /** Trust domain (default `interop.mayfly.test`). */
  trustDomain?: string;
  /** Server-wide default X509-SVID lifetime in seconds (default: the server's, 3600). */
  x509SvidTtl?: number;
  /** Server-wide default JWT-SVID lifetime in seconds (default: the server's, 300). */
  jwtSvidTtl?: number;
  /** Path of the default entry for the current uid (default `/workload/interop`); `null`: none. */
  defaultEntryPath?: string | null;
  /** The agent's logger (default: silent). */
  agentLogger?: AgentLogger;
  /** The agent's workload attestors (default: the agent's, a `unix` attestor without path discovery). */
  agentWorkloadAttestors?: readonly WorkloadAttestor[];
  /** Further server API limits (e.g. `agentSvidTtl`), over the TTLs above. */
  limits?: Partial<ApiLimits>;
}

export interface EntryOptions {
  /** Per-entry X509-SVID lifetime in seconds (0 = the server default). */
  x509SvidTtl?: number;
  hint?: string;
  /** Trust domains whose bundles the entry's workloads also receive (bare names). */
  federatesWith?: readonly string[];
  /** Wait until the agent holds an SVID for it (default true). */
  wait?: boolean;
}

export interface MayflyDeployment {
  server: TestServer;
  agent: MayflyAgent;
  /** Absolute path of the agent's Workload API socket. */
  socketPath: string;
  /** `unix://<socketPath>`: the SPIFFE_ENDPOINT_SOCKET value for foreign clients. */
  endpoint: string;
  trustDomain: string;
  /** The uid the default entry selects (ours). */
  uid: number;
  /** SPIFFE ID of the default entry (undefined with `defaultEntryPath: null`). */
  defaultSpiffeId: string | undefined;
  /** Entry ID of the default entry. */
  defaultEntryId: string | undefined;
  /** Scratch directory removed by `stop()`; made world-traversable for other-uid clients. */
  workDir: string;
  /**
   * Creates an entry parented to the agent through the admin API and (unless `wait: false`)
   * waits until the agent holds an SVID for it. Selectors are `type:value`, e.g. `unix:uid:0`.
   * Returns the entry ID.
   */
  createEntry(spiffeId: string, selectors: readonly string[], opts?: EntryOptions): Promise<string>;
  deleteEntry(id: string): Promise<void>;
  /** Resolves once the agent serves `spiffeId` to callers with `selectors`. */
  waitForIdentity(spiffeId: string, selectors: readonly string[], timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

interface WireResult {
  status: { code: number; message: string };
  entry?: { id: string };
}

function parseSelector(s: string): { type: string; value: string } {
  const i = s.indexOf(':');
  if (i <= 0 || i === s.length - 1) throw new TypeError(`selector ${JSON.stringify(s)} is not type:value`);
  return { type: s.slice(0, i), value: s.slice(i + 1) };
}

/** Starts a server and an agent; `stop()` tears both down and removes every file. */
export async function startMayfly(opts: StartMayflyOptions = {}): Promise<MayflyDeployment> {
  const trustDomain = opts.trustDomain ?? 'interop.mayfly.test';
  const uid = process.getuid?.() ?? 0;
  const root = mkdtempSync(join(tmpdir(), 'mayfly-interop-'));
  // Clients run as another uid in some tests: they must reach the socket and scratch files.
  chmodSync(root, 0o755);
  // Not under the agent's data directory: that one is 0700 (and so may be its parent).
  const socketPath = join(root, 'public', 'api.sock');
  const adminSocket = join(root, 'server', 'admin', 'admin.sock');
  let server: TestServer | undefined;
  let agent: MayflyAgent | undefined;
  let admin: ServerApiClients | undefined;

  const stop = async (): Promise<void> => {
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const limits: Partial<ApiLimits> = { ...opts.limits };
    if (opts.x509SvidTtl !== undefined) limits.defaultX509SvidTtl = opts.x509SvidTtl;
    if (opts.jwtSvidTtl !== undefined) limits.defaultJwtSvidTtl = opts.jwtSvidTtl;
    server = await startTestServer({
      trustDomain,
      dataDir: join(root, 'server', 'data'),
      adminSocketPath: adminSocket,
      bindAddress: '127.0.0.1',
      port: 0,
      drainMs: 200,
      limits,
    });
    admin = adminSocketClients(adminSocket);
    const adminClients = admin;

    const token = await unaryCall<{ value: string }>(adminClients.Agent, 'CreateJoinToken', { ttl: 600 });
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(adminClients.Bundle, 'GetBundle', {});
    const bundlePath = join(root, 'trust-bundle.pem');
    writeFileSync(bundlePath, pemEncodeCertificates(bundle.x509_authorities));

    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${server.port}`,
      trustDomain,
      dataDir: join(root, 'agent', 'data'),
      socketPath,
      joinToken: token.value,
      trustBundlePath: bundlePath,
      ...(opts.agentLogger !== undefined ? { logger: opts.agentLogger } : {}),
      ...(opts.agentWorkloadAttestors !== undefined ? { workloadAttestors: opts.agentWorkloadAttestors } : {}),
    });
    await agent.start();
    await agent.whenReady(30_000);
    const liveAgent = agent;
    const agentId = liveAgent.agentSvid?.spiffeId;
    if (agentId === undefined) throw new Error('the agent started without an agent SVID');

    const waitForIdentity = async (spiffeId: string, selectors: readonly string[], timeoutMs = 30_000): Promise<void> => {
      const sel = selectors.map(parseSelector);
      const deadline = Date.now() + timeoutMs;
      while (!(liveAgent.cache?.updateFor(sel)?.identities.some((i) => i.spiffeId === spiffeId) ?? false)) {
        if (Date.now() > deadline) throw new Error(`the agent never served ${spiffeId} for ${selectors.join(', ')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };

    const createEntry = async (spiffeId: string, selectors: readonly string[], eo: EntryOptions = {}): Promise<string> => {
      const res = await unaryCall<{ results: WireResult[] }>(adminClients.Entry, 'BatchCreateEntry', {
        entries: [
          {
            spiffe_id: spiffeId,
            parent_id: agentId.toString(),
            selectors: selectors.map(parseSelector),
            ...(eo.x509SvidTtl !== undefined ? { x509_svid_ttl: eo.x509SvidTtl } : {}),
            ...(eo.hint !== undefined ? { hint: eo.hint } : {}),
            ...(eo.federatesWith !== undefined ? { federates_with: [...eo.federatesWith] } : {}),
          },
        ],
      });
      const r = res.results[0];
      if (r === undefined || r.status.code !== 0 || r.entry === undefined) {
        throw new Error(`entry create ${spiffeId} failed: ${r?.status.message ?? 'no result'}`);
      }
      if (eo.wait !== false) await waitForIdentity(spiffeId, selectors);
      return r.entry.id;
    };

    const deleteEntry = async (id: string): Promise<void> => {
      const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(adminClients.Entry, 'BatchDeleteEntry', { ids: [id] });
      const r = res.results[0];
      if (r === undefined || r.status.code !== 0) throw new Error(`entry delete ${id} failed: ${r?.status.message ?? 'no result'}`);
    };

    let defaultSpiffeId: string | undefined;
    let defaultEntryId: string | undefined;
    if (opts.defaultEntryPath !== null) {
      defaultSpiffeId = `spiffe://${trustDomain}${opts.defaultEntryPath ?? '/workload/interop'}`;
      defaultEntryId = await createEntry(defaultSpiffeId, [`unix:uid:${uid}`]);
    }

    return {
      server,
      agent: liveAgent,
      socketPath,
      endpoint: `unix://${socketPath}`,
      trustDomain,
      uid,
      defaultSpiffeId,
      defaultEntryId,
      workDir: root,
      createEntry,
      deleteEntry,
      waitForIdentity,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunProcessOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Run as this uid/gid (needs root). */
  uid?: number;
  gid?: number;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** SIGKILL after this long (default 60 s): a hung foreign client fails its test. */
  killAfterMs?: number;
}

/**
 * Runs a foreign client to completion without blocking the event loop (the server and the
 * agent live in this process and must keep answering it).
 */
export function runProcess(cmd: string, args: readonly string[], o: RunProcessOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...o.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      ...(o.uid !== undefined ? { uid: o.uid } : {}),
      ...(o.gid !== undefined ? { gid: o.gid } : {}),
    });
    child.stdin.on('error', () => {});
    child.stdin.end(o.input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.killAfterMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
