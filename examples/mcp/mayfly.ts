/**
 * @module examples/mcp/mayfly
 *
 * The Mayfly side of the example, in one process for the demo and the test: a server
 * configured by the `server.conf` text below (the `delegation` block is the part this
 * example is about), an agent attested with a join token, and registration entries for the
 * example's workloads (the MCP server, two AI agents, an intruder), all selecting the
 * current uid and told apart by hint. In production these are `mayfly-server run -config
 * server.conf` and `mayfly-agent run` processes and `mayfly-server entry create` calls.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { MayflyAgent } from '../../src/agent/agent.js';
import { parseHcl } from '../../src/config/hcl.js';
import { writeFileAtomic } from '../../src/securefs/index.js';
import { adminSocketClients, unaryCall } from '../../src/server/client.js';
import { resolveServerConfig } from '../../src/server/config.js';
import { ServerRunner } from '../../src/server/runner.js';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';
import type { TestIssuer } from './issuer.js';

export interface MayflyForExample {
  readonly trustDomain: string;
  /** `iss` of delegated tokens (server.jwt_issuer; default `spiffe://<td>`). */
  readonly issuer: string;
  /** The token exchange endpoint, `https://127.0.0.1:<port>/token`. */
  readonly tokenEndpoint: string;
  /** The agent's Workload API socket. */
  readonly socketPath: string;
  /** The server's log lines (pino JSON), token exchange decisions among them. */
  readonly serverLog: readonly string[];
  stop(): Promise<void>;
}

export interface MayflyForExampleConfig {
  trustDomain: string;
  upstream: TestIssuer;
  /** server.delegation.rules, as HCL. */
  rulesHcl: string;
  /** Workloads to register: SPIFFE ID path → hint. */
  workloads: Readonly<Record<string, string>>;
  /** Let the agent offer the exchange to local callers (ExchangeForUser on its socket). */
  agentLocalExchange?: boolean;
}

/** The server.conf of the example (the delegation block as an operator writes it). */
export function serverConf(trustDomain: string, jwksFile: string, upstream: TestIssuer, rulesHcl: string): string {
  return `server {
  trust_domain = "${trustDomain}"
  log_level    = "INFO"
  delegation {
    address = "127.0.0.1"
    port    = 0
    max_ttl = "5m"
    upstream {
      issuer     = "${upstream.issuer}"
      audience   = "${upstream.audience}"
      algorithms = ["RS256"]
      jwks_file  = "${jwksFile}"
    }
    rules = [${rulesHcl}]
  }
}
`;
}

interface BatchResult {
  status: { code: number; message: string };
}

export async function startMayflyForExample(cfg: MayflyForExampleConfig): Promise<MayflyForExample> {
  const dir = await mkdtemp(join(tmpdir(), 'mayfly-mcp-example-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rm(dir, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.splice(0)) {
      try {
        await c();
      } catch {
        // best effort: one failing step must not leave the rest behind
      }
    }
  };
  const serverLog: string[] = [];
  const logger: Logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (serverLog.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')), done()) }));
  try {
    const jwksFile = join(dir, 'idp.jwks.json');
    await writeFile(jwksFile, JSON.stringify(await cfg.upstream.jwks()));
    const conf = serverConf(cfg.trustDomain, jwksFile, cfg.upstream, cfg.rulesHcl);
    await writeFile(join(dir, 'server.conf'), conf);
    const settings = resolveServerConfig(parseHcl(conf), { dataDir: join(dir, 'server'), socketPath: join(dir, 'server.sock'), bindPort: 0 });
    settings.metrics.enabled = false;
    const runner = new ServerRunner({ settings, logger });
    await runner.start();
    cleanups.unshift(() => runner.stop());
    const delegationPort = runner.delegationPort;
    if (delegationPort === undefined) throw new Error('the server did not start the token exchange (server.delegation)');

    const node = `spiffe://${cfg.trustDomain}/example/node`;
    const admin = adminSocketClients(settings.socketPath);
    cleanups.unshift(() => admin.close());
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600, agent_id: node });
    const uid = String(process.getuid?.() ?? 0);
    const entries = Object.entries(cfg.workloads).map(([path, hint]) => ({ spiffe_id: `spiffe://${cfg.trustDomain}${path}`, parent_id: node, selectors: [{ type: 'unix', value: `uid:${uid}` }], hint, x509_svid_ttl: 600 }));
    const created = await unaryCall<{ results: BatchResult[] }>(admin.Entry, 'BatchCreateEntry', { entries });
    for (const r of created.results) if (r.status.code !== 0) throw new Error(`entry create failed: ${r.status.message}`);
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    const bundlePath = join(dir, 'bootstrap-bundle.pem');
    writeFileAtomic(bundlePath, pemEncodeCertificates(bundle.x509_authorities), { mode: 0o644 });

    const socketPath = join(dir, 'agent', 'api.sock');
    const agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${runner.server?.port ?? 0}`,
      trustDomain: cfg.trustDomain,
      dataDir: join(dir, 'agent-data'),
      socketPath,
      joinToken: token.value,
      trustBundlePath: bundlePath,
      ...(cfg.agentLocalExchange === true ? { tokenExchange: { endpoint: `https://127.0.0.1:${delegationPort}/token` } } : {}),
    });
    await agent.start();
    cleanups.unshift(() => agent.stop());
    await agent.whenReady(30_000);
    return { trustDomain: cfg.trustDomain, issuer: `spiffe://${cfg.trustDomain}`, tokenEndpoint: `https://127.0.0.1:${delegationPort}/token`, socketPath, serverLog, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
