/**
 * @module server/api/agent
 *
 * The `Agent` service: node attestation (AttestAgent), agent SVID renewal (RenewAgent),
 * join tokens, and the admin calls that list, ban, evict and purge agents.
 *
 * Threats: a node claiming an identity its evidence does not support (attestors judge the
 * evidence; the agent ID comes from the attestor, the CSR gives only a key); a banned
 * agent coming back (a banned record stays and blocks re-attestation under that ID, and
 * every RPC of a banned agent is refused by server/auth); a CSR that fails proof of
 * possession burning a join token (the CSR is checked before the token is consumed); two
 * concurrent renewals both minting an SVID when only one can be recorded (renewals,
 * re-attestations and bans of one agent are serialised, and a renewal re-checks under the
 * lock that the caller's SVID is still the current one); a scoped registrar
 * (server/registrar-scope) seeing, banning or evicting agents its scope does not name.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ListAgentsQuery } from '../../datastore/datastore.js';
import { generateJoinToken, joinTokenSelector } from '../../attestors/node/join_token/join_token.js';
import { validateEntry } from '../../registration/entry.js';
import { MayflyError } from '../../spiffe/errors.js';
import { SpiffeId } from '../../spiffe/id.js';
import { parseCsr } from '../../spiffe/x509/csr.js';
import { checkAgentStanding, isAgentId, type Transport } from '../auth.js';
import { nowSeconds, pageSizeFromWire, pageTokenFromWire, servedBundle, unary, type ApiContext } from '../context.js';
import { agentToWire, bundleToWire, type WireAgent } from '../messages.js';
import { revokeForBannedAgent } from './revoke.js';
import { agentBanned, badRequest, denied, notFound } from '../status.js';
import { KeyedMutex } from '../keyed-mutex.js';
import { checkNotReservedId } from './entry.js';
import { agentVisible, checkAgentInScope, scopeOfCaller } from '../registrar-scope.js';
import { csrFromWire, issueX509Svid } from './issue.js';
import { challengeOf } from './attest-challenge.js';

/**
 * One lock per agent record, shared by every service instance over the same datastore
 * (the TCP and admin-socket endpoints build their own), so renewals, re-attestations and
 * bans of one agent never interleave their read-check-write of its serial number.
 */
const AGENT_LOCKS = new WeakMap<object, KeyedMutex>();

function agentLock(ctx: ApiContext): KeyedMutex {
  let m = AGENT_LOCKS.get(ctx.ds);
  if (m === undefined) {
    m = new KeyedMutex();
    AGENT_LOCKS.set(ctx.ds, m);
  }
  return m;
}

function agentIdFromWire(ctx: ApiContext, id: string | undefined): string {
  if (typeof id !== 'string' || id === '') throw badRequest('agent id is missing');
  const parsed = SpiffeId.parse(id);
  if (!parsed.memberOf(ctx.trustDomain) || !isAgentId(parsed)) throw badRequest(`${id} is not an agent SPIFFE ID of ${ctx.trustDomain.name}`);
  return parsed.toString();
}

interface ListAgentsRequest {
  filter: { by_banned: 'BAN_FILTER_ANY' | 'BAN_FILTER_BANNED' | 'BAN_FILTER_NOT_BANNED'; by_expired_before: number } | null;
  page_size: number;
  page_token: string;
}

interface AttestAgentRequest {
  attestation_data: { type: string; payload: Buffer } | null;
  csr: Buffer;
}

export function agentService(ctx: ApiContext, t: Transport): UntypedServiceImplementation {
  const changed = (agentId: string): void => ctx.hub.publish({ kind: 'agent', agentId });
  return {
    CountAgents: unary(ctx, t, 'CountAgents', 'admin', async (_req, caller) => {
      const scope = scopeOfCaller(caller);
      if (scope === undefined) return { count: await ctx.ds.countAgents() };
      let count = 0;
      let pageToken: string | undefined;
      do {
        const page = await ctx.ds.listAgents({ pageSize: 1000, ...(pageToken !== undefined ? { pageToken } : {}) });
        for (const a of page.items) if (agentVisible(scope, a.spiffeId)) count++;
        pageToken = page.nextPageToken === '' ? undefined : page.nextPageToken;
      } while (pageToken !== undefined);
      return { count };
    }),

    // A scoped registrar sees only the agents its parent_ids name (pages may be short).
    ListAgents: unary<ListAgentsRequest, unknown>(ctx, t, 'ListAgents', 'admin', async (req, caller) => {
      const scope = scopeOfCaller(caller);
      const q: ListAgentsQuery = {};
      const f = req.filter;
      if (f?.by_banned === 'BAN_FILTER_BANNED') q.byBanned = true;
      else if (f?.by_banned === 'BAN_FILTER_NOT_BANNED') q.byBanned = false;
      if (f && f.by_expired_before !== 0) {
        if (!Number.isSafeInteger(f.by_expired_before) || f.by_expired_before < 0) throw badRequest('filter.by_expired_before must be a non-negative time');
        q.byExpiredBefore = f.by_expired_before;
      }
      const pageSize = pageSizeFromWire(ctx, req.page_size);
      if (pageSize !== undefined) q.pageSize = pageSize;
      const pageToken = pageTokenFromWire(req.page_token);
      if (pageToken !== undefined) q.pageToken = pageToken;
      const page = await ctx.ds.listAgents(q);
      return { agents: page.items.filter((a) => agentVisible(scope, a.spiffeId)).map(agentToWire), next_page_token: page.nextPageToken };
    }),

    GetAgent: unary<{ id: string }, WireAgent>(ctx, t, 'GetAgent', 'admin', async (req, caller) => {
      const id = agentIdFromWire(ctx, req.id);
      checkAgentInScope(scopeOfCaller(caller), id, 'read');
      const a = await ctx.ds.getAgent(id);
      if (a === undefined) throw notFound(`no agent ${id}`);
      return agentToWire(a);
    }),

    BanAgent: unary<{ id: string }, object>(ctx, t, 'BanAgent', 'admin', async (req, caller) => {
      const id = agentIdFromWire(ctx, req.id);
      checkAgentInScope(scopeOfCaller(caller), id, 'ban');
      const before = await ctx.ds.getAgent(id);
      // The serial is cleared too, so no SVID of the agent matches its record any more.
      await agentLock(ctx).run(id, () => ctx.ds.updateAgent(id, { banned: true, serialNumber: '' }));
      changed(id);
      // Then its SVID and its own workloads' SVIDs are revoked (CRLs re-issued and pushed).
      const revoked = await revokeForBannedAgent(ctx, id, before?.serialNumber ?? '');
      ctx.logger.info({ agentId: id, revokedSvids: revoked.filter((r) => !r.already_revoked).length }, 'agent banned');
      return {};
    }),

    DeleteAgent: unary<{ id: string }, object>(ctx, t, 'DeleteAgent', 'admin', async (req, caller) => {
      const id = agentIdFromWire(ctx, req.id);
      checkAgentInScope(scopeOfCaller(caller), id, 'evict');
      await ctx.ds.deleteAgent(id);
      ctx.logger.info({ agentId: id }, 'agent evicted');
      changed(id);
      return {};
    }),

    PurgeExpiredAgents: unary<{ expired_before: number; include_banned: boolean }, unknown>(ctx, t, 'PurgeExpiredAgents', 'admin', async (req) => {
      const before = req.expired_before === 0 ? nowSeconds(ctx) : req.expired_before;
      if (!Number.isSafeInteger(before) || before < 0) throw badRequest('expired_before must be a non-negative time');
      const purged = await ctx.ds.purgeExpiredAgents(before, { includeBanned: req.include_banned });
      if (purged > 0) ctx.hub.publish({ kind: 'entries' });
      return { purged };
    }),

    CreateJoinToken: unary<{ ttl: number; agent_id: string }, unknown>(ctx, t, 'CreateJoinToken', 'admin', async (req) => {
      const ttl = req.ttl;
      if (!Number.isInteger(ttl) || ttl <= 0 || ttl > ctx.limits.maxJoinTokenTtl) {
        throw badRequest(`ttl must be from 1 to ${ctx.limits.maxJoinTokenTtl} seconds; got ${ttl}`);
      }
      const token = generateJoinToken();
      let alias: ReturnType<typeof validateEntry> | undefined;
      if (req.agent_id !== '') {
        alias = validateEntry(
          { spiffeId: req.agent_id, parentId: ctx.serverId.toString(), selectors: [joinTokenSelector(token)] },
          { trustDomain: ctx.trustDomain },
        );
        checkNotReservedId(ctx, alias.spiffeId, 'agent_id');
      }
      const expiresAt = nowSeconds(ctx) + ttl;
      await ctx.ds.createJoinToken({ token, expiresAt });
      if (alias !== undefined) {
        await ctx.ds.createEntry(alias);
        ctx.hub.publish({ kind: 'entries' });
      }
      return { value: token, expires_at: expiresAt };
    }),

    AttestAgent: unary<AttestAgentRequest, unknown>(ctx, t, 'AttestAgent', 'attest', async (req, _caller, call) => {
      const data = req.attestation_data;
      if (data === null || data === undefined || data.type === '') throw badRequest('attestation_data.type is missing');
      const attestor = ctx.attestors.get(data.type);
      if (attestor === undefined) throw badRequest(`node attestor ${JSON.stringify(data.type.slice(0, 64))} is not enabled on this server`);
      // Proof of possession first: a broken CSR must not consume single-use evidence.
      parseCsr(csrFromWire(req.csr));
      // A challenge–response transport (SPIRE's AttestAgent stream) attached its channel to the call.
      const challenge = challengeOf(call);
      const result = await attestor.attest(data.payload ?? Buffer.alloc(0), { trustDomain: ctx.trustDomain, now: ctx.now(), ...(challenge !== undefined ? { challenge } : {}) });
      const agentId = result.agentId.toString();
      if (!result.agentId.memberOf(ctx.trustDomain) || !isAgentId(result.agentId)) {
        throw new MayflyError('ERR_ATTESTATION_FAILED', `attestor ${attestor.type} produced ${agentId}, which is not an agent ID of ${ctx.trustDomain.name}`);
      }
      const issued = await agentLock(ctx).run(agentId, async () => {
        const existing = await ctx.ds.getAgent(agentId);
        if (existing?.banned) throw agentBanned(agentId);
        if (existing !== undefined && !existing.canReattest) throw denied(`agent ${agentId} has already attested and may not attest again`);
        const svid = await issueX509Svid(ctx, { spiffeId: result.agentId, csr: req.csr, ttlSeconds: ctx.limits.agentSvidTtl });
        const record = {
          attestationType: attestor.type,
          serialNumber: svid.serialHex,
          certNotAfter: svid.notAfter,
          selectors: result.selectors,
          canReattest: result.canReattest,
        };
        if (existing === undefined) await ctx.ds.createAgent({ spiffeId: agentId, ...record });
        else await ctx.ds.updateAgent(agentId, record);
        return svid;
      });
      ctx.logger.info({ agentId, attestationType: attestor.type }, 'agent attested');
      changed(agentId);
      return { svid: issued.wire, bundle: bundleToWire(servedBundle(ctx)) };
    }),

    RenewAgent: unary<{ csr: Buffer }, unknown>(ctx, t, 'RenewAgent', 'agent', async (req, caller) => {
      if (caller.kind !== 'agent') throw denied('RenewAgent is for attested agents only');
      const agentId = caller.agentId.toString();
      const issued = await agentLock(ctx).run(agentId, async () => {
        // Re-checked under the lock: a renewal that finished while this one waited has
        // replaced the serial this caller presented, and only one new SVID may win.
        checkAgentStanding(await ctx.ds.getAgent(agentId), agentId, caller.serial);
        const svid = await issueX509Svid(ctx, { spiffeId: caller.agentId, csr: req.csr, ttlSeconds: ctx.limits.agentSvidTtl });
        await ctx.ds.updateAgent(agentId, { serialNumber: svid.serialHex, certNotAfter: svid.notAfter });
        return svid;
      });
      changed(agentId);
      return { svid: issued.wire };
    }),
  };
}
