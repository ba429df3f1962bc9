/**
 * @module server/api/audit
 *
 * The `Audit` service (admin only): the ledger's records exactly as stored, in seq order,
 * for `mayfly-server audit verify|show|export`. The server does not vouch for them: the
 * client recomputes every link and checks every checkpoint against the trust bundle
 * (audit/verify), so a tampered datastore is caught even though this API serves it as is.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { unary, type ApiContext } from '../context.js';
import type { Transport } from '../auth.js';
import { badRequest } from '../status.js';

export function auditService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  return {
    ListAuditRecords: unary<{ after_seq?: number; limit?: number }, unknown>(ctx, t, 'ListAuditRecords', 'admin', async (req) => {
      const afterSeq = req.after_seq ?? 0;
      const limit = req.limit ?? 0;
      if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw badRequest('after_seq must be an integer >= 0');
      if (!Number.isInteger(limit) || limit < 0 || limit > 1000) throw badRequest('limit must be from 1 to 1000 (0 = 500)');
      const rows = await ctx.ds.listAuditRecords({ afterSeq, ...(limit > 0 ? { limit } : {}) });
      return { records: rows.map((r) => ({ seq: r.seq, prev_hash: r.prevHash, hash: r.hash, body: r.body })) };
    }),
  };
}
