/**
 * SPIRE's own agent (`spire-agent` v1.13.3) with its `x509pop` node attestor against
 * Mayfly's server (issue 14, item 4): one agent with an RSA node key, one with an ECDSA
 * P-256 key, each provisioned with a certificate under an intermediate of a node CA that
 * Mayfly's server trusts (`ca_bundle_path`). Each attests over SPIRE's AttestAgent stream,
 * answering Mayfly's challenge with Go's crypto (RSA-PSS, ECDSA), gets SPIRE's agent ID
 * (`/spire/agent/x509pop/<SHA-1 of the leaf>`) and selectors, and serves a workload an
 * X509-SVID that our verifier and go-spiffe (behind the spire-agent) accept. A spire-agent whose certificate comes from another
 * CA is refused (PermissionDenied): it exits, and Mayfly's server records no agent for it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeNodePki, writeNodeFiles, type NodePki } from '../../../src/attestors/node/x509pop/testing.js';
import { parseConfigText } from '../../../src/config/hcl.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../../src/server/client.js';
import { resolveServerConfig } from '../../../src/server/config.js';
import { createServerLogger } from '../../../src/server/observability.js';
import { ServerRunner } from '../../../src/server/runner.js';
import { TrustDomain } from '../../../src/spiffe/id.js';
import { pemEncodeCertificates, splitDerCertificates } from '../../../src/spiffe/x509/pem.js';
import { verifyX509Svid } from '../../../src/spiffe/x509/verify.js';
import { runGoWorkload } from '../go-workload/client.js';
import { runProcess } from '../harness.js';
import { spireBinary } from './bin.js';
import { spireAgentCli, startSpireAgent, waitFor, type SpireAgent } from './peers.js';

const TD = 'x509pop.mayfly.test';
const sha1 = (der: Uint8Array): string => createHash('sha1').update(der).digest('hex');

let dir: string;
let runner: ServerRunner;
let admin: ServerApiClients;
let roots: Buffer[];
const agents: SpireAgent[] = [];
const pkis: Record<'rsa' | 'ec', NodePki> = { rsa: makeNodePki({ keyType: 'rsa-2048', name: 'DC RSA' }), ec: makeNodePki({ keyType: 'ec-p256', name: 'DC EC' }) };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-x509pop-interop-'));
  const bundlePath = join(dir, 'node-ca.pem');
  writeFileSync(bundlePath, pemEncodeCertificates([pkis.rsa.root.certificate, pkis.ec.root.certificate]));
  const settings = resolveServerConfig(
    parseConfigText(`server { trust_domain = "${TD}" }
plugins {
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "x509pop" { plugin_data { ca_bundle_path = "${bundlePath}" } }
}`),
    { dataDir: join(dir, 'server'), socketPath: join(dir, 'admin.sock'), bindAddress: '127.0.0.1', bindPort: 0 },
  );
  settings.metrics.enabled = false;
  runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200 });
  await runner.start();
  admin = adminSocketClients(join(dir, 'admin.sock'));
  roots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  admin?.close();
  await runner?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

const x509popBlock = (files: { key: string; cert: string; intermediates: string }): string =>
  `NodeAttestor "x509pop" { plugin_data {
    private_key_path = "${files.key}"
    certificate_path = "${files.cert}"
    intermediates_path = "${files.intermediates}"
  } }`;

describe('spire-agent v1.13.3 x509pop against mayfly-server', () => {
  for (const kind of ['rsa', 'ec'] as const) {
    it(`attests with a${kind === 'rsa' ? 'n RSA' : 'n ECDSA'} node key and serves a workload an SVID`, async () => {
      const pki = pkis[kind];
      const node = pki.node({ commonName: `node-${kind}.dc1`, uris: [`x509pop://${TD}/zone/${kind}-zone`] });
      const files = writeNodeFiles(dir, pki, node, `node-${kind}`);
      const agent = await startSpireAgent({ dir, name: `spire-agent-${kind}`, trustDomain: TD, serverPort: runner.server!.port, trustBundlePem: pemEncodeCertificates(roots), nodeAttestor: x509popBlock(files) });
      agents.push(agent);

      const agentId = `spiffe://${TD}/spire/agent/x509pop/${sha1(node.certificate)}`;
      const rec = await unaryCall<{ attestation_type: string; selectors: { type: string; value: string }[]; can_reattest: boolean }>(admin.Agent, 'GetAgent', { id: agentId });
      expect(rec.attestation_type).toBe('x509pop');
      expect(rec.can_reattest).toBe(true);
      expect(rec.selectors.map((s) => `${s.type}:${s.value}`)).toEqual(
        expect.arrayContaining([`x509pop:subject:cn:node-${kind}.dc1`, `x509pop:ca:fingerprint:${sha1(pki.intermediate.certificate)}`, `x509pop:ca:fingerprint:${sha1(pki.root.certificate)}`, `x509pop:san:zone:${kind}-zone`]),
      );

      // A workload entry under this agent (the unix uid of this process), fetched through spire-agent.
      const spiffeId = `spiffe://${TD}/workload/behind-x509pop-${kind}`;
      const uid = process.getuid?.() ?? 0;
      const created = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: spiffeId, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
      });
      expect(created.results[0]?.status.code).toBe(0);
      let svid: Buffer[] = [];
      await waitFor(`${spiffeId} from spire-agent`, async () => {
        const r = await spireAgentCli(['api', 'fetch', 'x509', '-socketPath', agent.socketPath, '-output', 'json', '-timeout', '5s']);
        if (r.code !== 0) return false;
        const doc = JSON.parse(r.stdout) as { svids?: { spiffe_id: string; x509_svid: string }[] };
        const mine = doc.svids?.find((s) => s.spiffe_id === spiffeId);
        if (mine === undefined) return false;
        svid = splitDerCertificates(Buffer.from(mine.x509_svid, 'base64'));
        return true;
      }, agent.logs);
      const verified = verifyX509Svid(svid, { trustDomain: TrustDomain.parse(TD), x509Authorities: roots });
      expect(verified.spiffeId.toString()).toBe(spiffeId);
      // go-spiffe behind the same spire-agent: it gets the SVID and its x509svid.Verify accepts it.
      const go = await runGoWorkload(['x509'], { endpoint: `unix://${agent.socketPath}` });
      expect(go.code, go.stderr).toBe(0);
      expect(go.json[0]).toMatchObject({ spiffeId, trustDomain: TD, keyMatches: true });
    }, 120_000);
  }

  it('a spire-agent whose certificate another CA issued is refused: it exits naming the failed verification, no agent is recorded', async () => {
    const stranger = makeNodePki({ name: 'Stranger' });
    const files = writeNodeFiles(dir, stranger, stranger.node({ commonName: 'intruder' }), 'stranger');
    const before = (await unaryCall<{ agents: { id: string }[] }>(admin.Agent, 'ListAgents', {})).agents.length;
    const base = join(dir, 'spire-agent-stranger');
    mkdirSync(join(base, 'data'), { recursive: true });
    writeFileSync(join(base, 'bootstrap.pem'), pemEncodeCertificates(roots));
    writeFileSync(
      join(base, 'agent.conf'),
      `agent {
  data_dir = "${join(base, 'data')}"
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "${runner.server!.port}"
  socket_path = "${join(base, 'api.sock')}"
  trust_bundle_path = "${join(base, 'bootstrap.pem')}"
  trust_domain = "${TD}"
}
plugins {
  ${x509popBlock(files)}
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`,
    );
    // spire-agent gives up on a refused first attestation and exits non-zero.
    const r = await runProcess(spireBinary('spire-agent'), ['run', '-config', join(base, 'agent.conf')], { killAfterMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/PermissionDenied[\s\S]*certificate verification failed/);
    expect((await unaryCall<{ agents: { id: string }[] }>(admin.Agent, 'ListAgents', {})).agents.length).toBe(before);
  }, 120_000);
});
