/**
 * @module server/config-certification
 *
 * `server { certification { interval = "90d" grace = "14d" } }` (Mayfly's own, issue 11):
 * owner certification (server/certification), off unless the block is there. Durations take
 * days (`"90d"`) besides Go durations (`"2160h"`). It needs the audit ledger (attestations are
 * recorded there and read back at start), so `audit.enabled = false`, or an `audit.retention`
 * shorter than `interval + grace` (pruning would forget certifications still in force), is
 * refused.
 *
 * Threat: a certification policy silently weaker than written (a typo falling back to a
 * default, or a ledger that forgets the attestations it relies on).
 */
import { checkKeys } from '../config/accessors.js';
import { parseDurationSeconds } from '../config/duration.js';
import { hclLineOf, isHclObject, type HclObject } from '../config/hcl.js';
import { Problems } from '../config/problems.js';
import type { CertificationSettings } from './certification.js';
import type { AuditSettings } from './config-audit.js';

export const DEFAULT_CERTIFICATION: CertificationSettings = { intervalSeconds: 90 * 86_400, graceSeconds: 14 * 86_400 };

/** Seconds from `"90d"` or a Go duration / number of seconds; undefined when neither. */
export function parseDaysOrDuration(v: unknown): number | undefined {
  if (typeof v === 'string') {
    const d = /^(\d{1,6})d$/.exec(v);
    if (d) return Number(d[1]) * 86_400;
  }
  return parseDurationSeconds(v);
}

function read(c: HclObject, key: string, p: Problems, min: number): number | undefined {
  const v = c[key];
  if (v === undefined) return undefined;
  const s = parseDaysOrDuration(v);
  if (s === undefined || s < min) {
    p.add(`server.certification.${key} must be a duration of at least ${min === 0 ? '0s' : '1h'} such as "90d" or "336h"; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return s;
}

/** `server.certification`, when configured; checked against the `audit` block. */
export function readCertificationBlock(srv: HclObject, audit: AuditSettings, problems: Problems): CertificationSettings | undefined {
  const raw = srv.certification;
  if (raw === undefined) return undefined;
  const c = Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
  if (!isHclObject(c)) {
    problems.add('server.certification must be a block');
    return undefined;
  }
  // Each problem names the config line the block opens on (HCL files).
  const line = hclLineOf(c);
  const p = new Problems();
  const out = readSettings(c, audit, p);
  for (const m of p.list) problems.add(line === undefined ? m : `${m} (config line ${line})`);
  return out;
}

function readSettings(c: HclObject, audit: AuditSettings, p: Problems): CertificationSettings {
  checkKeys(c, ['interval', 'grace'], 'server.certification', p);
  const out = { ...DEFAULT_CERTIFICATION };
  const interval = read(c, 'interval', p, 3600);
  if (interval !== undefined) out.intervalSeconds = interval;
  const grace = read(c, 'grace', p, 0);
  if (grace !== undefined) out.graceSeconds = grace;
  if (!audit.enabled) p.add('server.certification needs the audit ledger, where attestations are recorded: remove audit.enabled = false');
  else if (audit.retentionSeconds > 0 && audit.retentionSeconds < out.intervalSeconds + out.graceSeconds) {
    p.add(`server.certification: audit.retention (${audit.retentionSeconds}s) is shorter than interval + grace (${out.intervalSeconds + out.graceSeconds}s), so pruning would forget certifications still in force; raise audit.retention or remove it`);
  }
  return out;
}
