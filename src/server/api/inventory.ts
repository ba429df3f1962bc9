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
import { certificationFindings, inventoryFromStore } from '../inventory.js';
import { badRequest } from '../status.js';

const MAX_UNUSED_DAYS = 36_500;


export function inventoryService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  return {
    GetInventory: unary<{ unused_days?: number }, unknown>(ctx, t, 'GetInventory', 'admin', async (req) => {
      const days = req.unused_days ?? 0;
      if (!Number.isInteger(days) || days < 0 || days > MAX_UNUSED_DAYS) throw badRequest(`unused_days must be an integer 0..${MAX_UNUSED_DAYS} (0 = 30); got ${String(days)}`);
      const now = nowSeconds(ctx);
      const r = await inventoryFromStore(ctx.ds, ctx.serverId.toString(), now, days === 0 ? 30 : days, certificationFindings(ctx.certification, now));
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
