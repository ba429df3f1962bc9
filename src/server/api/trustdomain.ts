/**
 * @module server/api/trustdomain
 *
 * The `TrustDomain` service (SPIRE's `spire.api.server.trustdomain.v1`): federation
 * relationships with foreign trust domains, and RefreshBundle, which has the peer bundle
 * fetcher (federation/poller) fetch one peer's bundle now.
 *
 * Threats it stops:
 * - A relationship that would let a peer's endpoint overwrite our own trust domain's
 *   bundle: a relationship for the server's own trust domain is refused, as is a bootstrap
 *   bundle for another trust domain than the relationship's.
 * - An endpoint URL or profile the fetcher would misuse (plain http, userinfo hiding the
 *   real host, a missing endpoint SPIFFE ID): checked by federation/profile before anything
 *   is stored.
 * - Remote administration of trust: relationships decide whose certificates every workload
 *   accepts, so the service answers on the admin socket only, never over TCP (not even to
 *   an admin SVID).
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { FederationRelationship, NewFederationRelationship } from '../../datastore/datastore.js';
import { bundleEndpointProfile, parseBundleEndpointUrl } from '../../federation/profile.js';
import type { Bundle } from '../../spiffe/bundle/bundle.js';
import type { Transport } from '../auth.js';
import { checkBatch, pageSizeFromWire, pageTokenFromWire, unary, type ApiContext } from '../context.js';
import { bundleFromWire, relationshipToWire, storedBundleToBundle, trustDomainFromWire, type WireFederationRelationship } from '../messages.js';
import { badRequest, denied, itemStatusOf, notFound, OK_STATUS, type ItemStatus } from '../status.js';

/** A relationship from the wire, checked: its record and the bootstrap bundle it carries, if any. */
export function relationshipFromWire(ctx: ApiContext, w: Partial<WireFederationRelationship> | undefined | null): { rel: NewFederationRelationship; bundle?: Bundle } {
  if (w === undefined || w === null) throw badRequest('federation relationship is missing');
  const td = trustDomainFromWire(w.trust_domain);
  if (td.equals(ctx.trustDomain)) throw badRequest(`${td.name} is the server's own trust domain: a federation relationship is with a foreign trust domain`);
  // Checked, then stored as given (Node's URL would add a '/' to a bare origin).
  const url = w.bundle_endpoint_url ?? '';
  parseBundleEndpointUrl(url);
  const which = w.bundle_endpoint_profile ?? (w.https_spiffe ? 'https_spiffe' : w.https_web ? 'https_web' : undefined);
  if (which === undefined) throw badRequest('bundle_endpoint_profile is missing: set https_web or https_spiffe');
  const profile = bundleEndpointProfile(which, which === 'https_spiffe' ? (w.https_spiffe?.endpoint_spiffe_id ?? '') : undefined);
  const rel: NewFederationRelationship = {
    trustDomain: td.name,
    bundleEndpointUrl: url,
    bundleEndpointProfile: profile.name,
    endpointSpiffeId: profile.name === 'https_spiffe' ? profile.endpointSpiffeId.toString() : '',
  };
  if (w.trust_domain_bundle === undefined || w.trust_domain_bundle === null) return { rel };
  const bundle = bundleFromWire(w.trust_domain_bundle);
  if (!bundle.trustDomain.equals(td)) {
    throw badRequest(`trust_domain_bundle is for ${bundle.trustDomain.name}, the relationship for ${td.name}: a bootstrap bundle must be the peer's own`);
  }
  return { rel, bundle };
}

export function trustDomainService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  const own = ctx.trustDomain.name;
  const localOnly = (method: string): void => {
    if (t !== 'admin-socket') throw denied(`${method} is served on the admin socket only`);
  };
  const withBundle = async (r: FederationRelationship) => {
    const stored = await ctx.ds.getBundle(r.trustDomain);
    let bundle: Bundle | undefined;
    if (stored !== undefined) {
      try {
        bundle = storedBundleToBundle(stored);
      } catch {
        bundle = undefined;
      }
    }
    return relationshipToWire(r, bundle);
  };
  const storeBootstrap = async (bundle: Bundle | undefined): Promise<void> => {
    if (bundle === undefined) return;
    await ctx.ds.setBundle({ trustDomain: bundle.trustDomain.name, bundle: bundle.toJson(), sequence: bundle.sequence ?? 0 });
  };
  const changed = (relationships: boolean, bundles: boolean): void => {
    if (bundles) ctx.hub.publish({ kind: 'bundles' });
    if (relationships) ctx.federation?.relationshipsChanged();
  };

  type Result = { status: ItemStatus; federation_relationship: WireFederationRelationship | null };

  /** BatchCreate/BatchUpdate: each item on its own, its bootstrap bundle stored after it. */
  const batchWrite = (method: string, write: (rel: ReturnType<typeof relationshipFromWire>['rel']) => Promise<FederationRelationship>) =>
    unary<{ federation_relationships: WireFederationRelationship[] }, unknown>(ctx, t, method, 'admin', async (req) => {
      localOnly(method);
      const list = req.federation_relationships ?? [];
      checkBatch(ctx, list.length, 'federation_relationships');
      const results: Result[] = [];
      let rels = false;
      let bundles = false;
      for (const w of list) {
        try {
          const { rel, bundle } = relationshipFromWire(ctx, w);
          const written = await write(rel);
          rels = true;
          await storeBootstrap(bundle);
          bundles ||= bundle !== undefined;
          results.push({ status: OK_STATUS, federation_relationship: await withBundle(written) });
        } catch (err) {
          results.push({ status: itemStatusOf(err), federation_relationship: null });
        }
      }
      changed(rels, bundles);
      return { results };
    });

  return {
    ListFederationRelationships: unary<{ page_size: number; page_token: string }, unknown>(ctx, t, 'ListFederationRelationships', 'admin', async (req) => {
      localOnly('ListFederationRelationships');
      const pageSize = pageSizeFromWire(ctx, req.page_size);
      const pageToken = pageTokenFromWire(req.page_token);
      const page = await ctx.ds.listFederationRelationships({ ...(pageSize !== undefined ? { pageSize } : {}), ...(pageToken !== undefined ? { pageToken } : {}) });
      const out: WireFederationRelationship[] = [];
      for (const r of page.items) out.push(await withBundle(r));
      return { federation_relationships: out, next_page_token: page.nextPageToken };
    }),

    GetFederationRelationship: unary<{ trust_domain: string }, WireFederationRelationship>(ctx, t, 'GetFederationRelationship', 'admin', async (req) => {
      localOnly('GetFederationRelationship');
      const td = trustDomainFromWire(req.trust_domain).name;
      const r = await ctx.ds.getFederationRelationship(td);
      if (r === undefined) throw notFound(`no federation relationship with ${td}`);
      return withBundle(r);
    }),

    BatchCreateFederationRelationship: batchWrite('BatchCreateFederationRelationship', (rel) => ctx.ds.createFederationRelationship(rel)),
    BatchUpdateFederationRelationship: batchWrite('BatchUpdateFederationRelationship', (rel) => ctx.ds.updateFederationRelationship(rel)),

    BatchDeleteFederationRelationship: unary<{ trust_domains: string[] }, unknown>(ctx, t, 'BatchDeleteFederationRelationship', 'admin', async (req) => {
      localOnly('BatchDeleteFederationRelationship');
      const list = req.trust_domains ?? [];
      checkBatch(ctx, list.length, 'trust_domains');
      const results: { status: ItemStatus; trust_domain: string }[] = [];
      let any = false;
      for (const raw of list) {
        try {
          const td = trustDomainFromWire(raw).name;
          if (td === own) throw badRequest(`${own} is the server's own trust domain: there is no federation relationship with it`);
          await ctx.ds.deleteFederationRelationship(td);
          any = true;
          results.push({ status: OK_STATUS, trust_domain: td });
        } catch (err) {
          results.push({ status: itemStatusOf(err), trust_domain: typeof raw === 'string' ? raw.slice(0, 255) : '' });
        }
      }
      changed(any, false);
      return { results };
    }),

    RefreshBundle: unary<{ trust_domain: string }, object>(ctx, t, 'RefreshBundle', 'admin', async (req) => {
      localOnly('RefreshBundle');
      const td = trustDomainFromWire(req.trust_domain).name;
      if ((await ctx.ds.getFederationRelationship(td)) === undefined) throw notFound(`no federation relationship with ${td}`);
      if (ctx.federation === undefined) throw badRequest('this server runs no peer bundle fetcher');
      await ctx.federation.refresh(td);
      return {};
    }),
  };
}
