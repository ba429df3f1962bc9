/**
 * go-spiffe across two federated Mayfly trust domains: a go-spiffe server in `east` and a
 * go-spiffe client in `west`, each a workload of its own Mayfly agent, complete mTLS with
 * `tlsconfig.AuthorizeMemberOf` of the other trust domain. Each side trusts the other only
 * through the federated bundle its agent delivers (`federated_bundles` of the entry that
 * `federates_with` the other); the verdicts are go-spiffe's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall } from '../../src/server/client.js';
import { buildGoWorkload, GoWorkloadServer, runGoWorkload, type RunResult } from './go-workload/client.js';
import { startMayfly, type MayflyDeployment } from './harness.js';

const EAST = 'east.mayfly.test';
const WEST = 'west.mayfly.test';

interface WireBundle {
  trust_domain: string;
  x509_authorities: Buffer[];
  jwt_authorities: unknown[];
  refresh_hint: string | number;
  sequence_number: string | number;
}

function ok(r: RunResult): Record<string, unknown> {
  expect(r.stderr, `goworkload failed (exit ${r.code})`).toBe('');
  expect(r.code).toBe(0);
  const last = r.json.at(-1);
  expect(last).toBeDefined();
  return last as Record<string, unknown>;
}

/** Stores `from`'s current bundle in `into` as a federated bundle (what a bundle exchange does). */
async function exchangeBundle(from: MayflyDeployment, into: MayflyDeployment): Promise<void> {
  const a = adminSocketClients(from.server.adminSocketPath);
  const b = adminSocketClients(into.server.adminSocketPath);
  try {
    const bundle = await unaryCall<WireBundle>(a.Bundle, 'GetBundle', {});
    const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(b.Bundle, 'BatchSetFederatedBundle', { bundles: [bundle] });
    expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
  } finally {
    a.close();
    b.close();
  }
}

describe('go-spiffe mTLS across two federated Mayfly trust domains', () => {
  let east: MayflyDeployment;
  let west: MayflyDeployment;
  const serverId = `spiffe://${EAST}/go/server`;
  const clientId = `spiffe://${WEST}/go/client`;

  beforeAll(async () => {
    await buildGoWorkload();
    [east, west] = await Promise.all([startMayfly({ trustDomain: EAST, defaultEntryPath: null }), startMayfly({ trustDomain: WEST, defaultEntryPath: null })]);
    await exchangeBundle(east, west);
    await exchangeBundle(west, east);
    await east.createEntry(serverId, [`unix:uid:${east.uid}`], { federatesWith: [WEST] });
    await west.createEntry(clientId, [`unix:uid:${west.uid}`], { federatesWith: [EAST] });
  }, 240_000);

  afterAll(async () => {
    await Promise.all([east?.stop(), west?.stop()]);
  });

  it('the client in west reaches the server in east, each authorising the other trust domain', async () => {
    const server = await GoWorkloadServer.start(['-listen', '127.0.0.1:0', '-memberOf', WEST], { endpoint: east.endpoint });
    try {
      const listening = await server.waitFor((e) => e.event === 'listening', 'the server to listen');
      expect(listening.spiffeId).toBe(serverId);
      const addr = listening.addr as string;
      const good = ok(await runGoWorkload(['client', '-connect', addr, '-memberOf', EAST, '-message', 'hello east'], { endpoint: west.endpoint }));
      expect(good).toMatchObject({ spiffeId: clientId, serverId, reply: `${serverId} heard from ${clientId}: hello east` });

      // A client that wants a server of its own trust domain refuses east's SVID.
      const wrong = await runGoWorkload(['client', '-connect', addr, '-memberOf', WEST, '-message', 'x'], { endpoint: west.endpoint });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/not a member of trust domain|unexpected trust domain/);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
