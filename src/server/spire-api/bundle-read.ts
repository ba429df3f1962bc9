/**
 * @module server/spire-api/bundle-read
 *
 * The bundle reads SPIRE's agents make (`spire.api.server.bundle.v1.Bundle` GetBundle,
 * GetFederatedBundle), with SPIRE's output masks (trust_domain always kept) and the
 * `tainted` flag on every authority an operator tainted, which SPIRE's agents act on by
 * re-issuing what it signed.
 *
 * GetBundle is Mayfly's own handler (anyone may read the served bundle, as with SPIRE).
 * GetFederatedBundle is open to agents as well as admins, as SPIRE's policy has it: SPIRE's
 * agents fetch the bundles their entries federate with this way (Mayfly's own agents get
 * them on the push stream; Mayfly's own GetFederatedBundle stays admin-only). Anonymous
 * callers and workloads are refused.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { TrustDomain } from '../../spiffe/id.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import type { Transport } from '../auth.js';
import { servedTaints, unary, type ApiContext } from '../context.js';
import { bundleToWire, storedBundleToBundle, trustDomainFromWire, type WireBundle } from '../messages.js';
import { badRequest, denied, notFound, unauthenticated } from '../status.js';
import { viaMayfly, type MayflyImpls } from './delegate.js';
import { spireErrors } from './stream.js';
import { applyMask, bundleToSpire, type SpireBundle, type SpireMask } from './types.js';

/** The served bundle's tainted authorities as `bundleToSpire` names them (X.509 by DER base64, JWT by key ID). */
function taintedOf(ctx: ApiContext, b: WireBundle): { x509: string[]; jwt: string[] } {
  const t = servedTaints(ctx);
  if (t.x509.length === 0 && t.jwt.length === 0) return { x509: [], jwt: [] };
  const skis = new Set(t.x509.map((s) => s.toLowerCase()));
  const x509 = b.x509_authorities.filter((der) => {
    try {
      const ski = parseCertificate(der).subjectKeyId;
      return ski !== undefined && skis.has(ski.toString('hex'));
    } catch {
      return false;
    }
  });
  return { x509: x509.map((der) => der.toString('base64')), jwt: [...t.jwt] };
}

const masked = (b: SpireBundle, mask: SpireMask | null | undefined): Partial<SpireBundle> => applyMask(b, mask, ['trust_domain']);

export function bundleReadHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  return {
    GetBundle: spireErrors(
      viaMayfly<{ output_mask: SpireMask | null }, object, WireBundle, Partial<SpireBundle>>(
        mayfly.Bundle?.GetBundle,
        () => ({}),
        (b, req) => masked(bundleToSpire(b, taintedOf(ctx, b)), req.output_mask),
      ),
    ),

    GetFederatedBundle: spireErrors(
      unary<{ trust_domain: string; output_mask: SpireMask | null }, Partial<SpireBundle>>(ctx, t, 'GetFederatedBundle', 'attest', async (req, caller) => {
        if (caller.kind === 'anonymous') throw unauthenticated('GetFederatedBundle needs an agent or admin X509-SVID, or the admin socket');
        if (caller.kind === 'workload') throw denied('GetFederatedBundle is for agents and admins');
        let td: TrustDomain;
        try {
          td = trustDomainFromWire(req.trust_domain ?? '');
        } catch (err) {
          throw badRequest(`trust domain argument is not valid: ${(err as Error).message}`);
        }
        if (td.equals(ctx.trustDomain)) throw badRequest("getting a federated bundle for the server's own trust domain is not allowed");
        const stored = await ctx.ds.getBundle(td.name);
        if (stored === undefined) throw notFound('bundle not found');
        return masked(bundleToSpire(bundleToWire(storedBundleToBundle(stored))), req.output_mask);
      }),
    ),
  };
}
