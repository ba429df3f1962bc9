/**
 * @module server/api/bundle
 *
 * The `Bundle` service: the server trust domain's own bundle (the CA's, merged with the other
 * servers' authorities when servers share a datastore; anyone may read it, as with SPIRE) and the federated bundles of other trust domains (admins only). Every
 * federated bundle is parsed and checked (certificates, keys, trust domain name) before it
 * is stored; the server's own trust domain cannot be overwritten through this service.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import { checkBatch, pageSizeFromWire, pageTokenFromWire, servedBundle, unary, type ApiContext } from '../context.js';
import { bundleFromWire, bundleToWire, storedBundleToBundle, trustDomainFromWire, type WireBundle } from '../messages.js';
import { badRequest, itemStatusOf, notFound, OK_STATUS, type ItemStatus } from '../status.js';

export function bundleService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  const own = ctx.trustDomain.name;
  const federatedName = (raw: string | undefined): string => {
    const td = trustDomainFromWire(raw);
    if (td.name === own) throw badRequest(`${own} is the server's own trust domain, not a federated one; its bundle is managed by the CA`);
    return td.name;
  };
  const federated = async () => (await ctx.ds.listBundles()).filter((b) => b.trustDomain !== own);
  return {
    GetBundle: unary(ctx, t, 'GetBundle', 'public', async () => bundleToWire(servedBundle(ctx))),

    CountBundles: unary(ctx, t, 'CountBundles', 'admin', async () => ({ count: (await federated()).length + 1 })),

    ListFederatedBundles: unary<{ page_size: number; page_token: string }, unknown>(ctx, t, 'ListFederatedBundles', 'admin', async (req) => {
      const size = pageSizeFromWire(ctx, req.page_size) ?? 500;
      const after = pageTokenFromWire(req.page_token);
      const all = (await federated()).filter((b) => after === undefined || b.trustDomain > after);
      const page = all.slice(0, size);
      const last = page[page.length - 1];
      return {
        bundles: page.map((b) => bundleToWire(storedBundleToBundle(b))),
        next_page_token: all.length > size && last !== undefined ? last.trustDomain : '',
      };
    }),

    GetFederatedBundle: unary<{ trust_domain: string }, WireBundle>(ctx, t, 'GetFederatedBundle', 'admin', async (req) => {
      const name = federatedName(req.trust_domain);
      const stored = await ctx.ds.getBundle(name);
      if (stored === undefined) throw notFound(`no federated bundle for ${name}`);
      return bundleToWire(storedBundleToBundle(stored));
    }),

    BatchSetFederatedBundle: unary<{ bundles: WireBundle[] }, unknown>(ctx, t, 'BatchSetFederatedBundle', 'admin', async (req) => {
      const list = req.bundles ?? [];
      checkBatch(ctx, list.length, 'bundles');
      const results: { status: ItemStatus; bundle: WireBundle | null }[] = [];
      let any = false;
      for (const w of list) {
        try {
          federatedName(w?.trust_domain);
          const b = bundleFromWire(w);
          await ctx.ds.setBundle({ trustDomain: b.trustDomain.name, bundle: b.toJson(), sequence: b.sequence ?? 0 });
          results.push({ status: OK_STATUS, bundle: bundleToWire(b) });
          any = true;
        } catch (err) {
          results.push({ status: itemStatusOf(err), bundle: null });
        }
      }
      if (any) ctx.hub.publish({ kind: 'bundles' });
      return { results };
    }),

    BatchDeleteFederatedBundle: unary<{ trust_domains: string[] }, unknown>(ctx, t, 'BatchDeleteFederatedBundle', 'admin', async (req) => {
      const list = req.trust_domains ?? [];
      checkBatch(ctx, list.length, 'trust_domains');
      const results: { status: ItemStatus; trust_domain: string }[] = [];
      let any = false;
      for (const raw of list) {
        try {
          const name = federatedName(raw);
          if ((await ctx.ds.getBundle(name)) === undefined) throw notFound(`no federated bundle for ${name}`);
          await ctx.ds.deleteBundle(name);
          results.push({ status: OK_STATUS, trust_domain: name });
          any = true;
        } catch (err) {
          results.push({ status: itemStatusOf(err), trust_domain: typeof raw === 'string' ? raw.slice(0, 255) : '' });
        }
      }
      if (any) ctx.hub.publish({ kind: 'bundles' });
      return { results };
    }),
  };
}
