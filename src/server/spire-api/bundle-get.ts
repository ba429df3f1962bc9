/**
 * @module server/spire-api/bundle-get
 *
 * SPIRE's bundle reads, one implementation for every caller: GetBundle (the server trust
 * domain's bundle, as Mayfly serves it: anyone may read it, as in SPIRE) and
 * GetFederatedBundle (a federated trust domain's stored bundle: admins and agents, as
 * SPIRE authorises it; spire-agent fetches the bundles its entries federate with this way).
 * `spire-server bundle show`, `bundle list -id` and `x509 mint` read these too.
 */
import { status as GrpcStatus, type handleUnaryCall } from '@grpc/grpc-js';
import { authenticate, type Transport } from '../auth.js';
import { servedTaints, type ApiContext } from '../context.js';
import { bundleToWire, storedBundleToBundle, type WireBundle } from '../messages.js';
import { denied, unauthenticated } from '../status.js';
import { applyBundleMask, bundleToSpireMarked, spireTrustDomain, type AuthorityMarks } from './bundle-convert.js';
import type { MayflyImpls } from './delegate.js';
import { callMayfly, spireError, spireUnary } from './spire-call.js';
import type { SpireBundle, SpireMask } from './types.js';

/** Taints and JWT key expiries of the server's own bundle. */
export function ownMarks(ctx: ApiContext): AuthorityMarks {
  const jwtExpiry = new Map<string, number>();
  try {
    for (const a of ctx.ca.authorityState('jwt').all) jwtExpiry.set(a.id, Math.floor(a.notAfter.getTime() / 1000));
  } catch {
    // A CA still initialising has no authorities to date.
  }
  return { tainted: servedTaints(ctx), jwtExpiry };
}

/** GetBundle: Mayfly's GetBundle (public), answered as SPIRE's `types.Bundle` with its output mask. */
export function getBundleHandler(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): handleUnaryCall<{ output_mask?: SpireMask | null }, SpireBundle> {
  return spireUnary(ctx, t, 'spire.Bundle/GetBundle', 'public', async (req, _caller, call) => {
    const w = await callMayfly<WireBundle>(mayfly.Bundle?.GetBundle, call, {});
    return applyBundleMask(bundleToSpireMarked(w, ownMarks(ctx)), req.output_mask);
  });
}

/** GetFederatedBundle, with SPIRE's checks and messages (admins, the admin socket, attested agents). */
export function getFederatedBundleHandler(ctx: ApiContext, t: Transport): handleUnaryCall<{ trust_domain?: string; output_mask?: SpireMask | null }, SpireBundle> {
  // 'public' only lets the wrapper skip its own check: the caller is authenticated here,
  // before anything is read, and must be an admin or an agent.
  return spireUnary(ctx, t, 'spire.Bundle/GetFederatedBundle', 'public', async (req, _anonymous, call) => {
    const caller = await authenticate(ctx, t, call);
    if (caller.kind === 'anonymous') throw unauthenticated('GetFederatedBundle needs an admin or agent X509-SVID, or the admin socket');
    if (caller.kind !== 'local-admin' && caller.kind !== 'admin' && caller.kind !== 'agent') throw denied('GetFederatedBundle is for admins and attested agents');
    const td = spireTrustDomain(req.trust_domain, 'trust domain argument is not valid');
    if (td.equals(ctx.trustDomain)) throw spireError(GrpcStatus.INVALID_ARGUMENT, "getting a federated bundle for the server's own trust domain is not allowed");
    const stored = await ctx.ds.getBundle(td.name);
    if (stored === undefined) throw spireError(GrpcStatus.NOT_FOUND, 'bundle not found');
    let w: WireBundle;
    try {
      w = bundleToWire(storedBundleToBundle(stored));
    } catch (err) {
      throw spireError(GrpcStatus.INTERNAL, 'failed to convert bundle', err);
    }
    return applyBundleMask(bundleToSpireMarked(w), req.output_mask);
  });
}
