/**
 * Mayfly's agent attests to Mayfly's server with `NodeAttestor "x509pop"`, both configured
 * from the config files an operator writes (server: ca_bundle_path, agent_path_template;
 * agent: private_key_path, certificate_path, intermediates_path), over SPIRE's
 * Agent.AttestAgent stream: the agent gets its SVID under the template's path, its node
 * selectors match a node-alias entry, a workload entry under that alias reaches its cache,
 * and after an eviction it attests again with the same certificate. Hostile agents are
 * refused with SPIRE's status codes at the API: a certificate of another PKI
 * (PERMISSION_DENIED), a stolen certificate answered with another key (PERMISSION_DENIED),
 * a malformed payload (INVALID_ARGUMENT).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerWith, evidenceOf, makeNodePki, writeNodeFiles } from '../attestors/node/x509pop/testing.js';
import { parseConfigText } from '../config/hcl.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { resolveServerConfig } from '../server/config.js';
import { createServerLogger } from '../server/observability.js';
import { ServerRunner } from '../server/runner.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { MayflyAgent } from './agent.js';
import { buildAgentPlugins } from './catalog.js';
import { resolveAgentConfig } from './config.js';
import { GrpcServerClient } from './grpc-client.js';
import { parseSelector } from '../registration/selector.js';
import { GrpcCode, ServerCallError } from './server-client.js';
import { TrustDomain } from '../spiffe/id.js';

const TD = 'example.org';
const sha1 = (der: Uint8Array): string => createHash('sha1').update(der).digest('hex');

describe('x509pop: Mayfly agent → Mayfly server', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-x509pop-e2e-'));
  const pki = makeNodePki({ keyType: 'rsa-2048', name: 'Datacenter' });
  const node = pki.node({ commonName: 'node-e2e.dc1', uris: [`x509pop://${TD}/rack/r7`] });
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let agent: MayflyAgent | undefined;
  let roots: Buffer[];

  beforeAll(async () => {
    const files = writeNodeFiles(root, pki, node);
    const settings = resolveServerConfig(
      parseConfigText(`server { trust_domain = "${TD}" }
plugins {
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "x509pop" {
    plugin_data {
      ca_bundle_path = "${files.bundle}"
      agent_path_template = "/x509pop/{{ .URISanSelectors.rack }}/{{ .Subject.CommonName }}"
    }
  }
}`),
      { dataDir: join(root, 'server'), socketPath: join(root, 'admin.sock'), bindAddress: '127.0.0.1', bindPort: 0 },
    );
    settings.metrics.enabled = false;
    runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200 });
    await runner.start();
    admin = adminSocketClients(join(root, 'admin.sock'));
    roots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
    writeFileSync(join(root, 'trust-bundle.pem'), pemEncodeCertificates(roots));

    const agentSettings = resolveAgentConfig(
      parseConfigText(`agent { trust_domain = "${TD}" }
plugins {
  NodeAttestor "x509pop" {
    plugin_data {
      private_key_path = "${files.key}"
      certificate_path = "${files.cert}"
      intermediates_path = "${files.intermediates}"
    }
  }
  WorkloadAttestor "unix" { plugin_data {} }
}`),
    );
    const plugins = buildAgentPlugins(agentSettings.plugins, {});
    if (plugins.nodeAttestor === undefined) throw new Error('x509pop built nothing');
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${runner.server!.port}`,
      trustDomain: TD,
      dataDir: join(root, 'agent'),
      socketPath: join(root, 'wl', 'api.sock'),
      trustBundlePath: join(root, 'trust-bundle.pem'),
      nodeAttestor: plugins.nodeAttestor,
      workloadAttestors: plugins.workloadAttestors,
    });
    await agent.start();
    await agent.whenReady(30_000);
  }, 90_000);

  afterAll(async () => {
    await agent?.stop();
    admin?.close();
    await runner?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  const AGENT_ID = `spiffe://${TD}/spire/agent/x509pop/r7/node-e2e.dc1`;

  it('attests under agent_path_template with SPIRE\'s selectors, and serves entries parented to a node alias', async () => {
    expect(agent?.agentSvid?.spiffeId).toBe(AGENT_ID);
    const rec = await unaryCall<{ attestation_type: string; selectors: { type: string; value: string }[]; can_reattest: boolean }>(admin.Agent, 'GetAgent', { id: AGENT_ID });
    expect(rec.attestation_type).toBe('x509pop');
    expect(rec.can_reattest).toBe(true);
    expect(rec.selectors.map((s) => `${s.type}:${s.value}`)).toEqual(
      expect.arrayContaining(['x509pop:subject:cn:node-e2e.dc1', `x509pop:ca:fingerprint:${sha1(pki.root.certificate)}`, `x509pop:ca:fingerprint:${sha1(pki.intermediate.certificate)}`, 'x509pop:san:rack:r7']),
    );

    const alias = `spiffe://${TD}/dc1/racks/r7`;
    await unaryCall(admin.Entry, 'BatchCreateEntry', { entries: [{ spiffe_id: alias, parent_id: `spiffe://${TD}/spire/server`, selectors: [{ type: 'x509pop', value: 'san:rack:r7' }] }] });
    await unaryCall(admin.Entry, 'BatchCreateEntry', { entries: [{ spiffe_id: `spiffe://${TD}/web`, parent_id: alias, selectors: [{ type: 'unix', value: `uid:${process.getuid?.() ?? 0}` }] }] });
    const sel = [parseSelector(`unix:uid:${process.getuid?.() ?? 0}`)];
    const deadline = Date.now() + 30_000;
    while (!(agent?.cache?.updateFor(sel)?.identities.some((i) => i.spiffeId === `spiffe://${TD}/web`) ?? false)) {
      if (Date.now() > deadline) throw new Error('the agent never served spiffe://example.org/web');
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  it('attests again with the same certificate after an eviction', async () => {
    const before = agent?.agentSvid?.serialHex;
    await unaryCall(admin.Agent, 'DeleteAgent', { id: AGENT_ID });
    const deadline = Date.now() + 45_000;
    while (agent?.agentSvid?.serialHex === before || (await unaryCall<{ id: string }>(admin.Agent, 'GetAgent', { id: AGENT_ID }).catch(() => undefined)) === undefined) {
      if (Date.now() > deadline) throw new Error('the agent did not attest again after the eviction');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(agent?.agentSvid?.spiffeId).toBe(AGENT_ID);
  }, 60_000);

  describe('refusals at the API, with SPIRE\'s status codes', () => {
    const attempt = async (payload: Buffer, answer: (c: Buffer) => Promise<Buffer>): Promise<ServerCallError> => {
      const client = new GrpcServerClient({ address: `127.0.0.1:${runner.server!.port}`, trustDomain: TrustDomain.parse(TD), credentials: { mode: 'bootstrap', roots } });
      try {
        await client.attest({ type: 'x509pop', payload, csr: createCsr({ privateKey: generateKeyPair().privateKey }), answerChallenge: answer });
      } catch (err) {
        if (err instanceof ServerCallError) return err;
        throw err;
      } finally {
        client.close();
      }
      throw new Error('attested');
    };

    it('a certificate of another PKI: PERMISSION_DENIED', async () => {
      const other = makeNodePki({ name: 'Elsewhere' });
      const stranger = other.node();
      const err = await attempt(evidenceOf(other, stranger), async (c) => Buffer.from(await answerWith(stranger.key, c)));
      expect(err.grpcCode).toBe(GrpcCode.PERMISSION_DENIED);
      expect(err.message).toMatch(/certificate verification failed/);
    });

    it('a stolen certificate answered with another key: PERMISSION_DENIED', async () => {
      const thief = generateKeyPair('rsa-2048');
      const err = await attempt(evidenceOf(pki, node), async (c) => Buffer.from(await answerWith(thief, c)));
      expect(err.grpcCode).toBe(GrpcCode.PERMISSION_DENIED);
      expect(err.message).toMatch(/challenge response verification failed/);
    });

    it('a malformed payload: INVALID_ARGUMENT', async () => {
      const err = await attempt(Buffer.from('{"certificates": ["not base64!"]}'), async () => Buffer.from('{}'));
      expect(err.grpcCode).toBe(GrpcCode.INVALID_ARGUMENT);
    });
  });
});
