/**
 * "Adding a node attestor touches one folder and one registration line", shown with a
 * test-only `NodeAttestor "test_static"` (a shared secret names the node). Its "folder" is
 * the block below: the attestor, and one registration for each binary. One line adds each
 * registration to a copy of its catalog; then, with nothing else changed, a server config
 * naming it is read from HCL, a real server (ServerRunner, as `mayfly-server run`) builds
 * and runs it, and a real agent configured from HCL attests with it. The conformance gate
 * holds for it too: without a fixture the catalog check names it; with one it passes the
 * node attestor suite.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../agent/agent.js';
import { AGENT_CATALOG, buildAgentPlugins } from '../agent/catalog.js';
import { resolveAgentConfig } from '../agent/config.js';
import type { NodeAttestationContext, NodeAttestationResult, NodeAttestor } from '../attestors/node/attestor.js';
import { runNodeAttestorConformance, type NodeAttestorFixture } from '../attestors/node/conformance.js';
import { checkKeys, str } from '../config/accessors.js';
import { parseHcl, type HclObject } from '../config/hcl.js';
import { definePlugin, parsedConfig } from '../config/plugins.js';
import { Problems } from '../config/problems.js';
import { catalogFixtureProblems, configureFromHcl, discoverPluginFixtures } from '../config/testing.js';
import { MayflyError } from '../spiffe/errors.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { SERVER_CATALOG, SERVER_PLUGIN_KINDS } from './catalog.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from './client.js';
import { resolveServerConfig } from './config.js';
import { createServerLogger } from './observability.js';
import { ServerRunner } from './runner.js';

// ---- the plugin's folder: src/attestors/node/test_static/ ----------------------------

interface StaticConfig {
  secret: string;
  node: string;
}

/** Accepts the configured secret as evidence that the agent runs on `node`. */
class StaticAttestor implements NodeAttestor {
  readonly type = 'test_static';
  readonly #cfg: StaticConfig;
  constructor(cfg: StaticConfig) {
    this.#cfg = cfg;
  }
  async attest(payload: Uint8Array, ctx: NodeAttestationContext): Promise<NodeAttestationResult> {
    if (Buffer.from(payload).toString('utf8') !== this.#cfg.secret) throw new MayflyError('ERR_ATTESTATION_FAILED', 'test_static: wrong secret');
    return { agentId: ctx.trustDomain.idWithPath(`/spire/agent/test_static/${this.#cfg.node}`), selectors: [{ type: 'test_static', value: `node:${this.#cfg.node}` }], canReattest: true };
  }
}

/** A required non-empty string of plugin_data. */
function required(data: HclObject, key: string, where: string, p: Problems): string | undefined {
  const v = str(data, key, where, p, { nonEmpty: true });
  if (v === undefined && data[key] === undefined) p.add(`${where}.${key} is required`);
  return v;
}

/** server-plugin.ts */
const testStaticServerPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: 'test_static',
  parseConfig: (data, where) => {
    const p = new Problems();
    checkKeys(data, ['secret', 'node'], where, p);
    const secret = required(data, 'secret', where, p);
    const node = required(data, 'node', where, p);
    return parsedConfig<StaticConfig>(p, secret !== undefined && node !== undefined ? { secret, node } : undefined);
  },
  build: (config) => new StaticAttestor(config),
});

/** agent-plugin.ts */
const testStaticAgentPlugin = definePlugin({
  kind: 'NodeAttestor',
  name: 'test_static',
  parseConfig: (data, where) => {
    const p = new Problems();
    checkKeys(data, ['secret'], where, p);
    return parsedConfig(p, required(data, 'secret', where, p));
  },
  build: (secret) => ({ attestationData: async () => ({ type: 'test_static', payload: Buffer.from(secret, 'utf8') }) }),
});

// ---- the registration lines (server/catalog.ts, agent/catalog.ts) -----------------------

const serverCatalog = [...SERVER_CATALOG, testStaticServerPlugin];
const agentCatalog = [...AGENT_CATALOG, testStaticAgentPlugin];

// ---------------------------------------------------------------------------------------

const SECRET = 'open-sesame-4711';

describe('a node attestor added in one folder and one registration line', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-test-static-'));
  const serverConf = `
    server { trust_domain = "example.org" }
    plugins {
      KeyManager "memory" { plugin_data {} }
      NodeAttestor "join_token" { enabled = false }
      NodeAttestor "test_static" { plugin_data { secret = "${SECRET}" node = "node-7" } }
    }`;
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let agent: MayflyAgent | undefined;

  beforeAll(async () => {
    const settings = resolveServerConfig(parseHcl(serverConf), { dataDir: join(root, 'server'), socketPath: join(root, 'admin.sock'), bindPort: 0 }, { catalog: serverCatalog });
    settings.metrics.enabled = false;
    runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200 });
    await runner.start();
    admin = adminSocketClients(join(root, 'admin.sock'));
  });
  afterAll(async () => {
    await agent?.stop();
    admin?.close();
    await runner?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('is unknown to the built-in catalog, with the known names listed', () => {
    expect(() => resolveServerConfig(parseHcl(serverConf))).toThrow('plugins.NodeAttestor: only "join_token", "k8s_psat" and "x509pop" are supported; got "test_static"');
  });

  it('is read from HCL through the catalog and run by the server in place of join_token', () => {
    expect(runner.server).toBeDefined();
    expect(resolveServerConfig(parseHcl(serverConf), {}, { catalog: serverCatalog }).nodeAttestors).toEqual(['test_static']);
  });

  it('attests a real agent configured from HCL, which then gets its entries', async () => {
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    writeFileSync(join(root, 'bundle.pem'), pemEncodeCertificates(bundle.x509_authorities));
    const s = resolveAgentConfig(
      parseHcl(`agent {
  trust_domain = "example.org"
  data_dir = "${join(root, 'agent')}"
  socket_path = "${join(root, 'wl', 'api.sock')}"
  server_port = "${runner.server?.port}"
  trust_bundle_path = "${join(root, 'bundle.pem')}"
}
plugins {
  NodeAttestor "test_static" { plugin_data { secret = "${SECRET}" } }
  WorkloadAttestor "unix" { plugin_data {} }
}`),
      {},
      { catalog: agentCatalog },
    );
    expect(s.nodeAttestor).toBe('test_static');
    const plugins = buildAgentPlugins(s.plugins, {});
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${s.serverPort}`,
      trustDomain: s.trustDomain,
      dataDir: s.dataDir,
      socketPath: s.socketPath,
      trustBundlePath: s.trustBundlePath,
      ...(plugins.nodeAttestor !== undefined ? { nodeAttestor: plugins.nodeAttestor } : {}),
      workloadAttestors: plugins.workloadAttestors,
    });
    await agent.start();
    await agent.whenReady(20_000);
    expect(agent.agentSvid?.spiffeId).toBe('spiffe://example.org/spire/agent/test_static/node-7');
    const listed = await unaryCall<{ agents: { id: { path: string }; selectors: { type: string; value: string }[] }[] }>(admin.Agent, 'ListAgents', {});
    expect(listed.agents.map((a) => a.selectors)).toEqual([[{ type: 'test_static', value: 'node:node-7' }]]);
  });

  it('is held to the conformance gate: without a fixture the catalog check names it', async () => {
    expect(catalogFixtureProblems(serverCatalog, 'server', await discoverPluginFixtures())).toEqual([
      'NodeAttestor "test_static" has no conformance fixture: export pluginFixtures from a testing.ts in its folder',
    ]);
  });
});

// With a fixture, it runs its kind's suite like every built-in node attestor.
const fixture: NodeAttestorFixture = {
  binary: 'server',
  kind: 'NodeAttestor',
  name: 'test_static',
  pluginData: () => `secret = "${SECRET}"\nnode = "node-7"`,
  deps: () => ({}),
  evidence: async () => Buffer.from(SECRET),
  selectors: () => ['test_static:node:node-7'],
  canReattest: true,
  refused: { 'another secret': async () => Buffer.from('not-the-secret') },
};
runNodeAttestorConformance('NodeAttestor "test_static"', fixture, () => {
  const c = configureFromHcl(serverCatalog, SERVER_PLUGIN_KINDS, 'NodeAttestor', 'test_static', fixture.pluginData());
  return c.build({ joinTokens: { consumeJoinToken: async () => undefined } });
});
