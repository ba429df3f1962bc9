/**
 * @module sdk/authorize-call
 *
 * The per-call decision a resource server makes for an agent acting for a user: "agent X
 * may call tool T on resource R when acting for user U with role W". Rules are evaluated
 * in order; the first that matches decides; none matching denies. Every decision is
 * emitted as one structured record (pino-compatible object) naming both identities.
 *
 * Threat: an agent exceeding its user (the user's claims must match too) or a user reaching
 * a tool through an agent not meant for it (the agent must match too). Default deny.
 */

export interface CallRule {
  readonly id: string;
  readonly effect: 'allow' | 'deny';
  /** Agent patterns: exact SPIFFE ID, prefix ending in `/*`, or `spiffe://td` (any ID of td). Omitted: any. */
  readonly agents?: readonly string[];
  readonly users?: readonly string[];
  readonly groups?: readonly string[];
  readonly roles?: readonly string[];
  /** Tool names (`*` any). Omitted: any. */
  readonly tools?: readonly string[];
  /** Resource patterns: exact, or a prefix ending in `*`. Omitted: any. */
  readonly resources?: readonly string[];
}

export interface CallUser {
  readonly sub: string;
  readonly groups?: readonly string[];
  readonly roles?: readonly string[];
}

export interface CallRequest {
  readonly actor: string;
  readonly user: CallUser;
  readonly tool: string;
  readonly resource?: string;
  readonly context?: Readonly<Record<string, unknown>>;
}

export interface CallDecision {
  readonly allow: boolean;
  /** The rule that decided, or undefined for the default deny. */
  readonly rule: string | undefined;
}

export interface CallDecisionRecord {
  readonly event: 'authorize_call';
  readonly decision: 'allow' | 'deny';
  readonly rule: string | null;
  readonly actor: string;
  readonly user: string;
  readonly tool: string;
  readonly resource?: string;
  readonly context?: Readonly<Record<string, unknown>>;
}

export function agentMatches(pattern: string, agent: string): boolean {
  if (pattern.endsWith('/*')) return agent.startsWith(pattern.slice(0, -1));
  if (/^spiffe:\/\/[^/]+$/.test(pattern)) return agent.startsWith(`${pattern}/`);
  return agent === pattern;
}

const glob = (pattern: string, value: string): boolean => (pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value);

function ruleMatches(r: CallRule, c: CallRequest): boolean {
  if (r.agents !== undefined && !r.agents.some((p) => agentMatches(p, c.actor))) return false;
  const userNamed = r.users !== undefined || r.groups !== undefined || r.roles !== undefined;
  if (userNamed) {
    const byUser = r.users?.some((u) => u === '*' || u === c.user.sub) ?? false;
    const byGroup = r.groups?.some((g) => c.user.groups?.includes(g) === true) ?? false;
    const byRole = r.roles?.some((g) => c.user.roles?.includes(g) === true) ?? false;
    if (!byUser && !byGroup && !byRole) return false;
  }
  if (r.tools !== undefined && !r.tools.some((t) => t === '*' || t === c.tool)) return false;
  if (r.resources !== undefined && (c.resource === undefined || !r.resources.some((p) => glob(p, c.resource as string)))) return false;
  return true;
}

export interface AuthorizeCallOptions {
  readonly rules: readonly CallRule[];
  /** Where each decision record goes (e.g. `(r) => logger.info(r)`). */
  readonly emit?: (record: CallDecisionRecord) => void;
}

/** Decides one call; the first matching rule wins, else deny. */
export function authorizeCall(call: CallRequest, opts: AuthorizeCallOptions): CallDecision {
  const hit = opts.rules.find((r) => ruleMatches(r, call));
  const allow = hit?.effect === 'allow';
  opts.emit?.({ event: 'authorize_call', decision: allow ? 'allow' : 'deny', rule: hit?.id ?? null, actor: call.actor, user: call.user.sub, tool: call.tool, resource: call.resource, context: call.context });
  return { allow, rule: hit?.id };
}
