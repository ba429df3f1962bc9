/**
 * @module server/spire-api/debug
 *
 * SPIRE's Debug service (GetInfo): the server's own X509-SVID chain up to the root that
 * issued it (SPIFFE ID, expiry and subject of each certificate, as SPIRE reports its
 * verified chain), its uptime, and the agent, entry and bundle counts (bundles include the
 * trust domain's own, as SPIRE's CountBundles does). The counts come from Mayfly's own
 * admin handlers, so the caller is authorised exactly as for those.
 *
 * SPIRE serves Debug to local callers only; so does this: over TCP it is PERMISSION_DENIED.
 * SPIRE caches the answer for 5 s; Mayfly's counts are cheap, so each call is answered fresh.
 */
import { X509Certificate } from 'node:crypto';
import type { ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { SpiffeId } from '../../spiffe/id.js';
import type { Transport } from '../auth.js';
import { servedBundle, type ApiContext } from '../context.js';
import { mayflyCaller } from './call.js';
import { spireError, spireUnary } from './spire-call.js';
import type { MayflyImpls } from './delegate.js';
import { spiffeIdToSpire, type SpireSpiffeId } from './ids.js';

interface InfoCert {
  id: SpireSpiffeId | null;
  expires_at: number;
  subject: string;
}

/** A subject as Go's `pkix.Name.String()` spells it: RDNs last to first, comma-separated. */
export function goSubject(cert: X509Certificate): string {
  // Node leaves `subject` undefined for an empty one (SVIDs often have none).
  return ((cert.subject as string | undefined) ?? '')
    .split('\n')
    .filter((l) => l !== '')
    .reverse()
    .join(',');
}

function spiffeIdOf(cert: X509Certificate): SpireSpiffeId | null {
  const uri = (cert.subjectAltName ?? '')
    .split(', ')
    .find((s) => s.startsWith('URI:spiffe://'))
    ?.slice(4);
  if (uri === undefined) return null;
  try {
    return spiffeIdToSpire(SpiffeId.parse(uri));
  } catch {
    return null;
  }
}

/** The chain (leaf first) with the bundle root that issued its last certificate appended. */
export function infoChain(chain: readonly Buffer[], roots: readonly Buffer[]): InfoCert[] {
  const certs = chain.map((d) => new X509Certificate(d));
  const last = certs[certs.length - 1];
  if (last !== undefined) {
    const root = roots.map((d) => new X509Certificate(d)).find((r) => last.checkIssued(r) && last.verify(r.publicKey));
    if (root !== undefined && root.fingerprint256 !== last.fingerprint256) certs.push(root);
  }
  return certs.map((c) => ({ id: spiffeIdOf(c), expires_at: Math.floor(new Date(c.validTo).getTime() / 1000), subject: goSubject(c) }));
}

export function debugHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  return {
    GetInfo: spireUnary<object, unknown>(ctx, t, 'spire.Debug/GetInfo', 'admin', async (_req, _caller, call) => {
      if (t !== 'admin-socket') throw spireError(GrpcStatus.PERMISSION_DENIED, 'authorization denied for method /spire.api.server.debug.v1.Debug/GetInfo: Debug is served on the admin socket only');
      const c = call as ServerUnaryCall<unknown, unknown>;
      const [agents, entries, bundles] = await Promise.all([
        mayflyCaller(mayfly.Agent, c)<{ count: number }>('CountAgents', {}),
        mayflyCaller(mayfly.Entry, c)<{ count: number }>('CountEntries', {}),
        mayflyCaller(mayfly.Bundle, c)<{ count: number }>('CountBundles', {}),
      ]);
      const info = ctx.serverInfo;
      const svidChain = info === undefined ? [] : infoChain(info.svidChain(), servedBundle(ctx).x509Authorities);
      const uptime = info === undefined ? 0 : Math.max(0, Math.floor((ctx.now().getTime() - info.startedAt.getTime()) / 1000));
      return { svid_chain: svidChain, uptime, agents_count: agents.count, federated_bundles_count: bundles.count, entries_count: entries.count };
    }),
  };
}
