import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { HttpEndpoints, type Readiness } from '../observability/http-endpoints.js';
import { grpcCodeName, ServerMetrics } from './observability.js';

describe('HttpEndpoints', () => {
  it('answers /ready with 503 and the failing checks until every check passes, and serves nothing else', async () => {
    let state: Readiness = { ready: false, checks: { datastore: true, ca: false, listeners: true } };
    // The own trust domain's bundle is stored too (shared by servers) but is not a federated one.
    const stored = (trustDomain: string) => ({ trustDomain, bundle: '{"keys":[]}', sequence: 1, updatedAt: 0 });
    const metrics = new ServerMetrics({
      processMetrics: false,
      trustDomain: 'example.org',
      datastore: { countEntries: async () => 7, countAgents: async () => 2, listBundles: async () => [stored('example.org'), stored('fed.test')] },
    });
    const http = new HttpEndpoints({ host: '127.0.0.1', port: 0, metrics, ready: () => state });
    await http.start();
    try {
      const base = `http://127.0.0.1:${http.port}`;
      const notReady = await fetch(`${base}/ready`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toEqual(state);
      state = { ready: true, checks: { datastore: true, ca: true, listeners: true } };
      expect((await fetch(`${base}/ready`)).status).toBe(200);
      expect((await fetch(`${base}/live`)).status).toBe(200);
      expect((await fetch(`${base}/other`)).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toMatch(/^mayfly_entries 7$/m);
      expect(text).toMatch(/^mayfly_agents 2$/m);
      expect(text).toMatch(/^mayfly_bundles 1$/m);
      expect(text).toMatch(/^mayfly_svids_signed_total\{type="x509"\} 0$/m);
    } finally {
      await http.stop();
    }
  });

  it('counts SVIDs minted in batches off the CA (worker pool) as well as through signX509Svid', async () => {
    const ca = new ServerCa({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
    await ca.init();
    const metrics = new ServerMetrics({ processMetrics: false, datastore: { countEntries: async () => 0, countAgents: async () => 0, listBundles: async () => [] } });
    const counting = metrics.countingCa(ca);
    // The batch path mints with the CA's own snapshot: the wrapper must not hide or copy it.
    expect(counting.x509MintAuthority().authority).toBe(ca.x509MintAuthority().authority);
    counting.noteX509SvidsMinted?.(3);
    expect(await metrics.text()).toMatch(/^mayfly_svids_signed_total\{type="x509"\} 3$/m);
  });

  it('names gRPC status codes', () => {
    expect(grpcCodeName(status.OK)).toBe('OK');
    expect(grpcCodeName(status.FAILED_PRECONDITION)).toBe('FAILED_PRECONDITION');
    expect(grpcCodeName(99)).toBe('99');
  });

  it('counts peer bundle refusals by trust domain and reason, and records the last successful refresh', async () => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const f = metrics.fetcherMetrics();
    f.refused('peer.test', 'timeout');
    f.refused('peer.test', 'timeout');
    f.refused('peer.test', 'sequence_downgrade');
    f.refreshed('peer.test', new Date(1_700_000_000_500));
    const text = await metrics.text();
    expect(text).toContain('mayfly_federation_bundle_refusals_total{trust_domain="peer.test",reason="timeout"} 2');
    expect(text).toContain('mayfly_federation_bundle_refusals_total{trust_domain="peer.test",reason="sequence_downgrade"} 1');
    expect(text).toContain('mayfly_federation_bundle_last_refresh_timestamp_seconds{trust_domain="peer.test"} 1700000000');
  });
});
