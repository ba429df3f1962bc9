/**
 * @module server/template-identity
 *
 * The SPIFFE ID an agent's SVID request for an authorised entry gets: the entry's own, or,
 * for an entry template (registration/template, issue 11), the one the server derives
 * itself from the template and the selector values the agent sent.
 *
 * Threat: an agent (buggy, or hostile within its own authority) obtaining from a template
 * an ID the template does not yield, or one built from a hostile selector value (the
 * CVE-2021-27099 class: `../`, `a/b`, `%2e%2e`, uppercase look-alikes). The agent's claimed
 * ID is never used: the server re-derives the ID from the stored template and exactly one
 * value per wildcard selector (`verifyInstantiation`), validates each value and the result
 * as strictly as a typed-in ID, requires the result to equal the claim, to be in the
 * server's trust domain and outside the reserved `/spire` namespace (a placeholder in the
 * first segment could otherwise yield `/spire/agent/...`). A refusal names the rule broken.
 * What the agent can obtain from a template is what the template allows for some value:
 * the wildcard is the operator's grant. One thing it never yields: an ID that an ordinary
 * entry not authorised for this agent registers (`checkNotShadowing`), so a template on one
 * node cannot mint the identity an operator gave a workload elsewhere.
 */
import { MAX_ENTRY_SELECTORS, type RegistrationEntry } from '../registration/entry.js';
import { parseSelector, selectorTypeProblem, selectorValueProblem, type Selector } from '../registration/selector.js';
import { instantiateTemplate, isTemplateId, verifyInstantiation } from '../registration/template.js';
import { SpiffeId } from '../spiffe/id.js';
import type { ApiContext } from './api-context.js';
import { checkNotReservedId } from './api/entry.js';
import { badRequest, denied } from './status.js';

/** The template fields of an agent's SVID request (proto/server.proto NewX509SVIDParams). */
export interface TemplateRequest {
  spiffe_id?: string;
  template_selectors?: readonly { type?: unknown; value?: unknown }[] | null;
}

function selectorsFromWire(list: TemplateRequest['template_selectors']): Selector[] {
  const items = list ?? [];
  if (items.length > MAX_ENTRY_SELECTORS) throw badRequest(`template_selectors holds ${items.length} selectors; the limit is ${MAX_ENTRY_SELECTORS}`);
  return items.map((s, i) => {
    const p = selectorTypeProblem(s?.type) ?? selectorValueProblem(s?.value);
    if (p !== undefined) throw badRequest(`template_selectors[${i}] is invalid: ${p}`);
    return { type: s.type as string, value: s.value as string };
  });
}

/** The SPIFFE ID to sign for `entry` on this request; throws a gRPC status error naming the problem. */
export function identityForRequest(ctx: ApiContext, entry: RegistrationEntry, req: TemplateRequest, agentId: string): SpiffeId {
  const bindings = selectorsFromWire(req.template_selectors);
  if (!isTemplateId(entry.spiffeId)) {
    if (bindings.length > 0) throw badRequest(`entry ${JSON.stringify(entry.entryId)} is not a template; send no template_selectors`);
    if (req.spiffe_id !== undefined && req.spiffe_id !== '' && req.spiffe_id !== entry.spiffeId) throw denied(`entry ${JSON.stringify(entry.entryId)} is for ${entry.spiffeId}, not ${req.spiffe_id.slice(0, 2048)}`);
    return SpiffeId.parse(entry.spiffeId);
  }
  const r = verifyInstantiation(entry.spiffeId, entry.selectors, bindings, req.spiffe_id);
  if ('problem' in r) {
    ctx.logger.warn({ entryId: entry.entryId, agentId, template: entry.spiffeId, problem: r.problem }, 'refused an SVID for an entry template');
    throw denied(`entry template ${JSON.stringify(entry.entryId)} (${entry.spiffeId}) yields no SVID: ${r.problem}`);
  }
  const id = SpiffeId.parseWorkload(r.spiffeId);
  if (!id.memberOf(ctx.trustDomain)) throw denied(`entry template ${JSON.stringify(entry.entryId)} yields ${r.spiffeId}, outside the trust domain ${ctx.trustDomain.name}`);
  try {
    checkNotReservedId(ctx, r.spiffeId, `entry template ${JSON.stringify(entry.entryId)} yields`);
  } catch (err) {
    ctx.logger.warn({ entryId: entry.entryId, agentId, spiffeId: r.spiffeId }, 'refused an SVID for an entry template: reserved ID');
    throw denied((err as Error).message);
  }
  return id;
}

/**
 * The template entries among `templates` that yield `spiffeId` for a caller with `selectors`
 * (`type:value` strings, as delivery reports carry them): how a delivery of a template
 * instance is attributed to its entry. Malformed selectors make no match.
 */
export function templateEntriesYielding(templates: readonly RegistrationEntry[], spiffeId: string, selectors: readonly unknown[] | undefined): string[] {
  if (templates.length === 0 || !Array.isArray(selectors) || selectors.length > MAX_ENTRY_SELECTORS) return [];
  let parsed: Selector[];
  try {
    parsed = selectors.map((s) => parseSelector(String(s)));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const t of templates) {
    if (!isTemplateId(t.spiffeId)) continue;
    const r = instantiateTemplate(t.spiffeId, t.selectors, parsed);
    if (r !== undefined && 'spiffeId' in r && r.spiffeId === spiffeId) out.push(t.entryId);
  }
  return out;
}

/**
 * Refuses a template instance whose concrete ID an ordinary (non-template) entry holds that
 * is not authorised for this agent: the explicit registration wins over the wildcard.
 */
export async function checkNotShadowing(ctx: ApiContext, entry: RegistrationEntry, id: SpiffeId, allowed: ReadonlyMap<string, RegistrationEntry>, agentId: string): Promise<void> {
  if (!isTemplateId(entry.spiffeId)) return;
  const page = await ctx.ds.listEntries({ bySpiffeId: id.toString(), pageSize: 100 });
  if (page.items.some((e) => !allowed.has(e.entryId))) {
    ctx.logger.warn({ entryId: entry.entryId, agentId, spiffeId: id.toString() }, 'refused an SVID for an entry template: another entry registers that ID');
    throw denied(`entry template ${JSON.stringify(entry.entryId)} yields ${id.toString()}, which another registration entry (not authorised for this agent) holds; a template never yields an explicitly registered identity`);
  }
}
