/**
 * @module agent/config-delivery
 *
 * `agent { delivery_records { enabled buffer_size flush_interval } }` in agent.conf: the
 * delivery records the agent ships to the server's audit ledger (agent/delivery-log).
 */
import { block, bool, checkKeys } from '../config/accessors.js';
import { parseDurationSeconds } from '../config/duration.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';

export interface DeliveryRecordSettings {
  /** Default true. */
  enabled?: boolean;
  /** Records held in memory at most before new ones are dropped and counted (default 10,000). */
  maxBuffered?: number;
  /** How often buffered records are sent (default 1 s). */
  flushIntervalMs?: number;
}

export const MAX_DELIVERY_BUFFER = 1_000_000;

export function parseDeliveryRecordsBlock(agent: HclObject, p: Problems): DeliveryRecordSettings {
  const where = 'agent.delivery_records';
  const b = block(agent, 'delivery_records', 'agent', p);
  if (b === undefined) return {};
  checkKeys(b, ['enabled', 'buffer_size', 'flush_interval'], where, p);
  const out: DeliveryRecordSettings = {};
  const enabled = bool(b, 'enabled', where, p);
  if (enabled !== undefined) out.enabled = enabled;
  if (b.buffer_size !== undefined) {
    const v = b.buffer_size;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_DELIVERY_BUFFER) p.add(`${where}.buffer_size must be an integer from 1 to ${MAX_DELIVERY_BUFFER}; got ${JSON.stringify(v)}`);
    else out.maxBuffered = v;
  }
  if (b.flush_interval !== undefined) {
    const seconds = parseDurationSeconds(b.flush_interval);
    if (seconds === undefined || seconds < 1 || seconds > 3600) p.add(`${where}.flush_interval must be a duration from 1s to 1h such as "5s"; got ${JSON.stringify(b.flush_interval)}`);
    else out.flushIntervalMs = seconds * 1000;
  }
  return out;
}
