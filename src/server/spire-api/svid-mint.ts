/**
 * @module server/spire-api/svid-mint
 *
 * SPIRE's admin SVID mints (`spire-server x509 mint`, `jwt mint`): MintX509SVID and
 * MintJWTSVID, with SPIRE's checks, order and messages (pkg/server/api/svid/v1 at
 * v1.13.3), then Mayfly's own MintX509SVID / MintJWTSVID (issuance records, audit).
 *
 * Threats it stops:
 * - an SVID for a key the caller does not hold: the CSR's self-signature must verify with
 *   the public key it carries (proof of possession), else INVALID_ARGUMENT;
 * - an SVID for another trust domain, for a trust domain ID, or in the reserved `/spire/`
 *   namespace (agent and server identities): refused as SPIRE refuses them;
 * - several identities in one SVID: exactly one URI SAN.
 *
 * Deliberate differences from SPIRE:
 * - SPIRE copies the CSR's subject into the SVID; Mayfly's CA sets its own subject (the
 *   SPIFFE ID, DNS names and key are what a verifier uses).
 * - A failure in Mayfly's mint keeps Mayfly's code (e.g. UNAVAILABLE while the CA is
 *   initialising, INVALID_ARGUMENT for a key it refuses) with SPIRE's message prefix
 *   "failed to sign X509-SVID" / "failed to sign JWT-SVID"; SPIRE answers INTERNAL.
 */
import { status as GrpcStatus, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { dnsNameProblem, MAX_ENTRY_TTL_SECONDS } from '../../registration/entry.js';
import { SpiffeId, type TrustDomain } from '../../spiffe/id.js';
import { parseCsr } from '../../spiffe/x509/csr.js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { WireJwtSvid, WireX509Svid } from '../messages.js';
import { csrNames } from './csr-names.js';
import type { MayflyImpls } from './delegate.js';
import { spiffeIdToSpire, type SpireSpiffeId } from './ids.js';
import { callMayfly, SpireStatus, spireError, spireUnary } from './spire-call.js';

const invalid = (msg: string, cause?: unknown): SpireStatus => spireError(GrpcStatus.INVALID_ARGUMENT, msg, cause);

/** SPIRE's `api.VerifyTrustDomainWorkloadID`; the reason, or undefined when `id` is a workload of `td`. */
export function workloadIdProblem(td: TrustDomain, id: SpiffeId): string | undefined {
  if (!id.memberOf(td)) return `"${id.toString()}" is not a member of trust domain "${td.name}"`;
  if (id.path === '') return `"${id.toString()}" is not a workload in trust domain "${td.name}"; path is empty`;
  if (id.path === '/spire' || id.path.startsWith('/spire/')) return `"${id.toString()}" is not a workload in trust domain "${td.name}"; path is in the reserved namespace`;
  return undefined;
}

/** Go's `x509util.CheckForWildcardOverlap`: a name a wildcard of the same list covers. */
export function wildcardOverlap(names: readonly string[]): string | undefined {
  const all = new Set(names);
  for (const name of all) {
    if (name.startsWith('*')) continue;
    const labels = name.split('.');
    labels[0] = '*';
    if (all.has(labels.join('.'))) return `name "${name}" overlaps with an existing wildcard name in the list: wildcard overlap`;
  }
  return undefined;
}

/**
 * SPIRE: a TTL of 0 or less means the server's default, and a long one is capped at the
 * signing authority's expiry (Mayfly's CA caps the same way once the TTL is within the
 * longest it accepts, so longer ones are brought down to that first).
 */
const ttlOf = (ttl: number | undefined): number => (ttl !== undefined && ttl > 0 ? Math.min(ttl, MAX_ENTRY_TTL_SECONDS) : 0);

/** Mayfly's refusal from its own mint, as SPIRE words the step (see the module comment). */
function signFailed(what: string, err: unknown): SpireStatus {
  const code = err instanceof SpireStatus ? err.code : GrpcStatus.INTERNAL;
  return spireError(code, `failed to sign ${what}`, err);
}

export function svidMintHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const S = mayfly.SVID ?? {};
  return {
    MintX509SVID: spireUnary<{ csr?: Buffer; ttl?: number }, unknown>(ctx, t, 'spire.SVID/MintX509SVID', 'admin', async (req, _c, call) => {
      const csr = req.csr;
      if (!(csr instanceof Uint8Array) || csr.length === 0) throw invalid('missing CSR');
      let names;
      try {
        names = csrNames(csr);
      } catch (err) {
        throw invalid('malformed CSR', err instanceof Error ? err.message : String(err));
      }
      try {
        parseCsr(csr);
      } catch (err) {
        throw invalid('failed to verify CSR signature', err);
      }
      if (names.uris.length === 0) throw invalid('CSR URI SAN is required');
      if (names.uris.length > 1) throw invalid('only one URI SAN is expected');
      let id: SpiffeId;
      try {
        id = SpiffeId.parse(names.uris[0] as string);
      } catch (err) {
        throw invalid('CSR URI SAN is invalid', err);
      }
      const problem = workloadIdProblem(ctx.trustDomain, id);
      if (problem !== undefined) throw invalid('CSR URI SAN is invalid', problem);
      for (const d of names.dnsNames) {
        const p = dnsNameProblem(d);
        if (p !== undefined) throw invalid('CSR DNS name is invalid', `${JSON.stringify(d.slice(0, 255))} ${p}`);
      }
      const overlap = wildcardOverlap(names.dnsNames);
      if (overlap !== undefined) throw invalid('CSR DNS name contains a wildcard that covers another non-wildcard name', overlap);
      let res: { svid: WireX509Svid };
      try {
        res = await callMayfly(S.MintX509SVID, call as ServerUnaryCall<unknown, unknown>, { csr, spiffe_id: id.toString(), ttl: ttlOf(req.ttl), dns_names: names.dnsNames });
      } catch (err) {
        throw signFailed('X509-SVID', err);
      }
      return { svid: { id: spiffeIdToSpire(res.svid.spiffe_id), cert_chain: res.svid.cert_chain, expires_at: res.svid.expires_at, hint: '' } };
    }),

    MintJWTSVID: spireUnary<{ id?: Partial<SpireSpiffeId> | null; audience?: string[]; ttl?: number }, unknown>(ctx, t, 'spire.SVID/MintJWTSVID', 'admin', async (req, _c, call) => {
      if (req.id === null || req.id === undefined) throw invalid('invalid SPIFFE ID', 'request must specify SPIFFE ID');
      let id: SpiffeId;
      try {
        const path = req.id.path ?? '';
        if (path !== '' && !path.startsWith('/')) throw new Error('path must have a leading slash');
        id = SpiffeId.parse(`spiffe://${req.id.trust_domain ?? ''}${path}`);
      } catch (err) {
        throw invalid('invalid SPIFFE ID', err instanceof SpireStatus ? err : (err as Error).message);
      }
      const problem = workloadIdProblem(ctx.trustDomain, id);
      if (problem !== undefined) throw invalid('invalid SPIFFE ID', problem);
      const audience = req.audience ?? [];
      if (audience.length === 0) throw invalid('at least one audience is required');
      let res: { svid: WireJwtSvid };
      try {
        res = await callMayfly(S.MintJWTSVID, call as ServerUnaryCall<unknown, unknown>, { spiffe_id: id.toString(), audience, ttl: ttlOf(req.ttl) });
      } catch (err) {
        throw signFailed('JWT-SVID', err);
      }
      return { svid: { token: res.svid.token, id: spiffeIdToSpire(res.svid.spiffe_id), expires_at: res.svid.expires_at, issued_at: res.svid.issued_at, hint: '' } };
    }),
  };
}
