/**
 * @module config/accessors
 *
 * Typed reads of a parsed config tree (config/hcl). Each accessor returns the value when it
 * has the right shape, undefined when the key is absent, and records a problem naming the
 * key's full path when it is there but wrong, so one pass reports everything.
 *
 * `where` is the dotted path of the object holding the key (`server`, `plugins.KeyManager.disk.plugin_data`;
 * `''` at the top level); messages name `<where>.<key>`.
 */
import { parseDurationSeconds } from './duration.js';
import { isHclObject, type HclObject, type HclValue } from './hcl.js';
import type { Problems } from './problems.js';

/** `<where>.<key>`, or `key` at the top level. */
export function at(where: string, key: string): string {
  return where === '' ? key : `${where}.${key}`;
}

/** Records every key of `obj` not in `allowed` (a typo must not silently fall back to a default). */
export function checkKeys(obj: HclObject, allowed: readonly string[], where: string, p: Problems): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) p.add(`unknown key ${at(where, k)} (known: ${allowed.length > 0 ? allowed.join(', ') : 'none'})`);
  }
}

/** A block (`key { ... }` or `key = { ... }`); HCL1 and SPIRE's JSON form also give a block as a one-element list. */
export function block(obj: HclObject, key: string, where: string, p: Problems): HclObject | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  const one = Array.isArray(v) && v.length === 1 ? v[0] : v;
  if (!isHclObject(one)) {
    p.add(`${at(where, key)} must be a block`);
    return undefined;
  }
  return one;
}

export function str(obj: HclObject, key: string, where: string, p: Problems, opts: { nonEmpty?: boolean } = {}): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || (opts.nonEmpty === true && v === '')) {
    p.add(`${at(where, key)} must be a ${opts.nonEmpty === true ? 'non-empty ' : ''}string`);
    return undefined;
  }
  return v;
}

export function bool(obj: HclObject, key: string, where: string, p: Problems): boolean | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') {
    p.add(`${at(where, key)} must be true or false`);
    return undefined;
  }
  return v;
}

/** A port number (or a string of digits, as SPIRE's sample files write it) from `min` to 65535. */
export function port(v: HclValue | undefined, what: string, p: Problems, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > 65535) {
    p.add(`${what} must be a port number from ${min} to 65535; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return n;
}

/** A positive duration in seconds (`"1h"`, `"90s"`, or a number of seconds). */
export function duration(obj: HclObject, key: string, where: string, p: Problems): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  const s = parseDurationSeconds(v);
  if (s === undefined || s <= 0) {
    p.add(`${at(where, key)} must be a positive duration such as "1h" or "90s"; got ${JSON.stringify(v)}`);
    return undefined;
  }
  return s;
}
