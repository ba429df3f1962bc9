/**
 * @module agent/config-token-exchange
 *
 * `agent { token_exchange { endpoint server_spiffe_id actor_audience timeout } }` in
 * agent.conf: offer the server's RFC 8693 token exchange (server.delegation) to local
 * attested callers as `ExchangeForUser` on the Workload API socket
 * (proto/agent-delegation.proto, workloadapi/token-exchange). Off unless the block is there.
 */
import { block, checkKeys, str } from '../config/accessors.js';
import { parseDurationSeconds } from '../config/duration.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';
import { SpiffeId } from '../spiffe/id.js';

export interface TokenExchangeSettings {
  endpoint: string;
  serverId?: string;
  actorAudience?: string;
  timeoutMs?: number;
}

export function parseTokenExchangeBlock(agent: HclObject, p: Problems): TokenExchangeSettings | undefined {
  const where = 'agent.token_exchange';
  const b = block(agent, 'token_exchange', 'agent', p);
  if (b === undefined) return undefined;
  checkKeys(b, ['endpoint', 'server_spiffe_id', 'actor_audience', 'timeout'], where, p);
  const endpoint = str(b, 'endpoint', where, p, { nonEmpty: true });
  if (endpoint === undefined) {
    p.add(`${where}.endpoint is required: the server's token endpoint, such as "https://mayfly-server:8445/token"`);
    return undefined;
  }
  let ok = true;
  try {
    if (new URL(endpoint).protocol !== 'https:') throw new Error('not https');
  } catch {
    p.add(`${where}.endpoint must be an https:// URL; got ${JSON.stringify(endpoint)}`);
    ok = false;
  }
  const out: TokenExchangeSettings = { endpoint };
  const serverId = str(b, 'server_spiffe_id', where, p, { nonEmpty: true });
  if (serverId !== undefined) {
    try {
      SpiffeId.parse(serverId);
      out.serverId = serverId;
    } catch (err) {
      p.add(`${where}.server_spiffe_id: ${(err as Error).message}`);
      ok = false;
    }
  }
  const aud = str(b, 'actor_audience', where, p, { nonEmpty: true });
  if (aud !== undefined) out.actorAudience = aud;
  if (b.timeout !== undefined) {
    const s = parseDurationSeconds(b.timeout);
    if (s === undefined || s < 1 || s > 120) {
      p.add(`${where}.timeout must be a duration from 1s to 2m such as "10s"; got ${JSON.stringify(b.timeout)}`);
      ok = false;
    } else out.timeoutMs = s * 1000;
  }
  return ok ? out : undefined;
}
