/**
 * @module server/spire-api/localauthority
 *
 * SPIRE's LocalAuthority RPCs (`spire-server localauthority x509|jwt show|prepare|activate|
 * taint|revoke`) over Mayfly's CA rotation: SPIRE's checks, codes and messages first
 * (pkg/server/api/localauthority/v1 at v1.13.3), then Mayfly's own LocalAuthority handler
 * (the CA's slot rules, change notices, audit records).
 *
 * Threats it stops (with the CA's own rules underneath): activating anything but the
 * prepared authority; tainting or revoking the authority that signs now (an outage);
 * revoking an authority agents were not told to move away from (it must be tainted first).
 *
 * Deliberate differences from SPIRE:
 * - SPIRE keeps two slots (current, next), so "old" and "prepared" exclude each other;
 *   Mayfly may hold a prepared authority and old ones at once: `show` reports both, and
 *   taint / revoke accept any old authority still in the bundle, not only the latest.
 * - With an upstream authority, TaintX509UpstreamAuthority / RevokeX509UpstreamAuthority
 *   answer UNIMPLEMENTED (Mayfly does not manage the upstream CA's keys); without one they
 *   answer as SPIRE does (FAILED_PRECONDITION "upstream authority is not configured").
 */
import { status as GrpcStatus, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { AuthorityInfo, AuthorityKind } from '../../ca/authority.js';
import type { Transport } from '../auth.js';
import { servedBundle, type ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';
import { callMayfly, SpireStatus, spireError, spireUnary } from './spire-call.js';

export interface SpireAuthorityState {
  authority_id: string;
  expires_at: number;
  upstream_authority_subject_key_id: string;
}

export function authorityStateToSpire(a: Pick<AuthorityInfo, 'id' | 'notAfter' | 'upstreamAuthorityId'>): SpireAuthorityState {
  return { authority_id: a.id, expires_at: Math.floor(a.notAfter.getTime() / 1000), upstream_authority_subject_key_id: a.upstreamAuthorityId ?? '' };
}

const invalid = (msg: string, cause?: string): SpireStatus => spireError(GrpcStatus.INVALID_ARGUMENT, msg, cause);

export function localAuthorityHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const L = mayfly.LocalAuthority ?? {};
  const impl: UntypedServiceImplementation = {};
  const state = (kind: AuthorityKind) => ctx.ca.authorityState(kind);
  const find = (kind: AuthorityKind, id: string): AuthorityInfo | undefined => state(kind).all.find((a) => a.id === id);
  const activeOrInitialising = (kind: AuthorityKind): AuthorityInfo => {
    const active = state(kind).active;
    if (active === undefined) throw spireError(GrpcStatus.UNAVAILABLE, 'server is initializing');
    return active;
  };
  const hasUpstream = (): boolean => state('x509').active?.upstreamAuthorityId !== undefined;
  /** Mayfly's handler for `method`; its refusal as SPIRE's INTERNAL `failed to <step> …`. */
  const run = async (call: unknown, method: string, req: object, failed: string): Promise<void> => {
    try {
      await callMayfly(L[method], call as ServerUnaryCall<unknown, unknown>, req);
    } catch (err) {
      throw spireError(GrpcStatus.INTERNAL, failed, err);
    }
  };

  for (const [kind, label, name] of [
    ['x509', 'X509', 'X.509'],
    ['jwt', 'JWT', 'JWT'],
  ] as [AuthorityKind, string, string][]) {
    const method = (op: string): string => `spire.LocalAuthority/${op}${label}Authority`;

    impl[`Get${label}AuthorityState`] = spireUnary(ctx, t, `spire.LocalAuthority/Get${label}AuthorityState`, 'admin', async () => {
      activeOrInitialising(kind);
      const s = state(kind);
      const out: Record<string, SpireAuthorityState | null> = { active: null, prepared: null, old: null };
      for (const slot of ['active', 'prepared', 'old'] as const) {
        const a = s[slot];
        if (a !== undefined) out[slot] = authorityStateToSpire(a);
      }
      return out;
    });

    impl[`Prepare${label}Authority`] = spireUnary(ctx, t, method('Prepare'), 'admin', async (_req, _c, call) => {
      activeOrInitialising(kind);
      await run(call, `Prepare${label}Authority`, {}, `failed to prepare ${name} authority`);
      const prepared = state(kind).prepared;
      if (prepared === undefined) throw spireError(GrpcStatus.INTERNAL, `failed to prepare ${name} authority`);
      return { prepared_authority: authorityStateToSpire(prepared) };
    });

    impl[`Activate${label}Authority`] = spireUnary<{ authority_id?: string }, unknown>(ctx, t, method('Activate'), 'admin', async (req, _c, call) => {
      const id = req.authority_id ?? '';
      if (id === '') throw invalid('no authority ID provided');
      const target = find(kind, id);
      if (target === undefined || target.status === 'active') throw invalid('unexpected authority ID');
      if (target.status !== 'prepared') {
        throw spireError(GrpcStatus.INTERNAL, 'only Prepared authorities can be activated', `unsupported local authority status: ${target.status.toUpperCase()}`);
      }
      await run(call, `Activate${label}Authority`, { authority_id: id }, `failed to activate ${name} authority`);
      const active = state(kind).active ?? target;
      return { activated_authority: authorityStateToSpire(active) };
    });

    impl[`Taint${label}Authority`] = spireUnary<{ authority_id?: string }, unknown>(ctx, t, method('Taint'), 'admin', async (req, _c, call) => {
      if (kind === 'x509' && hasUpstream()) throw spireError(GrpcStatus.FAILED_PRECONDITION, "local authority can't be tainted if there is an upstream authority");
      const id = req.authority_id ?? '';
      if (id === '') throw invalid('no authority ID provided');
      if (id === state(kind).active?.id) throw invalid('unable to taint current local authority');
      const target = find(kind, id);
      if (target === undefined) throw invalid('unexpected authority ID');
      if (target.status !== 'old') throw invalid('only Old local authorities can be tainted', `unsupported local authority status: ${target.status.toUpperCase()}`);
      // SPIRE's datastore refusal, answered INTERNAL by its handler.
      if (target.tainted) throw spireError(GrpcStatus.INTERNAL, `failed to taint ${name} authority`, kind === 'x509' ? 'root CA is already tainted' : 'key is already tainted');
      await run(call, `Taint${label}Authority`, { authority_id: id }, `failed to taint ${name} authority`);
      // SPIRE reports only the ID of a tainted JWT authority.
      return { tainted_authority: kind === 'x509' ? authorityStateToSpire(target) : { authority_id: id, expires_at: 0, upstream_authority_subject_key_id: '' } };
    });

    impl[`Revoke${label}Authority`] = spireUnary<{ authority_id?: string }, unknown>(ctx, t, method('Revoke'), 'admin', async (req, _c, call) => {
      if (kind === 'x509' && hasUpstream()) throw spireError(GrpcStatus.FAILED_PRECONDITION, "local authority can't be revoked if there is an upstream authority");
      const id = req.authority_id ?? '';
      const s = state(kind);
      const target = id === '' ? undefined : find(kind, id);
      let problem: string | undefined;
      if (id === '') problem = 'no authority ID provided';
      else if (kind === 'jwt' && target?.status === 'prepared') problem = 'unable to use a prepared key';
      else if (id === s.active?.id) problem = 'unable to use current authority';
      else if (target === undefined || target.status !== 'old') {
        problem = kind === 'x509' ? 'only Old local authority can be revoked' : servedBundle(ctx).jwtAuthorities.has(id) ? undefined : 'no JWT authority found with provided authority ID';
      }
      if (problem !== undefined) throw invalid('invalid authority ID', problem);
      if (target === undefined || !target.tainted) {
        throw spireError(GrpcStatus.INTERNAL, `failed to revoke ${name} authority`, kind === 'x509' ? 'it is not possible to revoke an untainted root CA' : 'it is not possible to revoke an untainted key');
      }
      await run(call, `Revoke${label}Authority`, { authority_id: id }, `failed to revoke ${name} authority`);
      return { revoked_authority: { authority_id: id, expires_at: 0, upstream_authority_subject_key_id: '' } };
    });
  }

  for (const op of ['Taint', 'Revoke'] as const) {
    impl[`${op}X509UpstreamAuthority`] = spireUnary(ctx, t, `spire.LocalAuthority/${op}X509UpstreamAuthority`, 'admin', async () => {
      if (!hasUpstream()) throw spireError(GrpcStatus.FAILED_PRECONDITION, 'upstream authority is not configured');
      throw spireError(GrpcStatus.UNIMPLEMENTED, `Mayfly does not ${op.toLowerCase()} upstream authorities; ${op.toLowerCase()} the local X.509 authority it signed after rotating the upstream CA`);
    });
  }
  return impl;
}
