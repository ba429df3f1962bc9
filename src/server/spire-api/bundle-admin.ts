/**
 * @module server/spire-api/bundle-admin
 *
 * SPIRE's Bundle admin RPCs (`spire-server bundle show|list|set|delete|count`): GetBundle,
 * CountBundles, AppendBundle, ListFederatedBundles, GetFederatedBundle and
 * BatchCreate/Update/Set/DeleteFederatedBundle, with SPIRE's checks, per-item statuses and
 * messages (pkg/server/api/bundle/v1 at v1.13.3). Every write goes through Mayfly's own
 * Bundle and Entry handlers (bundle checks, change notices, audit records).
 *
 * Threats it stops (as Mayfly's Bundle service, which it writes through):
 * - overwriting or deleting the server's own trust domain's bundle through the federated
 *   bundle RPCs: refused per item, as SPIRE refuses it;
 * - storing a bundle whose certificates or keys do not parse: refused before the write;
 * - deleting a bundle entries still federate with by accident: RESTRICT (the default)
 *   refuses while any entry names the trust domain.
 *
 * Deliberate differences from SPIRE:
 * - DISSOCIATE / DELETE change the entries first and delete the bundle after, as separate
 *   writes (SPIRE does both in one SQL transaction); an interrupted delete leaves the bundle
 *   in place, never entries federating with a deleted bundle.
 * - PublishJWTAuthority (downstream servers publishing keys upstream) stays UNIMPLEMENTED:
 *   Mayfly has no nested servers.
 */
import { status as GrpcStatus, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { RegistrationEntry } from '../../datastore/datastore.js';
import type { Transport } from '../auth.js';
import { type ApiContext } from '../context.js';
import { bundleToWire, entryToWire, storedBundleToBundle, type WireBundle, type WireStatus } from '../messages.js';
import { appendBundleHandler } from './bundle-append.js';
import { applyBundleMask, bundleToSpireMarked, maskedUpdate, protoToBundleProblem, spireBundleToWire, spireTrustDomain } from './bundle-convert.js';
import { getBundleHandler, getFederatedBundleHandler } from './bundle-get.js';
import type { MayflyImpls } from './delegate.js';
import { callMayfly, spireError, spireItemStatus, spireUnary } from './spire-call.js';
import type { SpireBundle, SpireMask } from './types.js';

type Item = { status: WireStatus; bundle: SpireBundle | null };
const OK: WireStatus = { code: GrpcStatus.OK, message: 'OK' };

type Verb = 'create' | 'update' | 'set';
const OWN_REFUSAL: Record<Verb, string> = {
  create: "creating a federated bundle for the server's own trust domain is not allowed",
  update: "updating a federated bundle for the server's own trust domain is not allowed",
  set: "setting a federated bundle for the server's own trust domain is not allowed",
};
const WRITE_FAILED: Record<Verb, string> = { create: 'unable to create bundle', update: 'failed to update bundle', set: 'failed to set bundle' };

const DELETE_MODES = ['RESTRICT', 'DELETE', 'DISSOCIATE'] as const;
type DeleteMode = (typeof DELETE_MODES)[number];

/** Every entry whose federates_with names `td` (bare name). */
async function entriesFederatingWith(ctx: ApiContext, td: string): Promise<RegistrationEntry[]> {
  const out: RegistrationEntry[] = [];
  let pageToken: string | undefined;
  for (;;) {
    const page = await ctx.ds.listEntries({ byFederatesWith: { trustDomains: [td], match: 'superset' }, pageSize: 500, ...(pageToken !== undefined ? { pageToken } : {}) });
    out.push(...page.items);
    if (page.nextPageToken === '' || page.nextPageToken === undefined) return out;
    pageToken = page.nextPageToken;
  }
}

export function bundleAdminHandlers(ctx: ApiContext, t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const own = ctx.trustDomain;
  const M = mayfly.Bundle ?? {};
  const E = mayfly.Entry ?? {};

  /** One bundle through Mayfly's BatchSetFederatedBundle; its result as SPIRE's. */
  const store = async (call: ServerUnaryCall<unknown, unknown>, w: WireBundle, verb: Verb, mask: SpireMask | null | undefined): Promise<Item> => {
    const res = await callMayfly<{ results: { status: WireStatus; bundle: WireBundle | null }[] }>(M.BatchSetFederatedBundle, call, { bundles: [w] });
    const r = res.results[0];
    if (r === undefined) return { status: { code: GrpcStatus.INTERNAL, message: WRITE_FAILED[verb] }, bundle: null };
    if (r.status.code !== GrpcStatus.OK || r.bundle === null) {
      const prefix = r.status.code === GrpcStatus.INVALID_ARGUMENT ? 'failed to convert bundle' : WRITE_FAILED[verb];
      return { status: { code: r.status.code, message: `${prefix}: ${r.status.message}` }, bundle: null };
    }
    return { status: OK, bundle: applyBundleMask(bundleToSpireMarked(r.bundle), mask) };
  };

  /** SPIRE's per-item checks shared by create, update and set: the bundle as Mayfly's wire bundle. */
  const checked = (b: Partial<SpireBundle> | null | undefined, verb: Verb): WireBundle => {
    const td = spireTrustDomain(b?.trust_domain, 'trust domain argument is not valid');
    if (td.equals(own)) throw spireError(GrpcStatus.INVALID_ARGUMENT, OWN_REFUSAL[verb]);
    const problem = protoToBundleProblem(b);
    if (problem !== undefined) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert bundle', problem);
    return spireBundleToWire(b as SpireBundle);
  };

  type BatchReq = { bundle?: SpireBundle[]; input_mask?: SpireMask | null; output_mask?: SpireMask | null };
  const batch = (verb: Verb, write: (call: ServerUnaryCall<unknown, unknown>, w: WireBundle, req: BatchReq) => Promise<Item>) =>
    spireUnary<BatchReq, { results: Item[] }>(ctx, t, `spire.Bundle/Batch${verb[0]?.toUpperCase()}${verb.slice(1)}FederatedBundle`, 'admin', async (req, _c, call) => {
      const results: Item[] = [];
      for (const b of req.bundle ?? []) {
        try {
          results.push(await write(call as ServerUnaryCall<unknown, unknown>, checked(b, verb), req));
        } catch (err) {
          results.push({ status: spireItemStatus(err), bundle: null });
        }
      }
      return { results };
    });

  const storedWire = async (td: string): Promise<WireBundle | undefined> => {
    const s = await ctx.ds.getBundle(td);
    return s === undefined ? undefined : bundleToWire(storedBundleToBundle(s));
  };

  return {
    GetBundle: getBundleHandler(ctx, t, mayfly),
    GetFederatedBundle: getFederatedBundleHandler(ctx, t),
    AppendBundle: appendBundleHandler(ctx, t),

    CountBundles: spireUnary(ctx, t, 'spire.Bundle/CountBundles', 'admin', async (_req, _c, call) => {
      const res = await callMayfly<{ count: number }>(M.CountBundles, call as ServerUnaryCall<unknown, unknown>, {});
      return { count: res.count };
    }),

    ListFederatedBundles: spireUnary<{ page_size?: number; page_token?: string; output_mask?: SpireMask | null }, unknown>(
      ctx,
      t,
      'spire.Bundle/ListFederatedBundles',
      'admin',
      async (req) => {
        const all = (await ctx.ds.listBundles()).filter((b) => b.trustDomain !== own.name).sort((a, b) => (a.trustDomain < b.trustDomain ? -1 : 1));
        // SPIRE: page_size <= 0 lists everything; the token is opaque (here: the last trust domain sent).
        const size = (req.page_size ?? 0) > 0 ? (req.page_size as number) : all.length;
        const after = req.page_token ?? '';
        const rest = after === '' ? all : all.filter((b) => b.trustDomain > after);
        const page = rest.slice(0, size);
        const bundles: SpireBundle[] = [];
        for (const s of page) {
          try {
            bundles.push(applyBundleMask(bundleToSpireMarked(bundleToWire(storedBundleToBundle(s))), req.output_mask));
          } catch (err) {
            throw spireError(GrpcStatus.INTERNAL, 'failed to convert bundle', err);
          }
        }
        const last = page[page.length - 1];
        return { bundles, next_page_token: rest.length > size && last !== undefined ? last.trustDomain : '' };
      },
    ),

    BatchCreateFederatedBundle: batch('create', async (call, w, req) => {
      if ((await ctx.ds.getBundle(w.trust_domain)) !== undefined) return { status: { code: GrpcStatus.ALREADY_EXISTS, message: 'bundle already exists' }, bundle: null };
      return store(call, w, 'create', req.output_mask);
    }),

    BatchUpdateFederatedBundle: batch('update', async (call, w, req) => {
      const stored = await storedWire(w.trust_domain);
      if (stored === undefined) return { status: { code: GrpcStatus.NOT_FOUND, message: 'bundle not found' }, bundle: null };
      return store(call, maskedUpdate(stored, w, req.input_mask), 'update', req.output_mask);
    }),

    BatchSetFederatedBundle: batch('set', (call, w, req) => store(call, w, 'set', req.output_mask)),

    BatchDeleteFederatedBundle: spireUnary<{ trust_domains?: string[]; mode?: string | number }, unknown>(ctx, t, 'spire.Bundle/BatchDeleteFederatedBundle', 'admin', async (req, _c, c) => {
      const call = c as ServerUnaryCall<unknown, unknown>;
      const mode = (req.mode ?? 'RESTRICT') as DeleteMode;
      if (!DELETE_MODES.includes(mode)) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to parse deletion mode', `unhandled delete mode "${String(req.mode)}"`);
      const results: { status: WireStatus; trust_domain: string }[] = [];
      for (const raw of req.trust_domains ?? []) {
        const trust_domain = typeof raw === 'string' ? raw : '';
        try {
          const td = spireTrustDomain(raw, 'trust domain argument is not valid');
          if (td.equals(own)) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'removing the bundle for the server trust domain is not allowed');
          if ((await ctx.ds.getBundle(td.name)) === undefined) throw spireError(GrpcStatus.NOT_FOUND, 'bundle not found');
          const using = await entriesFederatingWith(ctx, td.name);
          if (using.length > 0) {
            if (mode === 'RESTRICT') {
              // SPIRE's datastore message, kept as operators' runbooks match it.
              throw spireError(GrpcStatus.FAILED_PRECONDITION, 'failed to delete federated bundle', `datastore-sql: cannot delete bundle; federated with ${using.length} registration entries`);
            }
            const res =
              mode === 'DISSOCIATE'
                ? await callMayfly<{ results: { status: WireStatus }[] }>(E.BatchUpdateEntry, call, {
                    entries: using.map((e) => ({ ...entryToWire(e), federates_with: e.federatesWith.filter((f) => f !== td.name) })),
                  })
                : await callMayfly<{ results: { status: WireStatus }[] }>(E.BatchDeleteEntry, call, { ids: using.map((e) => e.entryId) });
            const bad = res.results.find((r) => r.status.code !== GrpcStatus.OK);
            if (bad !== undefined) throw spireError(bad.status.code, 'failed to delete federated bundle', bad.status.message);
          }
          const res = await callMayfly<{ results: { status: WireStatus }[] }>(M.BatchDeleteFederatedBundle, call, { trust_domains: [td.name] });
          const r = res.results[0];
          if (r === undefined) throw spireError(GrpcStatus.INTERNAL, 'failed to delete federated bundle');
          if (r.status.code === GrpcStatus.NOT_FOUND) throw spireError(GrpcStatus.NOT_FOUND, 'bundle not found');
          if (r.status.code !== GrpcStatus.OK) throw spireError(r.status.code, 'failed to delete federated bundle', r.status.message);
          results.push({ status: OK, trust_domain });
        } catch (err) {
          results.push({ status: spireItemStatus(err), trust_domain });
        }
      }
      return { results };
    }),
  };
}
