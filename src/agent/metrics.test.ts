/**
 * agent/metrics without a listener: events are counted before prom-client is loaded and
 * appear, with their labels, in the first exposition; the content type is prom-client's.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from './metrics.js';

const state = {
  x509SvidsCached: () => 3,
  serverConnected: () => true,
  serverAddress: () => '10.0.0.1:8081',
  secondsSinceSync: () => 0,
  bundleAgeSeconds: () => undefined,
  agentSvidSecondsLeft: () => 60,
};

describe('AgentMetrics', () => {
  it('counts events before the registry exists and shows them in the first exposition', async () => {
    const m = new AgentMetrics({ state, processMetrics: false });
    m.nodeAttestation('join_token', 'success');
    m.nodeAttestation('join_token', 'success');
    m.x509SvidRotated();
    m.deliveryRecords('dropped', 2);
    m.deliveryRecords('sent', 0);
    const text = await m.text();
    expect(text).toMatch(/^mayfly_agent_node_attestations_total\{attestor="join_token",outcome="success"\} 2$/m);
    expect(text).toMatch(/^mayfly_agent_x509_svids_rotated_total 1$/m);
    expect(text).toMatch(/^mayfly_agent_delivery_records_total\{outcome="dropped"\} 2$/m);
    expect(text).not.toMatch(/outcome="sent"/);
    expect(text).toMatch(/^mayfly_agent_x509_svids_cached 3$/m);
    m.x509SvidRotated();
    expect(await m.text()).toMatch(/^mayfly_agent_x509_svids_rotated_total 2$/m);
    expect(await m.prometheus()).toBe(await m.prometheus());
  });

  it('a counter with no event yet shows 0 when unlabelled and nothing when labelled', async () => {
    const text = await new AgentMetrics({ state, processMetrics: false }).text();
    expect(text).toMatch(/^mayfly_agent_x509_svids_rotated_total 0$/m);
    expect(text).not.toMatch(/^mayfly_agent_node_attestations_total\{/m);
  });

  it('serves prom-client\'s content type', () => {
    expect(new AgentMetrics({ state }).contentType).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
  });
});
