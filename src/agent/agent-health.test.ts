import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { agentReadiness, unhealthyReason, type AgentHealthFacts } from './agent-health.js';
import type { AgentSvid } from './attestation.js';

const t0 = Date.parse('2026-12-03T08:00:00Z');
const svid: AgentSvid = {
  spiffeId: 'spiffe://example.org/spire/agent/join_token/x',
  certChain: [],
  privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  serialHex: '01',
  notBefore: new Date(t0),
  notAfter: new Date(t0 + 3600_000),
};
const healthy: AgentHealthFacts = { now: new Date(t0 + 60_000), svid, entries: true, workloadApiListening: true, lastInSync: new Date(t0 + 60_000), thresholdSeconds: undefined, failure: undefined };

describe('agent health', () => {
  it('defaults the server-unreachable threshold to half the agent SVID lifetime', () => {
    const at = (ms: number): AgentHealthFacts => ({ ...healthy, lastInSync: new Date(t0), now: new Date(t0 + ms) });
    expect(agentReadiness(at(1800_000)).ready).toBe(true);
    expect(agentReadiness(at(1800_001)).checks.server).toBe(false);
    expect(unhealthyReason(at(1800_001))).toBe('the server has been unreachable for longer than 1800s (server_unreachable_threshold)');
    expect(agentReadiness({ ...at(1800_001), thresholdSeconds: 3000 }).ready).toBe(true);
    expect(unhealthyReason({ ...at(1800_001), serverAddress: '10.0.0.2:8081' })).toBe('the server has been unreachable for longer than 1800s (server_unreachable_threshold; trying 10.0.0.2:8081)');
  });

  it('names the first failing check', () => {
    expect(unhealthyReason(healthy)).toBeUndefined();
    expect(unhealthyReason({ ...healthy, svid: undefined })).toBe('the agent holds no valid agent SVID');
    expect(unhealthyReason({ ...healthy, entries: false })).toBe('the authorised entries have not arrived from the server yet');
    expect(unhealthyReason({ ...healthy, entries: false, failure: 'agent SVID expired' })).toBe('the agent failed: agent SVID expired');
    expect(unhealthyReason({ ...healthy, workloadApiListening: false })).toBe('the Workload API is not listening');
    expect(agentReadiness({ ...healthy, lastInSync: undefined }).checks.server).toBe(false);
  });
});
