/**
 * @module server/api/svid
 *
 * The `SVID` service: admins mint SVIDs for any SPIFFE ID of the trust domain; agents get
 * SVIDs only for entries they are authorised for (server/authorized), and the identity,
 * DNS names and lifetime always come from the entry (for an entry template, the ID is the
 * one the server derives from it: server/template-identity). A CSR asking for another SPIFFE ID
 * or for cA=true changes nothing: only its public key is used (server/api/issue for one,
 * ca/mint `mintX509SvidsFromCsrs` for a batch).
 *
 * Batch signing runs its crypto where ctx.csrMinter puts it (server/csr-pool: worker
 * threads; inline without one), with the authority snapshot taken when the request arrived
 * (ServerCa.x509MintAuthority); every SVID is verified against the bundle before it is
 * returned, on whichever thread minted it.
 */
import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { CaError } from '../../ca/ca-error.js';
import { mintAuthorityStillUsable, mintX509SvidsFromCsrs } from '../../ca/mint.js';
import { dnsNameProblem, MAX_ENTRY_DNS_NAMES, MAX_ENTRY_TTL_SECONDS, type RegistrationEntry } from '../../registration/entry.js';
import { SpiffeId } from '../../spiffe/id.js';
import { MAX_JWT_SVID_AUDIENCE_LENGTH as MAX_AUDIENCE_LENGTH } from '../../spiffe/jwt/limits.js';
import type { Transport } from '../auth.js';
import { authorizedEntries } from '../authorized.js';
import { checkBatch, unary, type ApiContext, type IssuanceSink } from '../context.js';
import type { WireJwtSvid, WireX509Svid } from '../messages.js';
import { badRequest, denied, entryNotAuthorized, grpcCodeOf, itemStatusOf, OK_STATUS, type ItemStatus } from '../status.js';
import type { CsrMintItem, CsrMinter, X509MintAuthority } from '../csr-pool.js';

/** Inline, the same `mintX509SvidsFromCsrs` the pool runs on its workers (a context without a pool, e.g. a test's). */
const inlineMint: Pick<CsrMinter, 'mint'> = { mint: async (authority, now, items) => mintX509SvidsFromCsrs(authority, items, now) };
import { checkNotShadowing, identityForRequest, type TemplateRequest } from '../template-identity.js';
import { csrFromWire, issueX509Svid, type IssueX509SvidRequest } from './issue.js';
import { revokeX509Svids, type RevokeX509SvidsRequest } from './revoke.js';

function workloadIdFromWire(ctx: ApiContext, id: string | undefined): SpiffeId {
  if (typeof id !== 'string' || id === '') throw badRequest('spiffe_id is missing');
  const parsed = SpiffeId.parseWorkload(id);
  if (!parsed.memberOf(ctx.trustDomain)) throw badRequest(`${id} is not in the trust domain ${ctx.trustDomain.name}`);
  return parsed;
}

function ttlFromWire(ttl: number | undefined, fallback: number): number {
  if (ttl === undefined || ttl === 0) return fallback;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > MAX_ENTRY_TTL_SECONDS) throw badRequest(`ttl must be from 0 to ${MAX_ENTRY_TTL_SECONDS} seconds`);
  return ttl;
}

function audienceFromWire(ctx: ApiContext, aud: string[] | undefined): string[] {
  const list = aud ?? [];
  if (list.length === 0) throw badRequest('audience must hold at least one value');
  if (list.length > ctx.limits.maxAudiences) throw badRequest(`audience holds ${list.length} values; the limit is ${ctx.limits.maxAudiences}`);
  for (const a of list) {
    if (typeof a !== 'string' || a === '' || a.length > MAX_AUDIENCE_LENGTH) throw badRequest(`every audience must be 1..${MAX_AUDIENCE_LENGTH} characters`);
  }
  return list;
}

async function jwtSvid(ctx: ApiContext, spiffeId: SpiffeId, audience: string[], ttlSeconds: number): Promise<WireJwtSvid> {
  const { token, expiresAt } = ctx.ca.signJwtSvid({ spiffeId, audience, ttlSeconds });
  const exp = Math.floor(expiresAt.getTime() / 1000);
  const iat = Math.floor(ctx.now().getTime() / 1000);
  return { spiffe_id: spiffeId.toString(), token, expires_at: exp, issued_at: iat };
}

async function authorizedEntryMap(ctx: ApiContext, agent: Parameters<typeof authorizedEntries>[1]): Promise<ReadonlyMap<string, RegistrationEntry>> {
  if (ctx.authorizedCache) return ctx.authorizedCache.get(ctx, agent);
  return new Map((await authorizedEntries(ctx, agent)).map((e) => [e.entryId, e]));
}

type BatchResult = { status: ItemStatus; svid: WireX509Svid | null };

/**
 * Mints the authorised items of a batch through `pool` (ctx.csrMinter's workers, or inline):
 * one authority snapshot for the whole batch, then CSR checks, mint and verification.
 */
async function mintBatch(ctx: ApiContext, pool: Pick<CsrMinter, 'mint'>, reqs: IssueX509SvidRequest[], results: BatchResult[], slotOf: number[], issued: IssuanceSink, agentId: string): Promise<void> {
  const items: CsrMintItem[] = [];
  const itemSlot: number[] = [];
  const itemEntry: string[] = [];
  reqs.forEach((r, k) => {
    try {
      items.push({ csr: csrFromWire(r.csr), spiffeId: r.spiffeId.toString(), ttlSeconds: r.ttlSeconds, dnsNames: r.dnsNames ?? [] });
      itemSlot.push(slotOf[k] as number);
      itemEntry.push(r.entryId ?? '');
    } catch (err) {
      results[slotOf[k] as number] = { status: itemStatusOf(err), svid: null };
    }
  });
  if (items.length === 0) return;
  let snapshot: { authority: X509MintAuthority; now: Date };
  try {
    snapshot = ctx.ca.x509MintAuthority();
  } catch (err) {
    for (const i of itemSlot) results[i] = { status: itemStatusOf(err), svid: null };
    return;
  }
  const { authority, now } = snapshot;
  let outcomes = await pool.mint(authority, now, items);
  if (!mintAuthorityStillUsable(authority, { taintedX509: ctx.ca.taintedAuthorities().x509, bundle: ctx.ca.getBundle() })) {
    // Tainted or revoked while the batch was on the workers: the agent asks again and gets
    // SVIDs from the authority active then.
    const retry = new CaError('ERR_CA_NOT_READY', `X.509 authority ${authority.authorityId} was tainted or revoked while this batch was signed; retry`);
    outcomes = outcomes.map(() => ({ error: retry }));
  }
  ctx.ca.noteX509SvidsMinted?.(outcomes.filter((o) => !('error' in o)).length);
  // Every SVID of the batch is recorded before any leaves the server, so revoking by SPIFFE
  // ID or entry finds it (issue 10): the unary wrapper writes these records (with the audit
  // records, in one write, when the ledger is on) before it answers; a store that cannot
  // record them fails the call.
  const records = outcomes.flatMap((o, k) =>
    'error' in o ? [] : [{ serialHex: o.serialHex, spiffeId: (items[k] as CsrMintItem).spiffeId, entryId: itemEntry[k] ?? '', authorityId: authority.authorityId, notAfter: o.notAfter, agentId }],
  );
  if (records.length > 0) issued.add(records);
  let noted = authority.intermediates.length === 0; // every chain of the batch has the same intermediates: note them once
  outcomes.forEach((o, k) => {
    const i = itemSlot[k] as number;
    const item = items[k] as CsrMintItem;
    if ('error' in o) {
      // The caller gets a generic message for a server fault; the operator gets the detail.
      if (grpcCodeOf(o.error) === status.INTERNAL) ctx.logger.error({ err: o.error, spiffeId: item.spiffeId }, 'minting an X.509-SVID failed');
      results[i] = { status: itemStatusOf(o.error), svid: null };
      return;
    }
    const chain = [o.leaf, ...authority.intermediates];
    if (!noted) {
      ctx.noteChain(chain);
      noted = true;
    }
    results[i] = { status: OK_STATUS, svid: { spiffe_id: item.spiffeId, cert_chain: chain, expires_at: o.notAfter, serial_number: o.serialHex } };
  });
}

function notAuthorized(entryId: unknown): Error {
  const shown = typeof entryId === 'string' ? JSON.stringify(entryId.slice(0, 255)) : 'given';
  // The same answer whether the entry exists or not: an agent learns nothing about others' entries.
  return entryNotAuthorized(`entry ${shown} is not authorised for this agent`);
}

export function svidService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  return {
    MintX509SVID: unary<{ csr: Buffer; spiffe_id: string; ttl: number; dns_names: string[] }, unknown>(ctx, t, 'MintX509SVID', 'admin', async (req) => {
      const spiffeId = workloadIdFromWire(ctx, req.spiffe_id);
      const dns = req.dns_names ?? [];
      if (dns.length > MAX_ENTRY_DNS_NAMES) throw badRequest(`dns_names holds ${dns.length} names; the limit is ${MAX_ENTRY_DNS_NAMES}`);
      for (const [i, d] of dns.entries()) {
        const p = dnsNameProblem(d);
        if (p !== undefined) throw badRequest(`dns_names[${i}] ${p}`);
      }
      const issued = await issueX509Svid(ctx, { spiffeId, csr: req.csr, ttlSeconds: ttlFromWire(req.ttl, ctx.limits.defaultX509SvidTtl), dnsNames: dns });
      return { svid: issued.wire };
    }),

    MintJWTSVID: unary<{ spiffe_id: string; audience: string[]; ttl: number }, unknown>(ctx, t, 'MintJWTSVID', 'admin', async (req) => {
      const spiffeId = workloadIdFromWire(ctx, req.spiffe_id);
      return { svid: await jwtSvid(ctx, spiffeId, audienceFromWire(ctx, req.audience), ttlFromWire(req.ttl, ctx.limits.defaultJwtSvidTtl)) };
    }),

    BatchNewX509SVID: unary<{ params: ({ entry_id: string; csr: Buffer } & TemplateRequest)[] }, unknown>(ctx, t, 'BatchNewX509SVID', 'agent', async (req, caller, _call, issued) => {
      if (caller.kind !== 'agent') throw denied('BatchNewX509SVID is for attested agents only');
      const params = req.params ?? [];
      checkBatch(ctx, params.length, 'params');
      const allowed = await authorizedEntryMap(ctx, caller.agent);
      const results: BatchResult[] = [];
      // Authorise every item first; only authorised ones reach the CSR checks and the CA.
      const reqs: IssueX509SvidRequest[] = [];
      const slotOf: number[] = [];
      for (const p of params) {
        try {
          const entry = allowed.get(p?.entry_id);
          if (entry === undefined) throw notAuthorized(p?.entry_id);
          const lapsed = ctx.certification?.refusal(entry);
          if (lapsed !== undefined) throw denied(lapsed);
          const spiffeId = identityForRequest(ctx, entry, p, caller.agentId.toString());
          await checkNotShadowing(ctx, entry, spiffeId, allowed, caller.agentId.toString());
          reqs.push({
            spiffeId,
            csr: p.csr,
            ttlSeconds: entry.x509SvidTtl || ctx.limits.defaultX509SvidTtl,
            dnsNames: entry.dnsNames,
            entryId: entry.entryId,
          });
          slotOf.push(results.length);
          results.push({ status: OK_STATUS, svid: null });
        } catch (err) {
          results.push({ status: itemStatusOf(err), svid: null });
        }
      }
      const agentId = caller.agentId.toString();
      await mintBatch(ctx, ctx.csrMinter ?? inlineMint, reqs, results, slotOf, issued, agentId);
      if (ctx.usage !== undefined) {
        reqs.forEach((r, k) => {
          if (results[slotOf[k]!]?.status.code === 0 && r.entryId !== undefined) ctx.usage!.issued(r.entryId, agentId);
        });
      }
      return { results };
    }),

    RevokeX509SVIDs: unary<RevokeX509SvidsRequest, unknown>(ctx, t, 'RevokeX509SVIDs', 'admin', (req) => revokeX509Svids(ctx, req)),

    NewJWTSVID: unary<{ entry_id: string; audience: string[] } & TemplateRequest, unknown>(ctx, t, 'NewJWTSVID', 'agent', async (req, caller) => {
      if (caller.kind !== 'agent') throw denied('NewJWTSVID is for attested agents only');
      const audience = audienceFromWire(ctx, req.audience);
      const allowedMap = await authorizedEntryMap(ctx, caller.agent);
      const entry = allowedMap.get(req.entry_id);
      if (entry === undefined) throw notAuthorized(req.entry_id);
      const lapsed = ctx.certification?.refusal(entry);
      if (lapsed !== undefined) throw denied(lapsed);
      const spiffeId = identityForRequest(ctx, entry, req, caller.agentId.toString());
      await checkNotShadowing(ctx, entry, spiffeId, allowedMap, caller.agentId.toString());
      const svid = await jwtSvid(ctx, spiffeId, audience, entry.jwtSvidTtl || ctx.limits.defaultJwtSvidTtl);
      ctx.usage?.issued(entry.entryId, caller.agentId.toString());
      return { svid };
    }),
  };
}
