/**
 * @module server/api/delivery
 *
 * `AgentSync.ReportDeliveries` (agent only): an agent's delivery records — which local
 * caller (pid, uid, gid, selectors) received which SVID on its Workload API — appended to
 * the audit ledger, one `svid.delivered` record each, plus one `svid.deliveries-lost` record
 * for each count the agent reports of records it could not keep (buffer full, lost with a
 * previous process) and for those refused here. The answer is sent only once every record
 * is durable, so an agent that gets OK may forget the batch; a failed append answers
 * UNAVAILABLE and the agent sends the batch again (delivery is at least once).
 *
 * Threat: an agent writing into the ledger that it handed out identities it does not hold
 * (to frame a workload or cover another agent's tracks). Each reported SPIFFE ID must be one
 * the calling agent is authorised for now (server/authorized, from the datastore, nothing the
 * agent sends widens it); any other, and any malformed item, is not recorded but counted in a
 * `refused` lost record that names the agent. The caller fields and the serial are the
 * agent's account: the server cannot see the agent's socket, and says so in the record kind.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { AuditEvent } from '../../audit/record.js';
import { isTemplateId } from '../../registration/template.js';
import { SpiffeId } from '../../spiffe/id.js';
import { auditActorOf } from '../audit-events.js';
import type { Transport } from '../auth.js';
import { authorizedEntries } from '../authorized.js';
import { checkBatch, unary, type ApiContext } from '../context.js';
import { badRequest, denied } from '../status.js';
import { templateEntriesYielding } from '../template-identity.js';

interface WireDelivery {
  kind?: string;
  spiffe_id?: string;
  serial?: string;
  audience?: string[];
  expires_at?: number;
  delivered_at?: number;
  pid?: number;
  uid?: number;
  gid?: number;
  selectors?: string[];
}

interface WireReport {
  deliveries?: WireDelivery[];
  dropped?: number;
  lost_at_restart?: number;
  lost_at_restart_unknown_more?: boolean;
}

const MAX_SELECTORS = 64;
const MAX_STRING = 2048;
const MAX_AUDIENCES = 32;

const count = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : -1);
const strings = (v: unknown, max: number): string[] | undefined =>
  Array.isArray(v) && v.length <= max && v.every((x) => typeof x === 'string' && x.length <= MAX_STRING) ? (v as string[]) : undefined;

/** The `svid.delivered` event of one item, or undefined when it is malformed or not authorised. */
function deliveredEvent(d: WireDelivery, agentId: string, allowed: ReadonlySet<string>): AuditEvent | undefined {
  const id = d.spiffe_id ?? '';
  if (!allowed.has(id)) return undefined;
  try {
    SpiffeId.parse(id);
  } catch {
    return undefined;
  }
  const [pid, uid, gid, notAfter, deliveredAt] = [d.pid, d.uid, d.gid, d.expires_at, d.delivered_at].map(count) as [number, number, number, number, number];
  if (pid < 0 || uid < 0 || gid < 0 || notAfter < 0 || deliveredAt < 0) return undefined;
  const selectors = strings(d.selectors ?? [], MAX_SELECTORS);
  if (selectors === undefined) return undefined;
  const base = { kind: 'svid.delivered', agentId, spiffeId: id, notAfter, deliveredAt, pid, uid, gid, selectors } as const;
  if (d.kind === 'x509') {
    const serial = (d.serial ?? '').toLowerCase();
    if (!/^[0-9a-f]{1,64}$/.test(serial)) return undefined;
    return { ...base, svidType: 'x509', serial };
  }
  if (d.kind === 'jwt') {
    const audience = strings(d.audience ?? [], MAX_AUDIENCES);
    if (audience === undefined || audience.length === 0) return undefined;
    return { ...base, svidType: 'jwt', audience };
  }
  return undefined;
}

export function deliveryHandlers(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  return {
    ReportDeliveries: unary<WireReport, unknown>(ctx, t, 'ReportDeliveries', 'agent', async (req, caller) => {
      if (caller.kind !== 'agent') throw denied('ReportDeliveries is for attested agents only');
      const items = req.deliveries ?? [];
      checkBatch(ctx, items.length, 'deliveries');
      const dropped = count(req.dropped ?? 0);
      const lost = count(req.lost_at_restart ?? 0);
      if (dropped < 0 || lost < 0) throw badRequest('dropped and lost_at_restart must be integers >= 0');
      const agentId = caller.agentId.toString();
      const authorised = ctx.authorizedCache !== undefined ? [...(await ctx.authorizedCache.get(ctx, caller.agent)).values()] : await authorizedEntries(ctx, caller.agent);
      const allowed = new Set(authorised.map((e) => e.spiffeId));
      // Instances of entry templates (issue 11): the ID the template yields for the reported selectors.
      const templates = authorised.filter((e) => isTemplateId(e.spiffeId));
      const viaTemplate = new Map<string, string[]>();
      for (const d of templates.length > 0 ? items : []) {
        const sid = typeof d === 'object' && d !== null && typeof d.spiffe_id === 'string' ? d.spiffe_id : '';
        if (sid === '' || allowed.has(sid)) continue;
        const ids = templateEntriesYielding(templates, sid, d.selectors);
        if (ids.length === 0) continue;
        viaTemplate.set(sid, ids);
        allowed.add(sid);
      }
      const events: AuditEvent[] = [];
      let refused = 0;
      for (const d of items) {
        const e = typeof d === 'object' && d !== null ? deliveredEvent(d, agentId, allowed) : undefined;
        if (e === undefined) refused++;
        else events.push(e);
      }
      const lostEvent = (reason: 'agent-buffer-full' | 'agent-restart' | 'refused', n: number, atLeast?: boolean): AuditEvent => ({
        kind: 'svid.deliveries-lost',
        agentId,
        reason,
        count: n,
        ...(atLeast === true ? { atLeast } : {}),
      });
      if (lost > 0 || req.lost_at_restart_unknown_more === true) events.push(lostEvent('agent-restart', lost, req.lost_at_restart_unknown_more === true));
      if (dropped > 0) events.push(lostEvent('agent-buffer-full', dropped));
      if (refused > 0) {
        events.push(lostEvent('refused', refused));
        ctx.logger.warn({ agentId, refused }, 'an agent reported SVID deliveries of identities it is not authorised for (or malformed ones); they are not recorded');
      }
      if (ctx.usage !== undefined) {
        const bySpiffeId = new Map<string, string[]>();
        for (const e of authorised) bySpiffeId.set(e.spiffeId, [...(bySpiffeId.get(e.spiffeId) ?? []), e.entryId]);
        for (const [sid, ids] of viaTemplate) bySpiffeId.set(sid, [...(bySpiffeId.get(sid) ?? []), ...ids]);
        for (const e of events) {
          if (e.kind !== 'svid.delivered') continue;
          // delivered_at is the agent's unix milliseconds; usage records keep seconds.
          for (const id of bySpiffeId.get(e.spiffeId) ?? []) ctx.usage.delivered(id, Math.floor(e.deliveredAt / 1000));
        }
      }
      if (ctx.audit !== undefined) {
        const audit = ctx.audit;
        const actor = auditActorOf(caller);
        await Promise.all(events.map((e) => audit.record(actor, e)));
      }
      return { recorded: ctx.audit !== undefined ? items.length - refused : 0, refused };
    }),
  };
}
