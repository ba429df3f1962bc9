/**
 * @module server/config-audit
 *
 * The top-level `audit { … }` block of `server.conf` (Mayfly's own; SPIRE has no ledger):
 *   audit {
 *     enabled             = true    # default true
 *     checkpoint_every    = 1000    # records between signed checkpoints
 *     checkpoint_interval = "1m"    # longest a record waits for one
 *     retention           = "2160h" # keep records this long (default: forever); pruning keeps a checkpoint as the anchor
 *   }
 */
import { block, bool, checkKeys, duration } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';

export interface AuditSettings {
  enabled: boolean;
  checkpointEvery: number;
  checkpointIntervalSeconds: number;
  /** 0 (no `retention`): keep every record. */
  retentionSeconds: number;
}

export const DEFAULT_AUDIT: AuditSettings = { enabled: true, checkpointEvery: 1000, checkpointIntervalSeconds: 60, retentionSeconds: 0 };

export function readAuditBlock(root: HclObject, p: Problems): AuditSettings {
  const a = block(root, 'audit', '', p);
  if (a === undefined) return { ...DEFAULT_AUDIT };
  checkKeys(a, ['enabled', 'checkpoint_every', 'checkpoint_interval', 'retention'], 'audit', p);
  const out = { ...DEFAULT_AUDIT };
  const enabled = bool(a, 'enabled', 'audit', p);
  if (enabled !== undefined) out.enabled = enabled;
  const every = a.checkpoint_every;
  if (every !== undefined) {
    if (typeof every !== 'number' || !Number.isInteger(every) || every < 1 || every > 100_000) p.add(`audit.checkpoint_every must be an integer from 1 to 100000; got ${JSON.stringify(every)}`);
    else out.checkpointEvery = every;
  }
  const interval = duration(a, 'checkpoint_interval', 'audit', p);
  if (interval !== undefined) {
    if (interval < 1) p.add('audit.checkpoint_interval must be at least 1s');
    else out.checkpointIntervalSeconds = interval;
  }
  const retention = duration(a, 'retention', 'audit', p);
  if (retention !== undefined) out.retentionSeconds = retention;
  return out;
}
