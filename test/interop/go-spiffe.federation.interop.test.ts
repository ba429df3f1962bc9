/**
 * go-spiffe across two federated Mayfly trust domains, `east` and `west`, each a whole
 * server (ServerRunner: the composition `mayfly-server run` uses, with its bundle endpoint,
 * `https_spiffe` profile) and its own agent. Each server has a federation relationship with
 * the other's bundle endpoint (bootstrapped with the other's bundle, as `federation create
 * -trustDomainBundlePath` does) and fetches it by its own poll. A go-spiffe server in east and a
 * go-spiffe client in west complete mTLS with `tlsconfig.AuthorizeMemberOf` of the other trust
 * domain, trusting it only through the federated bundle their agents deliver.
 *
 * Then east rotates its X.509 CA (prepare → activate → taint): west's poll follows the
 * rotation (authenticating east's endpoint against the bundle it stored before), and new
 * connections still work with east's new SVIDs. The verdicts are go-spiffe's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../../src/agent/agent.js';
import { parseHcl } from '../../src/config/hcl.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig } from '../../src/server/config.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { parseCertificate } from '../../src/spiffe/x509/parse.js';
import { validateJwtSvid } from '../../src/spiffe/jwt/validate.js';
import { WorkloadApiClient } from '../../src/sdk/client.js';
import { JwtSource, X509Source } from '../../src/sdk/sources.js';
import { authorizeMemberOf, createClientTlsOptions, createSpiffeHttpsServer, peerSpiffeId } from '../../src/sdk/tls.js';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';
import { buildGoWorkload, GoWorkloadServer, runGoWorkload, type RunResult } from './go-workload/client.js';

const EAST = 'east.mayfly.test';
const WEST = 'west.mayfly.test';
const uid = process.getuid?.() ?? 0;

interface WireBundle {
  trust_domain: string;
  x509_authorities: Buffer[];
  jwt_authorities: unknown[];
  refresh_hint: number;
  sequence_number: number;
}

interface Side {
  td: string;
  runner: ServerRunner;
  admin: ServerApiClients;
  agent: MayflyAgent;
  endpoint: string;
  bundlePort: number;
}

const dir = mkdtempSync(join(tmpdir(), 'mayfly-federation-'));
const sides: Side[] = [];

function ok(r: RunResult): Record<string, unknown> {
  expect(r.stderr, `goworkload failed (exit ${r.code})`).toBe('');
  expect(r.code).toBe(0);
  return r.json.at(-1) as Record<string, unknown>;
}

async function until(what: string, pred: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startSide(td: string): Promise<Side> {
  const settings = resolveServerConfig(
    parseHcl(`
      server {
        trust_domain = "${td}"
        data_dir = "${join(dir, td, 'server')}"
        socket_path = "${join(dir, td, 'admin.sock')}"
        bind_port = "0"
        federation {
          bundle_endpoint {
            address = "127.0.0.1"
            port = 0
            refresh_hint = "1s"
            profile "https_spiffe" {}
          }
        }
      }
      plugins { KeyManager "memory" { plugin_data {} } }`),
    {},
  );
  settings.metrics.enabled = false;
  // Poll peers every second (the fetcher's floor is 10 s by default).
  const runner = new ServerRunner({ settings, logger: createServerLogger('error'), federationFetcher: { minIntervalSeconds: 1, backoffInitialSeconds: 1 } });
  await runner.start();
  const admin = adminSocketClients(settings.socketPath);
  const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
  const own = await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
  const bundlePath = join(dir, td, 'bundle.pem');
  writeFileSync(bundlePath, pemEncodeCertificates(own.x509_authorities));
  const socketPath = join(dir, td, 'public', 'api.sock');
  const agent = new MayflyAgent({
    serverAddress: `127.0.0.1:${runner.server!.port}`,
    trustDomain: td,
    dataDir: join(dir, td, 'agent'),
    socketPath,
    joinToken: token.value,
    trustBundlePath: bundlePath,
  });
  await agent.start();
  await agent.whenReady(30_000);
  return { td, runner, admin, agent, endpoint: `unix://${socketPath}`, bundlePort: runner.publisherPorts.bundleEndpoint! };
}

/** `from` federates with `to`: a relationship to `to`'s bundle endpoint, bootstrapped with `to`'s bundle. */
async function federate(from: Side, to: Side): Promise<void> {
  const bootstrap = await unaryCall<WireBundle>(to.admin.Bundle, 'GetBundle', {});
  const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(from.admin.TrustDomain, 'BatchCreateFederationRelationship', {
    federation_relationships: [
      {
        trust_domain: to.td,
        bundle_endpoint_url: `https://127.0.0.1:${to.bundlePort}`,
        https_spiffe: { endpoint_spiffe_id: `spiffe://${to.td}/spire/server` },
        trust_domain_bundle: bootstrap,
      },
    ],
  });
  expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
}

const roots = (b: WireBundle): string[] => b.x509_authorities.map((c) => Buffer.from(c).toString('base64')).sort();

/** Waits until `at` stores exactly the X.509 authorities `of` serves (fetched by `at`'s own poll). */
async function followed(at: Side, of: Side): Promise<void> {
  await until(`${at.td} to hold ${of.td}'s current bundle`, async () => {
    const served = await unaryCall<WireBundle>(of.admin.Bundle, 'GetBundle', {});
    const stored = await unaryCall<WireBundle>(at.admin.Bundle, 'GetFederatedBundle', { trust_domain: of.td }).catch(() => undefined);
    return stored !== undefined && JSON.stringify(roots(stored)) === JSON.stringify(roots(served));
  });
}

async function entry(side: Side, path: string, federatesWith: string): Promise<string> {
  const agentId = side.agent.agentSvid!.spiffeId.toString();
  const spiffeId = `spiffe://${side.td}${path}`;
  const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(side.admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: spiffeId, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }], federates_with: [federatesWith] }],
  });
  expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
  await until(`${side.td}'s agent to serve ${spiffeId}`, async () => side.agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.some((i) => i.spiffeId === spiffeId) ?? false);
  return spiffeId;
}

describe('go-spiffe mTLS across two Mayfly trust domains federated both ways (https_spiffe)', () => {
  let east: Side;
  let west: Side;
  let serverId = '';
  let clientId = '';

  beforeAll(async () => {
    await buildGoWorkload();
    east = await startSide(EAST);
    sides.push(east);
    west = await startSide(WEST);
    sides.push(west);
    await federate(east, west);
    await federate(west, east);
    await followed(east, west);
    await followed(west, east);
    serverId = await entry(east, '/go/server', WEST);
    clientId = await entry(west, '/go/client', EAST);
  }, 240_000);

  afterAll(async () => {
    for (const s of sides) {
      await s.agent.stop();
      s.admin.close();
      await s.runner.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function roundTrip(message: string): Promise<Record<string, unknown>> {
    const server = await GoWorkloadServer.start(['-listen', '127.0.0.1:0', '-memberOf', WEST], { endpoint: east.endpoint });
    try {
      const listening = await server.waitFor((e) => e.event === 'listening', 'the server to listen');
      expect(listening.spiffeId).toBe(serverId);
      return ok(await runGoWorkload(['client', '-connect', listening.addr as string, '-memberOf', EAST, '-message', message], { endpoint: west.endpoint }));
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }

  it('the client in west reaches the server in east, each authorising the other trust domain', async () => {
    expect(await roundTrip('hello east')).toMatchObject({ spiffeId: clientId, serverId, reply: `${serverId} heard from ${clientId}: hello east` });

    // A client that wants a server of its own trust domain refuses east's SVID.
    const server = await GoWorkloadServer.start(['-listen', '127.0.0.1:0', '-memberOf', WEST], { endpoint: east.endpoint });
    try {
      const listening = await server.waitFor((e) => e.event === 'listening', 'the server to listen');
      const wrong = await runGoWorkload(['client', '-connect', listening.addr as string, '-memberOf', WEST, '-message', 'x'], { endpoint: west.endpoint });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/not a member of trust domain|unexpected trust domain/);
    } finally {
      await server.stop();
    }
  });

  it('the Node SDK across the two trust domains: https with authorizeMemberOf, and a JWT-SVID of east validated in west', async () => {
    const eastSrc = await X509Source.create({ address: east.endpoint, timeoutMs: 30_000 });
    const westSrc = await X509Source.create({ address: west.endpoint, timeoutMs: 30_000 });
    const server = createSpiffeHttpsServer(eastSrc, { authorize: authorizeMemberOf(WEST) }, (req, res) => res.end(`hi ${peerSpiffeId(req.socket as TLSSocket).toString()}`));
    try {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const get = (authorize: ReturnType<typeof authorizeMemberOf>): Promise<string> =>
        new Promise((resolve, reject) => {
          const agent = new https.Agent({ ...createClientTlsOptions(westSrc, { authorize }), keepAlive: false });
          https.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/', agent }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          }).on('error', reject);
        });
      expect(await get(authorizeMemberOf(EAST))).toBe(`hi ${clientId}`);
      await expect(get(authorizeMemberOf(WEST))).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' });
    } finally {
      await new Promise((r) => server.close(r));
      eastSrc.close();
      westSrc.close();
    }

    // A JWT-SVID minted in east, validated in west: by west's agent (ValidateJWTSVID) and locally
    // with the federated JWT bundle west's agent delivers (FetchJWTBundles).
    const eastJwt = await JwtSource.create({ address: east.endpoint, timeoutMs: 30_000 });
    const westJwt = await JwtSource.create({ address: west.endpoint, timeoutMs: 30_000 });
    const westClient = new WorkloadApiClient({ address: west.endpoint });
    try {
      const svid = await eastJwt.fetchJwtSvid({ audience: 'west-api' });
      expect(svid.spiffeId.toString()).toBe(serverId);
      const byAgent = await westClient.validateJwtSvid({ token: svid.token, audience: 'west-api' });
      expect(byAgent.spiffeId.toString()).toBe(serverId);
      const local = validateJwtSvid(svid.token, { audience: 'west-api', bundles: { get: (td) => westJwt.getBundleForTrustDomain(td) } });
      expect(local.spiffeId.toString()).toBe(serverId);
    } finally {
      westClient.close();
      eastJwt.close();
      westJwt.close();
    }
  });

  it('after east rotates its CA (prepare → activate → taint), new connections still work', async () => {
    const la = east.admin.LocalAuthority;
    const before = await unaryCall<{ active: { authority_id: string } }>(la, 'GetX509AuthorityState', {});
    const prepared = await unaryCall<{ authority: { authority_id: string } }>(la, 'PrepareX509Authority', {});
    await followed(west, east); // west holds the new CA before east signs with it
    await unaryCall(la, 'ActivateX509Authority', { authority_id: prepared.authority.authority_id });
    await unaryCall(la, 'TaintX509Authority', { authority_id: before.active.authority_id });
    await followed(west, east);

    // East's agent re-issues the tainted server SVID from the new CA.
    await until('east to serve an SVID from the new CA', async () => {
      const id = east.agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.find((i) => i.spiffeId === serverId);
      if (id === undefined) return false;
      const leaf = parseCertificate(id.certificates[0] as Buffer);
      return leaf.authorityKeyId?.toString('hex') === prepared.authority.authority_id;
    });
    expect(await roundTrip('after rotation')).toMatchObject({ spiffeId: clientId, serverId, reply: `${serverId} heard from ${clientId}: after rotation` });
  });
});
