/**
 * @module bench/federation
 *
 * `npm run bench -- federation` (issue 9): a peer's CA rotation → the new root in the
 * federated bundle on a workload's open Workload API stream. Two whole servers (ServerRunner,
 * bundle endpoints with https_spiffe) and west's agent run in this process; east prepares a
 * new X.509 authority, west's poll fetches east's bundle endpoint, stores it, pushes it to its
 * agent, and the agent pushes it on the workload's FetchX509SVID stream. Timed from the
 * prepare call to the stream message, p50/p99 over the rounds, against the goal of the poll
 * interval + 250 ms (the poll interval is set to 1 s here: the fetcher's floor).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MayflyAgent } from '../src/agent/agent.js';
import { parseHcl } from '../src/config/hcl.js';
import { WorkloadApiClient } from '../src/sdk/client.js';
import type { X509Context } from '../src/sdk/model.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../src/server/client.js';
import { resolveServerConfig } from '../src/server/config.js';
import { createServerLogger } from '../src/server/observability.js';
import { ServerRunner } from '../src/server/runner.js';
import { parseCertificate } from '../src/spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../src/spiffe/x509/pem.js';
import type { ServerBenchLine } from './server.js';

interface WireBundle {
  x509_authorities: Buffer[];
}

const POLL_SECONDS = 1;

async function server(dir: string, td: string): Promise<{ runner: ServerRunner; admin: ServerApiClients }> {
  const settings = resolveServerConfig(
    parseHcl(`
      server {
        trust_domain = "${td}"
        data_dir = "${join(dir, td)}"
        socket_path = "${join(dir, `${td}.sock`)}"
        bind_port = "0"
        federation { bundle_endpoint { address = "127.0.0.1" port = 0 refresh_hint = "${POLL_SECONDS}s" } }
      }
      audit { enabled = false }
      plugins { KeyManager "memory" { plugin_data {} } }`),
    {},
  );
  settings.metrics.enabled = false;
  const runner = new ServerRunner({ settings, logger: createServerLogger('error'), federationFetcher: { minIntervalSeconds: POLL_SECONDS, backoffInitialSeconds: 1 } });
  await runner.start();
  return { runner, admin: adminSocketClients(settings.socketPath) };
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

export async function benchFederation(rounds = 12): Promise<ServerBenchLine[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-federation-'));
  const east = await server(dir, 'east.bench');
  const west = await server(dir, 'west.bench');
  let agent: MayflyAgent | undefined;
  let client: WorkloadApiClient | undefined;
  let cancel: (() => void) | undefined;
  try {
    const eastBundle = await unaryCall<WireBundle>(east.admin.Bundle, 'GetBundle', {});
    const created = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(west.admin.TrustDomain, 'BatchCreateFederationRelationship', {
      federation_relationships: [
        {
          trust_domain: 'east.bench',
          bundle_endpoint_url: `https://127.0.0.1:${east.runner.publisherPorts.bundleEndpoint}`,
          https_spiffe: { endpoint_spiffe_id: 'spiffe://east.bench/spire/server' },
          trust_domain_bundle: { trust_domain: 'east.bench', ...eastBundle },
        },
      ],
    });
    if (created.results[0]?.status.code !== 0) throw new Error(`federation create failed: ${created.results[0]?.status.message}`);

    const token = await unaryCall<{ value: string }>(west.admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const own = await unaryCall<WireBundle>(west.admin.Bundle, 'GetBundle', {});
    writeFileSync(join(dir, 'west-bundle.pem'), pemEncodeCertificates(own.x509_authorities));
    const socketPath = join(dir, 'public', 'api.sock');
    agent = new MayflyAgent({ serverAddress: `127.0.0.1:${west.runner.server!.port}`, trustDomain: 'west.bench', dataDir: join(dir, 'agent'), socketPath, joinToken: token.value, trustBundlePath: join(dir, 'west-bundle.pem') });
    await agent.start();
    await agent.whenReady(30_000);
    await unaryCall(west.admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: 'spiffe://west.bench/w', parent_id: agent.agentSvid!.spiffeId.toString(), selectors: [{ type: 'unix', value: `uid:${process.getuid?.() ?? 0}` }], federates_with: ['east.bench'] }],
    });

    // The workload's open stream: every message's east roots, by Subject Key Identifier.
    let latest = new Set<string>();
    let wake: (() => void) | undefined;
    client = new WorkloadApiClient({ socketPath });
    cancel = client.watchX509Context((ctx: X509Context) => {
      const b = ctx.bundles.get('east.bench');
      latest = new Set((b?.x509Authorities ?? []).map((der) => parseCertificate(der).subjectKeyId?.toString('hex') ?? ''));
      wake?.();
    });
    const waitFor = async (ski: string): Promise<void> => {
      const deadline = performance.now() + 60_000;
      while (!latest.has(ski)) {
        if (performance.now() > deadline) throw new Error(`the workload never received east's authority ${ski}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 20);
        });
      }
    };
    await waitFor(parseCertificate(eastBundle.x509_authorities[0]!).subjectKeyId!.toString('hex'));

    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const prepared = await unaryCall<{ authority: { authority_id: string } }>(east.admin.LocalAuthority, 'PrepareX509Authority', {});
      await waitFor(prepared.authority.authority_id);
      samples.push(performance.now() - t0);
      await unaryCall(east.admin.LocalAuthority, 'ActivateX509Authority', { authority_id: prepared.authority.authority_id });
    }
    samples.sort((a, b) => a - b);
    const goal = POLL_SECONDS * 1000 + 250;
    const p99 = percentile(samples, 99);
    return [
      {
        name: `peer CA rotation → federated bundle on an open workload stream (${rounds} prepares of east's X.509 authority; west polls every ${POLL_SECONDS} s)`,
        text: `p50 ${percentile(samples, 50).toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (ratio ${(p99 / goal).toFixed(2)} of the goal: poll interval + 250 ms = ${goal} ms)`,
      },
    ];
  } finally {
    cancel?.();
    client?.close();
    await agent?.stop();
    east.admin.close();
    west.admin.close();
    await west.runner.stop();
    await east.runner.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
