/**
 * A peer bundle the fetcher stores reaches an agent by push: the fetcher (federation/poller)
 * over a real server's datastore, its `onBundleStored` announcing on the change hub as
 * server/runner wires it, and an attested agent's open SubscribeAuthorizedEntries stream,
 * whose entry federates with the peer, receiving the peer's new bundle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { BundlePoller } from '../federation/poller.js';
import { RecordingLogger, TestBundleEndpoint } from '../federation/testing.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { TrustDomain } from '../spiffe/id.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { makeTestCa, makeTestSvid } from '../spiffe/x509/testing.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireBundle, WireEntry, WireX509Svid } from './messages.js';
import { startTestServer, type TestServer } from './testing.js';

const TD = 'push.test';
const PEER = 'peer.test';
const closers: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe('federated bundle push', () => {
  it("sends the peer's rotated bundle to an agent whose entry federates with it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-fedpush-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv: TestServer = await startTestServer({ trustDomain: TD, dataDir: dir, keyManager: 'memory', csrWorkers: 0, limits: { syncCoalesceMs: 10 } });
    closers.push(() => srv.stop());

    const peerTd = TrustDomain.parse(PEER);
    const caA = makeTestCa({ trustDomain: PEER });
    const caB = makeTestCa({ trustDomain: PEER });
    const svid = makeTestSvid(caA, '/spire/server');
    const ep = await TestBundleEndpoint.start([svid.certificate], svid.key.privateKey, () => undefined);
    closers.push(() => ep.close());
    const bootstrap = new Bundle({ trustDomain: peerTd, x509Authorities: [caA.certificate], sequence: 1 });
    await srv.datastore.setBundle({ trustDomain: PEER, bundle: bootstrap.toJson(), sequence: 1 });
    await srv.datastore.createFederationRelationship({ trustDomain: PEER, bundleEndpointUrl: ep.url('/'), bundleEndpointProfile: 'https_spiffe', endpointSpiffeId: `spiffe://${PEER}/spire/server` });

    const fetcher = new BundlePoller({
      store: srv.datastore,
      ownTrustDomain: TD,
      logger: new RecordingLogger(),
      onBundleStored: () => srv.hub.publish({ kind: 'bundles' }),
      setTimer: () => () => undefined,
    });
    await fetcher.start();
    closers.push(() => fetcher.stop());

    // An attested agent with an entry federating with the peer, and its push stream.
    const admin: ServerApiClients = adminSocketClients(srv.adminSocketPath);
    closers.push(() => admin.close());
    const own = await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
    const token = (await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 60 })).value;
    const key = generateKeyPair();
    const anon = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: own.x509_authorities });
    closers.push(() => anon.close());
    const res = await unaryCall<{ svid: WireX509Svid }>(anon.Agent, 'AttestAgent', {
      attestation_data: { type: 'join_token', payload: Buffer.from(token) },
      csr: createCsr({ privateKey: key.privateKey }),
    });
    await unaryCall(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://${TD}/w`, parent_id: res.svid.spiffe_id, selectors: [{ type: 'unix', value: 'uid:1' }], federates_with: [PEER] }],
    });
    const agent = tcpClients({ address: `127.0.0.1:${srv.port}`, trustDomain: TD, bundleRoots: own.x509_authorities, svid: { certChain: res.svid.cert_chain, privateKey: key.privateKey } });
    closers.push(() => agent.close());
    type Update = { entries: WireEntry[]; federated_bundles: WireBundle[] };
    const s = (agent.AgentSync as unknown as { SubscribeAuthorizedEntries(req: object): ClientReadableStream<Update> }).SubscribeAuthorizedEntries({});
    closers.push(() => s.cancel());
    const updates: Update[] = [];
    let wake: (() => void) | undefined;
    s.on('data', (u: Update) => {
      updates.push(u);
      wake?.();
    });
    s.on('error', () => undefined);
    const peerCerts = (u: Update | undefined): string[] => (u?.federated_bundles.find((b) => b.trust_domain === PEER)?.x509_authorities ?? []).map((d) => d.toString('base64')).sort();
    const until = async (pred: () => boolean): Promise<void> => {
      while (!pred()) await new Promise<void>((r) => (wake = r));
    };
    await until(() => peerCerts(updates.at(-1)).length === 1);
    expect(peerCerts(updates.at(-1))).toEqual([caA.certificate.toString('base64')]);

    // The peer publishes its next CA; one fetch later the agent has it, by push.
    ep.serve(new Bundle({ trustDomain: peerTd, x509Authorities: [caA.certificate, caB.certificate], sequence: 2 }).toJson());
    await fetcher.refresh(PEER);
    await until(() => peerCerts(updates.at(-1)).length === 2);
    expect(peerCerts(updates.at(-1))).toEqual([caA.certificate, caB.certificate].map((c) => c.toString('base64')).sort());
  });
});
