/**
 * @module server/api/authority
 *
 * The `LocalAuthority` service: show, prepare, activate, taint and revoke the CA's X.509
 * and JWT authorities (admins only). The rules of which transition is allowed live in the
 * CA; it reports a disallowed one as ERR_CA_AUTHORITY_STATE (FAILED_PRECONDITION) and an
 * unknown authority as ERR_CA_AUTHORITY_NOT_FOUND (NOT_FOUND).
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import { unary, type ApiContext } from '../context.js';
import type { AuthorityInfo, AuthorityKind } from '../../ca/authority.js';
import { badRequest } from '../status.js';

function slotToWire(s: AuthorityInfo | undefined): { authority_id: string; expires_at: number } | null {
  return s === undefined ? null : { authority_id: s.id, expires_at: Math.floor(s.notAfter.getTime() / 1000) };
}

function authorityIdFromWire(id: string | undefined): string {
  if (typeof id !== 'string' || id === '' || id.length > 256) throw badRequest('authority_id must be 1..256 characters');
  return id;
}

export function authorityService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  const changed = (): void => ctx.hub.publish({ kind: 'ca' });
  for (const [kind, label] of [['x509', 'X509'], ['jwt', 'JWT']] as [AuthorityKind, string][]) {
    impl[`Get${label}AuthorityState`] = unary(ctx, t, `Get${label}AuthorityState`, 'admin', async () => {
      const s = ctx.ca.authorityState(kind);
      return { active: slotToWire(s.active), prepared: slotToWire(s.prepared), old: slotToWire(s.old) };
    });
    impl[`Prepare${label}Authority`] = unary(ctx, t, `Prepare${label}Authority`, 'admin', async () => {
      const slot = await ctx.ca.prepareAuthority(kind);
      changed();
      return { authority: slotToWire(slot) };
    });
    for (const op of ['Activate', 'Taint', 'Revoke'] as const) {
      impl[`${op}${label}Authority`] = unary<{ authority_id: string }, unknown>(ctx, t, `${op}${label}Authority`, 'admin', async (req) => {
        const id = authorityIdFromWire(req.authority_id);
        const slot =
          op === 'Activate' ? await ctx.ca.activateAuthority(kind, id) : op === 'Taint' ? await ctx.ca.taintAuthority(kind, id) : await ctx.ca.revokeAuthority(kind, id);
        changed();
        return { authority: slotToWire(slot) };
      });
    }
  }
  return impl;
}
