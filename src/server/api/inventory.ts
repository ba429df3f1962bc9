/**
 * @module server/api/inventory
 *
 * The `Inventory` service (Mayfly's own, admins only, issue 11): `GetInventory` reads every
 * entry, agent and usage record and answers with server/inventory's report, so the CLI
 * needs one call and the server's clock decides what is stale.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import { nowSeconds, unary, type ApiContext } from '../context.js';
import { inventoryFromStore, type CertificationFindingOf } from '../inventory.js';
import { badRequest } from '../status.js';

const MAX_UNUSED_DAYS = 36_500;

const iso = (s: number): string => new Date(s * 1000).toISOString();

/** The owner certification findings (issue 11 item 5), when certification is on. */
function certificationFindings(ctx: ApiContext, now: number): CertificationFindingOf | undefined {
  const gate = ctx.certification;
  if (gate === undefined) return undefined;
  return (e) => {
    const s = gate.status(e, now);
    const how = `mayfly-server entry certify -entryID ${e.entryId} -owner ${e.owner === '' ? '<owner>' : e.owner}`;
    const last = s.certifiedAt === 0 ? 'never certified' : `last certified ${iso(s.certifiedAt)}`;
    if (s.state === 'due') return { kind: 'certification_due', detail: `certification due since ${iso(s.dueAt)} (${last}); not served from ${iso(s.lapsesAt)}`, action: `the owner certifies it: ${how}` };
    if (s.state === 'lapsed') return { kind: 'certification_lapsed', detail: `not served since ${iso(s.lapsesAt)} (${last})`, action: `the owner certifies it (${how}), or delete it` };
    if (s.state === 'exempt') return { kind: 'certification_exempt', detail: `exempt from certification (break-glass): served until its owner certifies it (${last})`, action: `the owner certifies it, which ends the exemption: ${how}` };
    return undefined;
  };
}

export function inventoryService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  return {
    GetInventory: unary<{ unused_days?: number }, unknown>(ctx, t, 'GetInventory', 'admin', async (req) => {
      const days = req.unused_days ?? 0;
      if (!Number.isInteger(days) || days < 0 || days > MAX_UNUSED_DAYS) throw badRequest(`unused_days must be an integer 0..${MAX_UNUSED_DAYS} (0 = 30); got ${String(days)}`);
      const now = nowSeconds(ctx);
      const r = await inventoryFromStore(ctx.ds, ctx.serverId.toString(), now, days === 0 ? 30 : days, certificationFindings(ctx, now));
      return {
        generated_at: r.generatedAt,
        entry_count: r.entryCount,
        agent_count: r.agentCount,
        entries: r.entries.map((f) => ({ kind: f.kind, entry_id: f.entryId, spiffe_id: f.spiffeId, owner: f.owner, detail: f.detail, action: f.action })),
        agents: r.agents.map((a) => ({ kind: a.kind, agent_id: a.agentId, last_seen_at: a.lastSeenAt, detail: a.detail, action: a.action })),
      };
    }),
  };
}
