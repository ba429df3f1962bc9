/**
 * @module server/spire-api/trustdomain
 *
 * SPIRE's TrustDomain RPCs (`spire-server federation create|show|list|update|delete|
 * refresh`): SPIRE's checks, per-item statuses and messages (pkg/server/api/trustdomain/v1
 * at v1.13.3), then Mayfly's own TrustDomain handler for each item (its checks of the
 * endpoint and profile, the bootstrap bundle, the fetcher's reload, audit records).
 *
 * Threats it stops (with Mayfly's handler underneath): a relationship for the server's own
 * trust domain (a peer's endpoint would overwrite our bundle), a bootstrap bundle of another
 * trust domain than the relationship's, an endpoint URL that is not https, has no host or
 * hides the host behind user info.
 *
 * Deliberate differences from SPIRE:
 * - Served on the admin socket only, as Mayfly's TrustDomain service (federation decides
 *   whose certificates every workload accepts); SPIRE also serves admin SVIDs over TCP.
 * - A store failure keeps its reason after SPIRE's prefix ("failed to create federation
 *   relationship: …"), with SPIRE's code INTERNAL; a refusal of Mayfly's own stricter
 *   checks is INVALID_ARGUMENT "failed to convert federation relationship: …".
 * - A page size above Mayfly's limit is clamped (SPIRE has none), so a client pages on.
 */
import { status as GrpcStatus, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { WireFederationRelationship, WireStatus } from '../messages.js';
import { spireTrustDomain } from './bundle-convert.js';
import type { MayflyImpls } from './delegate.js';
import { callMayfly, SpireStatus, spireError, spireItemStatus, spireUnary } from './spire-call.js';
import { maskedRelationshipUpdate, relationshipFromSpire, relationshipToSpire, type SpireFederationRelationship } from './trustdomain-convert.js';
import type { SpireMask } from './types.js';

type Call = ServerUnaryCall<unknown, unknown>;
type Item = { status: WireStatus; federation_relationship: SpireFederationRelationship | null };
const OK: WireStatus = { code: GrpcStatus.OK, message: 'OK' };

export function trustDomainHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const T = mayfly.TrustDomain ?? {};
  const own = ctx.trustDomain;

  const getMayfly = (call: Call, td: string): Promise<WireFederationRelationship> => callMayfly(T.GetFederationRelationship, call, { trust_domain: td });

  /** One relationship through Mayfly's BatchCreate/BatchUpdate; its result as SPIRE's. */
  const write = async (call: Call, method: 'BatchCreateFederationRelationship' | 'BatchUpdateFederationRelationship', rel: WireFederationRelationship, verb: string, mask: SpireMask | null | undefined): Promise<Item> => {
    const res = await callMayfly<{ results: { status: WireStatus; federation_relationship: WireFederationRelationship | null }[] }>(T[method], call, { federation_relationships: [rel] });
    const r = res.results[0];
    if (r === undefined) throw spireError(GrpcStatus.INTERNAL, `failed to ${verb} federation relationship`);
    if (r.status.code === GrpcStatus.INVALID_ARGUMENT) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert federation relationship', r.status.message);
    if (r.status.code !== GrpcStatus.OK || r.federation_relationship === null) throw spireError(GrpcStatus.INTERNAL, `failed to ${verb} federation relationship`, r.status.message);
    return { status: OK, federation_relationship: relationshipToSpire(r.federation_relationship, mask) };
  };

  type BatchReq = { federation_relationships?: SpireFederationRelationship[]; input_mask?: SpireMask | null; output_mask?: SpireMask | null };
  const batch = (name: string, one: (call: Call, rel: WireFederationRelationship, req: BatchReq) => Promise<Item>) =>
    spireUnary<BatchReq, { results: Item[] }>(ctx, t, `spire.TrustDomain/${name}`, 'admin', async (req, _c, call) => {
      const results: Item[] = [];
      for (const f of req.federation_relationships ?? []) {
        try {
          const converted = relationshipFromSpire(f);
          if ('problem' in converted) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert federation relationship', converted.problem);
          results.push(await one(call as Call, converted.rel, req));
        } catch (err) {
          results.push({ status: spireItemStatus(err), federation_relationship: null });
        }
      }
      return { results };
    });

  return {
    ListFederationRelationships: spireUnary<{ page_size?: number; page_token?: string; output_mask?: SpireMask | null }, unknown>(
      ctx,
      t,
      'spire.TrustDomain/ListFederationRelationships',
      'admin',
      async (req, _c, call) => {
        const list = (token: string, size: number) =>
          callMayfly<{ federation_relationships: WireFederationRelationship[]; next_page_token: string }>(T.ListFederationRelationships, call as Call, { page_size: size, page_token: token });
        const fail = (err: unknown): SpireStatus => spireError(GrpcStatus.INTERNAL, 'failed to list federation relationships', err);
        if ((req.page_size ?? 0) > 0) {
          // SPIRE has no upper limit; Mayfly's is clamped to, and the client pages on.
          const res = await list(req.page_token ?? '', Math.min(req.page_size as number, ctx.limits.maxPageSize)).catch((e: unknown) => Promise.reject(fail(e)));
          return { federation_relationships: res.federation_relationships.map((r) => relationshipToSpire(r, req.output_mask)), next_page_token: res.next_page_token };
        }
        // SPIRE: no page size, every relationship in one answer.
        const all: WireFederationRelationship[] = [];
        let token = '';
        do {
          const res = await list(token, ctx.limits.maxPageSize).catch((e: unknown) => Promise.reject(fail(e)));
          all.push(...res.federation_relationships);
          token = res.next_page_token;
        } while (token !== '');
        return { federation_relationships: all.map((r) => relationshipToSpire(r, req.output_mask)), next_page_token: '' };
      },
    ),

    GetFederationRelationship: spireUnary<{ trust_domain?: string; output_mask?: SpireMask | null }, unknown>(ctx, t, 'spire.TrustDomain/GetFederationRelationship', 'admin', async (req, _c, call) => {
      const td = spireTrustDomain(req.trust_domain, 'failed to parse trust domain');
      try {
        return relationshipToSpire(await getMayfly(call as Call, td.name), req.output_mask);
      } catch (err) {
        if (err instanceof SpireStatus && err.code === GrpcStatus.NOT_FOUND) throw spireError(GrpcStatus.NOT_FOUND, 'federation relationship does not exist');
        throw spireError(GrpcStatus.INTERNAL, 'failed to fetch federation relationship', err);
      }
    }),

    BatchCreateFederationRelationship: batch('BatchCreateFederationRelationship', async (call, rel, req) => {
      if (rel.trust_domain === own.name) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'unable to create federation relationship for server trust domain');
      return write(call, 'BatchCreateFederationRelationship', rel, 'create', req.output_mask);
    }),

    BatchUpdateFederationRelationship: batch('BatchUpdateFederationRelationship', async (call, rel, req) => {
      let merged = rel;
      if (req.input_mask !== null && req.input_mask !== undefined) {
        let stored: WireFederationRelationship;
        try {
          stored = await getMayfly(call, rel.trust_domain);
        } catch (err) {
          throw spireError(GrpcStatus.INTERNAL, 'failed to update federation relationship', err);
        }
        merged = maskedRelationshipUpdate(stored, rel, req.input_mask);
      }
      return write(call, 'BatchUpdateFederationRelationship', merged, 'update', req.output_mask);
    }),

    BatchDeleteFederationRelationship: spireUnary<{ trust_domains?: string[] }, unknown>(ctx, t, 'spire.TrustDomain/BatchDeleteFederationRelationship', 'admin', async (req, _c, call) => {
      const results: { status: WireStatus; trust_domain: string }[] = [];
      for (const raw of req.trust_domains ?? []) {
        const given = typeof raw === 'string' ? raw : '';
        if (given === '') {
          results.push({ status: { code: GrpcStatus.INVALID_ARGUMENT, message: 'missing trust domain' }, trust_domain: given });
          continue;
        }
        let name: string;
        try {
          name = spireTrustDomain(given, 'failed to parse trust domain').name;
        } catch (err) {
          results.push({ status: spireItemStatus(err), trust_domain: given });
          continue;
        }
        const notFound = { status: { code: GrpcStatus.NOT_FOUND, message: 'federation relationship not found' }, trust_domain: name };
        // There is never a relationship with ourselves (Mayfly's handler words it as a refusal).
        if (name === own.name) {
          results.push(notFound);
          continue;
        }
        const res = await callMayfly<{ results: { status: WireStatus }[] }>(T.BatchDeleteFederationRelationship, call as Call, { trust_domains: [name] });
        const r = res.results[0];
        if (r?.status.code === GrpcStatus.OK) results.push({ status: OK, trust_domain: name });
        else if (r?.status.code === GrpcStatus.NOT_FOUND) results.push(notFound);
        else results.push({ status: { code: GrpcStatus.INTERNAL, message: `failed to delete federation relationship: ${r?.status.message ?? 'no result'}` }, trust_domain: name });
      }
      return { results };
    }),

    RefreshBundle: spireUnary<{ trust_domain?: string }, object>(ctx, t, 'spire.TrustDomain/RefreshBundle', 'admin', async (req, _c, call) => {
      const td = spireTrustDomain(req.trust_domain, 'failed to parse trust domain');
      try {
        await callMayfly(T.RefreshBundle, call as Call, { trust_domain: td.name });
      } catch (err) {
        if (err instanceof SpireStatus && err.code === GrpcStatus.NOT_FOUND) throw spireError(GrpcStatus.NOT_FOUND, `no relationship with trust domain "${td.name}"`);
        throw spireError(GrpcStatus.INTERNAL, 'failed to refresh bundle', err);
      }
      return {};
    }),
  };
}
