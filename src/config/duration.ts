/**
 * @module config/duration
 *
 * Go durations as SPIRE's config files write them (`"24h"`, `"1h30m"`, `"90s"`).
 */

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * Seconds from a Go duration (`"24h"`, `"1h30m"`, `"90s"`), a number of seconds, or a string of
 * digits. Undefined when the value has neither form; fractions of a second are refused.
 */
export function parseDurationSeconds(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v !== 'string' || v.length > 64) return undefined;
  if (/^-?\d+$/.test(v)) return Number(v);
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(v);
  if (!m) return undefined;
  let total = 0;
  for (const part of (m[2] as string).matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (DURATION_UNITS[part[2] as string] as number);
  }
  total = Math.round(total * 1e6) / 1e6;
  if (!Number.isInteger(total)) return undefined;
  return m[1] === '-' ? -total : total;
}
