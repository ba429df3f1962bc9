/**
 * @module delegation/policy
 *
 * The delegation policy: which agent SPIFFE IDs may act for which users or groups, toward
 * which audiences, with which scopes, for how long. Parsed once at start from plain data
 * (server.conf's `delegation` block); every problem names where it is.
 *
 * Threat: an agent exceeding its user or its mandate. A rule grants nothing it does not
 * name: no wildcard audience, no wildcard scope; agent patterns are exact IDs, a path
 * prefix ending in `/*`, or a whole trust domain (`spiffe://td`).
 */
import { SpiffeId } from '../spiffe/id.js';
import { DelegationError } from './delegation-error.js';

export interface DelegationRule {
  /** Agent patterns: `spiffe://td/path` (exact), `spiffe://td/prefix/*`, `spiffe://td` (any ID of td). */
  readonly agents: readonly string[];
  /** User `sub` values this rule covers (`*`: any user the upstream vouches for). */
  readonly users: readonly string[];
  /** Or users in one of these groups (the user token's `groups` claim). */
  readonly groups: readonly string[];
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  readonly maxTtlSeconds: number;
}

export interface DelegationPolicy {
  readonly rules: readonly DelegationRule[];
}

/** Default and ceiling of an issued token's life (RFC 8693 tokens here are short). */
export const DEFAULT_MAX_TTL_SECONDS = 300;

function fail(where: string, what: string): never {
  throw new DelegationError('ERR_DELEGATION_CONFIG', `delegation policy ${where}: ${what}`);
}

function strings(v: unknown, where: string, required: boolean): string[] {
  if (v === undefined && !required) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s !== '')) fail(where, 'must be a list of non-empty strings');
  if (required && v.length === 0) fail(where, 'must name at least one value');
  return v as string[];
}

function checkAgentPattern(p: string, where: string): void {
  const base = p.endsWith('/*') ? p.slice(0, -2) : p;
  try {
    if (/^spiffe:\/\/[^/]+$/.test(base)) SpiffeId.parse(`${base}/x`);
    else SpiffeId.parse(base);
  } catch (err) {
    fail(where, `${JSON.stringify(p)} is no SPIFFE ID, ID prefix ending in /* or trust domain (${(err as Error).message})`);
  }
}

/** Parses the policy; throws ERR_DELEGATION_CONFIG naming the rule and key at fault. */
export function parseDelegationPolicy(input: unknown, capSeconds = DEFAULT_MAX_TTL_SECONDS): DelegationPolicy {
  if (typeof input !== 'object' || input === null) fail('', 'must be an object with a "rules" list');
  const rulesIn = (input as { rules?: unknown }).rules;
  if (!Array.isArray(rulesIn) || rulesIn.length === 0) fail('rules', 'must be a non-empty list');
  const known = new Set(['agents', 'users', 'groups', 'audiences', 'scopes', 'max_ttl_seconds']);
  const rules = rulesIn.map((r: unknown, i): DelegationRule => {
    const at = `rules[${i}]`;
    if (typeof r !== 'object' || r === null) fail(at, 'must be an object');
    const o = r as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!known.has(k)) fail(`${at}.${k}`, `unknown key (expected one of ${[...known].join(', ')})`);
    const agents = strings(o.agents, `${at}.agents`, true);
    agents.forEach((a, j) => checkAgentPattern(a, `${at}.agents[${j}]`));
    const users = strings(o.users, `${at}.users`, false);
    const groups = strings(o.groups, `${at}.groups`, false);
    if (users.length === 0 && groups.length === 0) fail(at, 'names no users and no groups: it would cover nobody');
    const audiences = strings(o.audiences, `${at}.audiences`, true);
    if (audiences.includes('*')) fail(`${at}.audiences`, 'a wildcard audience is not allowed: name each target');
    const scopes = strings(o.scopes, `${at}.scopes`, true);
    for (const s of scopes) if (/\s/.test(s)) fail(`${at}.scopes`, `scope ${JSON.stringify(s)} contains whitespace`);
    const ttl = o.max_ttl_seconds ?? capSeconds;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl <= 0 || ttl > capSeconds) {
      fail(`${at}.max_ttl_seconds`, `must be an integer in 1..${capSeconds}`);
    }
    return { agents, users, groups, audiences, scopes, maxTtlSeconds: ttl };
  });
  return { rules };
}

/** True when `agent` (a SPIFFE ID string) matches the pattern. */
export function agentMatches(pattern: string, agent: string): boolean {
  if (pattern.endsWith('/*')) return agent.startsWith(pattern.slice(0, -1));
  if (/^spiffe:\/\/[^/]+$/.test(pattern)) return agent.startsWith(`${pattern}/`);
  return agent === pattern;
}

export interface DelegationSubject {
  readonly sub: string;
  readonly groups: readonly string[];
}

/** The rules under which `agent` may act for `user` (empty: not allowed). */
export function rulesFor(policy: DelegationPolicy, agent: string, user: DelegationSubject): DelegationRule[] {
  return policy.rules.filter(
    (r) => r.agents.some((p) => agentMatches(p, agent)) && (r.users.includes('*') || r.users.includes(user.sub) || r.groups.some((g) => user.groups.includes(g))),
  );
}
