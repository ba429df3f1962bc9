/**
 * @module server/api/revoke
 *
 * `SVID.RevokeX509SVIDs` (admin only; issue 10): revokes one X509-SVID by serial, or every
 * unexpired X509-SVID issued for a SPIFFE ID or for an entry, with an RFC 5280 reason.
 * The serials come from the issuance records the server keeps (server/api/issue and the
 * batch path record every X509-SVID before it leaves), so only what this trust domain's
 * servers issued can be revoked: an unknown serial, one of another trust domain, one
 * pruned after expiry are NOT_FOUND; an SVID that has already expired is refused with
 * FAILED_PRECONDITION (nothing to do: relying parties refuse it by its NotAfter). The
 * revocation is stored, the CRLs re-issued (server/crl-publisher) before the call
 * answers, so the agents' push streams carry it by then; then `onX509SvidsRevoked` (the
 * audit hook) is told.
 *
 * Threat: a revocation that silently does nothing (a typo'd serial, a wrong trust domain)
 * would leave the operator believing a stolen credential is dead: every such case is an
 * error naming what was wrong.
 */
import { MayflyError } from '../../spiffe/errors.js';
import { SpiffeId } from '../../spiffe/id.js';
import { isRevocationReason, REVOCATION_REASONS } from '../../spiffe/x509/crl.js';
import type { RevokedX509Svid, X509SvidIssuance } from '../../datastore/datastore.js';
import { nowSeconds, type ApiContext } from '../api-context.js';
export type { X509SvidsRevokedEvent } from '../api-context.js';
import { badRequest, notFound } from '../status.js';

export interface RevokeX509SvidsRequest {
  serial_number?: string;
  spiffe_id?: string;
  entry_id?: string;
  reason?: string;
}

export interface WireRevokedX509Svid {
  serial_number: string;
  spiffe_id: string;
  entry_id: string;
  expires_at: number;
  revoked_at: number;
  reason: string;
  authority_id: string;
  already_revoked: boolean;
}

const BATCH = 10_000;

/**
 * An operator's serial as the datastore keys it: hex (optionally `0x`-prefixed or
 * colon-separated as openssl prints it, any case) → the certificate's INTEGER content
 * bytes in lowercase hex (minimal, with a 00 pad when the high bit is set).
 */
export function normalizeSerial(input: string): string {
  const s = input.trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  if (s === '' || !/^[0-9a-f]+$/.test(s) || s.length > 42) {
    throw badRequest(`serial ${JSON.stringify(input.slice(0, 80))} is not a certificate serial number: give it in hex (as \`x509 mint\` or \`openssl x509 -serial\` print it; \`agent list\` prints decimal, as SPIRE does), at most 20 bytes`);
  }
  let hex = BigInt('0x' + s).toString(16);
  if (hex === '0') throw badRequest('serial 0 is not a valid certificate serial number (RFC 5280 serials are positive)');
  if (hex.length % 2) hex = '0' + hex;
  if (parseInt(hex[0] as string, 16) >= 8) hex = '00' + hex;
  return hex;
}

function toWire(r: RevokedX509Svid, already: boolean): WireRevokedX509Svid {
  return {
    serial_number: r.serialHex,
    spiffe_id: r.spiffeId,
    entry_id: r.entryId,
    expires_at: r.notAfter,
    revoked_at: r.revokedAt,
    reason: r.reason,
    authority_id: r.authorityId,
    already_revoked: already,
  };
}

export async function revokeX509Svids(ctx: ApiContext, req: RevokeX509SvidsRequest): Promise<{ revoked: WireRevokedX509Svid[] }> {
  const reason = req.reason === undefined || req.reason === '' ? 'unspecified' : req.reason;
  if (!isRevocationReason(reason)) throw badRequest(`reason ${JSON.stringify(reason.slice(0, 80))} is not an RFC 5280 CRLReason Mayfly revokes with; use one of ${REVOCATION_REASONS.join(', ')}`);
  const given = [req.serial_number, req.spiffe_id, req.entry_id].filter((v) => typeof v === 'string' && v !== '').length;
  if (given !== 1) throw badRequest('give exactly one of serial_number, spiffe_id and entry_id');
  const now = nowSeconds(ctx);
  let targets: X509SvidIssuance[];
  if (req.serial_number) {
    const serialHex = normalizeSerial(req.serial_number);
    const issued = await ctx.ds.getX509SvidIssuance(serialHex);
    if (issued === undefined) {
      throw notFound(`no X509-SVID with serial ${serialHex} was issued by trust domain ${ctx.trustDomain.name} (or it expired and its record was pruned); check the serial and the server you asked`);
    }
    if (issued.notAfter < now) {
      throw new MayflyError('ERR_SVID_ALREADY_EXPIRED', `the X509-SVID with serial ${serialHex} (${issued.spiffeId}) expired at ${new Date(issued.notAfter * 1000).toISOString()}: nothing to revoke, relying parties already refuse it`);
    }
    targets = [issued];
  } else if (req.spiffe_id) {
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(req.spiffe_id);
    } catch (err) {
      throw badRequest(`spiffe_id ${JSON.stringify(req.spiffe_id.slice(0, 200))} is not a SPIFFE ID: ${(err as Error).message}`);
    }
    if (!id.memberOf(ctx.trustDomain)) throw notFound(`${id} is not in trust domain ${ctx.trustDomain.name}: this server issued nothing for it`);
    targets = await ctx.ds.listX509SvidIssuances({ bySpiffeId: id.toString(), notExpiredAt: now });
    if (targets.length === 0) throw notFound(`no unexpired X509-SVID was issued for ${id}`);
  } else {
    const entryId = req.entry_id as string;
    targets = await ctx.ds.listX509SvidIssuances({ byEntryId: entryId, notExpiredAt: now });
    if (targets.length === 0) throw notFound(`no unexpired X509-SVID was issued for entry ${JSON.stringify(entryId.slice(0, 255))}`);
  }
  const by = { ...(req.serial_number ? { serialNumber: req.serial_number } : {}), ...(req.spiffe_id ? { spiffeId: req.spiffe_id } : {}), ...(req.entry_id ? { entryId: req.entry_id } : {}) };
  return { revoked: await revokeTargets(ctx, targets, reason, by) };
}

/**
 * What banning an agent revokes, with reason `privilegeWithdrawn`: exactly what that agent was
 * issued. That is its own X509-SVID, every unexpired X509-SVID signed for it (the issuance
 * record names the agent a BatchNewX509SVID was signed for), including those of entries it
 * shares with other agents through a node alias, and every unexpired SVID of an entry whose
 * parent is that agent (only it serves those; this also covers records written before they
 * named the agent). Copies of an alias-shared entry signed for *other* agents are not revoked:
 * those agents hold them legitimately, as SPIRE's operators expect (a ban withdraws one node's
 * privileges, not its neighbours'). Returns what was revoked.
 */
export async function revokeForBannedAgent(ctx: ApiContext, agentId: string, agentSerial: string): Promise<WireRevokedX509Svid[]> {
  const now = nowSeconds(ctx);
  const targets = new Map<string, X509SvidIssuance>();
  const add = (items: readonly X509SvidIssuance[]): void => {
    for (const i of items) if (!targets.has(i.serialHex)) targets.set(i.serialHex, i);
  };
  if (agentSerial !== '') {
    const own = await ctx.ds.getX509SvidIssuance(agentSerial);
    if (own !== undefined && own.notAfter >= now) add([own]);
  }
  add(await ctx.ds.listX509SvidIssuances({ byAgentId: agentId, notExpiredAt: now }));
  for (const e of await ctx.ds.listEntriesForParents([agentId])) {
    add(await ctx.ds.listX509SvidIssuances({ byEntryId: e.entryId, notExpiredAt: now }));
  }
  if (targets.size === 0) return [];
  return revokeTargets(ctx, [...targets.values()], 'privilegeWithdrawn', { spiffeId: agentId });
}

/** Stores the revocations, re-issues the CRLs before answering, tells the audit hook. */
async function revokeTargets(ctx: ApiContext, targets: readonly X509SvidIssuance[], reason: string, by: { serialNumber?: string; spiffeId?: string; entryId?: string }): Promise<WireRevokedX509Svid[]> {
  const now = nowSeconds(ctx);
  const out: WireRevokedX509Svid[] = [];
  const fresh: RevokedX509Svid[] = [];
  for (let i = 0; i < targets.length; i += BATCH) {
    const part = targets.slice(i, i + BATCH);
    const stored = await ctx.ds.revokeX509Svids(part.map((t) => ({ serialHex: t.serialHex, revokedAt: now, reason })));
    for (const r of stored) {
      // A revocation stored before this call keeps its own time or reason.
      const already = r.revokedAt !== now || r.reason !== reason;
      out.push(toWire(r, already));
      if (!already) fresh.push(r);
    }
  }
  // Re-issued before answering: when the operator sees the answer, agents are being told.
  await ctx.crls?.refresh({ force: fresh.length > 0 });
  if (fresh.length > 0 && ctx.onX509SvidsRevoked) {
    try {
      await ctx.onX509SvidsRevoked({ by, reason, revoked: fresh, at: ctx.now() });
    } catch (err) {
      ctx.logger.error({ err }, 'the X509-SVID revocation hook failed; the revocation itself took effect');
    }
  }
  return out;
}
