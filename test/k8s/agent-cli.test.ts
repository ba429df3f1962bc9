/**
 * `mayfly-agent run -config agent.conf` as a real process (from dist/, built by
 * test/build.global-setup.ts) with `NodeAttestor "k8s_psat"`: it attests with the projected
 * token file its config names, and when the server evicts it (admin DeleteAgent) it attests
 * again by itself, with the token the "kubelet" rotated meanwhile, instead of exiting as a
 * join-token agent must. The server runs in this process (ServerRunner, k8s_psat enabled by
 * its config) against the loopback TLS "API server" of ./fake-cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServerClient } from '../../src/attestors/node/k8s_psat/apiserver.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig } from '../../src/server/config.js';
import { parseConfigText } from '../../src/config/hcl.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { FakeApiServer, TokenIssuer } from './fake-cluster.js';
import { agentPod, node, NODE_UID } from './fixtures.js';
import { makeTestPki } from './pki.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mayfly-agent.js');
const AGENT_ID = `spiffe://example.org/spire/agent/k8s_psat/demo-cluster/${NODE_UID}`;

interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

describe('mayfly-agent run with k8s_psat (real process)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-k8s-cli-'));
  const pki = makeTestPki();
  const saToken = 'server-sa-token';
  const saTokenPath = join(root, 'sa-token');
  const projectedPath = join(root, 'tokens', 'mayfly-agent');
  let issuer: TokenIssuer;
  let apiServer: FakeApiServer;
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let child: ChildProcess | undefined;
  let exited: Promise<number | null>;
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();

  /** Resolves once `count` log lines satisfy `pred` (the agent's JSON logs on stderr). */
  const logged = (pred: (l: LogLine) => boolean, count = 1, timeoutMs = 30_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (logs.filter(pred).length >= count) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`log line not seen; agent logs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  beforeAll(async () => {
    writeFileSync(saTokenPath, saToken);
    issuer = await TokenIssuer.create();
    apiServer = await new FakeApiServer(pki, issuer, saToken).start();
    apiServer.addPod(agentPod());
    apiServer.addNode(node());
    mkdirSync(dirname(projectedPath));
    writeFileSync(projectedPath, await issuer.projected({ audience: ['mayfly-server'], pod: agentPod(), node: node(), now: new Date() }));

    const settings = resolveServerConfig(
      parseConfigText(`server { trust_domain = "example.org" }
plugins {
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "k8s_psat" {
    plugin_data { clusters = { "demo-cluster" = { service_account_allow_list = ["mayfly:mayfly-agent"] } } }
  }
}`),
      { dataDir: join(root, 'server'), socketPath: join(root, 'admin.sock'), bindAddress: '127.0.0.1', bindPort: 0 },
    );
    settings.metrics.enabled = false;
    runner = new ServerRunner({
      settings,
      logger: createServerLogger('error'),
      drainMs: 200,
      kubernetesApi: () => new ApiServerClient({ server: `https://127.0.0.1:${apiServer.port}`, caPem: pki.caPem, tokenPath: saTokenPath }),
    });
    await runner.start();
    admin = adminSocketClients(join(root, 'admin.sock'));

    const conf = join(root, 'agent.conf');
    writeFileSync(
      conf,
      `agent {
  data_dir = "${join(root, 'agent')}"
  server_address = "127.0.0.1"
  server_port = "${runner.server!.port}"
  socket_path = "${join(root, 'wl', 'api.sock')}"
  trust_domain = "example.org"
  insecure_bootstrap = true
  log_level = "INFO"
}
plugins {
  NodeAttestor "k8s_psat" {
    plugin_data {
      cluster = "demo-cluster"
      token_path = "${projectedPath}"
    }
  }
  WorkloadAttestor "unix" { plugin_data {} }
}
`,
    );
    child = spawn(process.execPath, [BIN, 'run', '-config', conf], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    exited = new Promise((res) => child!.on('exit', (code) => res(code)));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ msg: `(not JSON) ${line}` });
      }
      for (const w of [...waiters]) w();
    });
  }, 60_000);

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    admin?.close();
    await runner?.stop();
    await apiServer?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  }, 60_000);

  it('attests with its projected token, re-attests after eviction with the rotated token, and drains on SIGTERM', async () => {
    await logged((l) => l.msg === 'node attested' && l.attestationType === 'k8s_psat');
    await logged((l) => l.msg === 'agent started');
    const first = await unaryCall<{ x509svid_serial_number: string; attestation_type: string; can_reattest: boolean }>(admin.Agent, 'GetAgent', { id: AGENT_ID });
    expect(first.attestation_type).toBe('k8s_psat');
    expect(first.can_reattest).toBe(true);
    await logged((l) => l.msg === 'authorised-entry stream open');

    // The kubelet rotates the projected token; then an operator evicts the agent.
    const reviews = (): number => apiServer.calls.filter((c) => c.includes('tokenreviews')).length;
    const reviewsBefore = reviews();
    writeFileSync(projectedPath, await issuer.projected({ audience: ['mayfly-server'], pod: agentPod(), node: node(), now: new Date(), ttlSeconds: 7200 }));
    await unaryCall(admin.Agent, 'DeleteAgent', { id: AGENT_ID });

    await logged((l) => l.msg === 'node attested' && l.attestationType === 'k8s_psat', 2);
    expect(logs.some((l) => l.msg === 'the server no longer accepts this agent (evicted?); attesting again')).toBe(true);
    expect(reviews()).toBeGreaterThan(reviewsBefore);
    const again = await unaryCall<{ x509svid_serial_number: string; attestation_type: string }>(admin.Agent, 'GetAgent', { id: AGENT_ID });
    expect(again.attestation_type).toBe('k8s_psat');
    expect(again.x509svid_serial_number).not.toBe(first.x509svid_serial_number);
    // The stream is open again with the new SVID; the process is still running.
    await logged((l) => l.msg === 'authorised-entry stream open', 2);
    expect(child!.exitCode).toBeNull();

    child!.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 60_000);
});
