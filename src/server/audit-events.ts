/**
 * @module server/audit-events
 *
 * Which server API calls the audit ledger records, and what it records of each: every SVID
 * issued (agent attestation and renewal, workload SVIDs signed for agents, admin mints) and
 * every administrative change, built from the call's request and response after it
 * succeeded. The `unary` wrapper (context.ts) consults this table for every call, so an RPC
 * cannot change state or hand out an SVID without its record.
 *
 * Threat: secrets in the ledger. Records hold IDs, serials, selectors, audiences and times;
 * never a private key, a CSR, a JWT-SVID's token or a join token (only its SHA-256).
 */
import { createHash } from 'node:crypto';
import type { AuditActor, AuditEvent } from '../audit/record.js';
import { decodeJwtSvid } from '../spiffe/jwt/decode.js';
import type { Caller } from './auth.js';

interface WireX509 {
  spiffe_id?: string;
  serial_number?: string;
  expires_at?: number | string;
}
interface WireJwt {
  spiffe_id?: string;
  token?: string;
  expires_at?: number | string;
}
interface WireStatus {
  code?: number;
}

type Summarize = (req: Record<string, unknown>, res: Record<string, unknown>, caller: Caller) => AuditEvent[];

const num = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const ok = (s: unknown): boolean => ((s as WireStatus | undefined)?.code ?? 0) === 0;
const agentOf = (caller: Caller): string | undefined => (caller.kind === 'agent' ? caller.agentId.toString() : undefined);

function x509Issued(svid: WireX509 | undefined, extra: { entryId?: string; agentId?: string }): AuditEvent[] {
  if (svid === undefined || str(svid.serial_number) === '') return [];
  return [
    {
      kind: 'x509-svid.issued',
      serial: str(svid.serial_number),
      spiffeId: str(svid.spiffe_id),
      notAfter: num(svid.expires_at),
      ...(extra.entryId !== undefined && extra.entryId !== '' ? { entryId: extra.entryId } : {}),
      ...(extra.agentId !== undefined ? { agentId: extra.agentId } : {}),
    },
  ];
}

function kidOf(token: string): string {
  try {
    return decodeJwtSvid(token).kid;
  } catch {
    return '';
  }
}

function jwtIssued(svid: WireJwt | undefined, audience: unknown, extra: { entryId?: string; agentId?: string }): AuditEvent[] {
  if (svid === undefined || str(svid.token) === '') return [];
  return [
    {
      kind: 'jwt-svid.issued',
      spiffeId: str(svid.spiffe_id),
      audience: Array.isArray(audience) ? audience.map(str) : [],
      notAfter: num(svid.expires_at),
      keyId: kidOf(str(svid.token)),
      ...(extra.entryId !== undefined && extra.entryId !== '' ? { entryId: extra.entryId } : {}),
      ...(extra.agentId !== undefined ? { agentId: extra.agentId } : {}),
    },
  ];
}

const admin = (method: string, details: Record<string, unknown>): AuditEvent[] => [{ kind: 'admin', method, details }];

function entriesChanged(method: string, res: Record<string, unknown>): AuditEvent[] {
  const results = (res.results as { status?: WireStatus; entry?: Record<string, unknown> | null }[] | undefined) ?? [];
  const done = results.filter((r) => ok(r.status) && r.entry != null).map((r) => {
    const e = r.entry as Record<string, unknown>;
    const selectors = ((e.selectors as { type?: string; value?: string }[] | undefined) ?? []).map((s) => `${str(s.type)}:${str(s.value)}`);
    return { id: str(e.id), spiffeId: str(e.spiffe_id), parentId: str(e.parent_id), selectors, revision: num(e.revision) };
  });
  // One record per entry: bounded in size whatever the batch, and found by `audit show -entryID`.
  return done.flatMap((entry) => admin(method, { entry }));
}

function relationshipsChanged(method: string, res: Record<string, unknown>): AuditEvent[] {
  const results = (res.results as { status?: WireStatus; federation_relationship?: Record<string, unknown> | null }[] | undefined) ?? [];
  return results
    .filter((r) => ok(r.status) && r.federation_relationship != null)
    .flatMap((r) => {
      const f = r.federation_relationship as Record<string, unknown>;
      const spiffe = f.https_spiffe as { endpoint_spiffe_id?: string } | undefined;
      return admin(method, {
        trustDomain: str(f.trust_domain),
        bundleEndpointUrl: str(f.bundle_endpoint_url),
        profile: spiffe != null ? 'https_spiffe' : 'https_web',
        ...(spiffe != null ? { endpointSpiffeId: str(spiffe.endpoint_spiffe_id) } : {}),
      });
    });
}

// Local authority steps, X.509 and JWT (operator-driven; the CA's own rotations are recorded from its events).
const AUTHORITY_STEPS: Record<string, Summarize> = Object.fromEntries(
  (['X509', 'JWT'] as const).flatMap((label) =>
    (['Prepare', 'Activate', 'Taint', 'Revoke'] as const).map((step): [string, Summarize] => {
      const method = `${step}${label}Authority`;
      return [
        method,
        (req, res) => {
          const a = res.authority as { authority_id?: string; expires_at?: number | string } | undefined;
          return admin(method, { authorityId: str(a?.authority_id) || str(req.authority_id), expiresAt: num(a?.expires_at) });
        },
      ];
    }),
  ),
);

const SUMMARIES: Readonly<Record<string, Summarize>> = {
  ...AUTHORITY_STEPS,
  // Issuance
  AttestAgent: (_req, res) => {
    const svid = res.svid as WireX509 | undefined;
    return x509Issued(svid, { agentId: str(svid?.spiffe_id) });
  },
  RenewAgent: (_req, res, caller) => x509Issued(res.svid as WireX509 | undefined, { ...(agentOf(caller) !== undefined ? { agentId: agentOf(caller) as string } : {}) }),
  BatchNewX509SVID: (req, res, caller) => {
    const params = (req.params as { entry_id?: string }[] | undefined) ?? [];
    const results = (res.results as { status?: WireStatus; svid?: WireX509 }[] | undefined) ?? [];
    const agentId = agentOf(caller);
    return results.flatMap((r, i) => (ok(r.status) ? x509Issued(r.svid, { entryId: str(params[i]?.entry_id), ...(agentId !== undefined ? { agentId } : {}) }) : []));
  },
  NewJWTSVID: (req, res, caller) => {
    const agentId = agentOf(caller);
    return jwtIssued(res.svid as WireJwt | undefined, req.audience, { entryId: str(req.entry_id), ...(agentId !== undefined ? { agentId } : {}) });
  },
  MintX509SVID: (_req, res) => x509Issued(res.svid as WireX509 | undefined, {}),
  MintJWTSVID: (req, res) => jwtIssued(res.svid as WireJwt | undefined, req.audience, {}),
  // Registration
  BatchCreateEntry: (_req, res) => entriesChanged('BatchCreateEntry', res),
  BatchUpdateEntry: (_req, res) => entriesChanged('BatchUpdateEntry', res),
  BatchDeleteEntry: (_req, res) => {
    const ids = ((res.results as { status?: WireStatus; id?: string }[] | undefined) ?? []).filter((r) => ok(r.status)).map((r) => str(r.id));
    return ids.flatMap((id) => admin('BatchDeleteEntry', { entryId: id }));
  },
  // Agents and join tokens
  BanAgent: (req) => admin('BanAgent', { agentId: str(req.id) }),
  DeleteAgent: (req) => admin('DeleteAgent', { agentId: str(req.id) }),
  PurgeExpiredAgents: (req, res) => admin('PurgeExpiredAgents', { expiredBefore: num(req.expired_before), includeBanned: req.include_banned === true, purged: num(res.purged) }),
  CreateJoinToken: (req, res) =>
    admin('CreateJoinToken', {
      tokenSha256: createHash('sha256').update(str(res.value)).digest('hex'),
      expiresAt: num(res.expires_at),
      ...(str(req.agent_id) !== '' ? { agentId: str(req.agent_id) } : {}),
    }),
  // Revocation: one record per SVID this call revoked (already revoked ones were recorded when they were).
  RevokeX509SVIDs: (_req, res) =>
    ((res.revoked as Record<string, unknown>[] | undefined) ?? [])
      .filter((r) => r.already_revoked !== true)
      .flatMap((r) =>
        admin('RevokeX509SVIDs', { serial: str(r.serial_number), spiffeId: str(r.spiffe_id), entryId: str(r.entry_id), reason: str(r.reason) || 'unspecified', revokedAt: num(r.revoked_at) }),
      ),
  // Federation relationships
  BatchCreateFederationRelationship: (_req, res) => relationshipsChanged('BatchCreateFederationRelationship', res),
  BatchUpdateFederationRelationship: (_req, res) => relationshipsChanged('BatchUpdateFederationRelationship', res),
  BatchDeleteFederationRelationship: (_req, res) =>
    ((res.results as { status?: WireStatus; trust_domain?: string }[] | undefined) ?? []).filter((r) => ok(r.status)).flatMap((r) => admin('BatchDeleteFederationRelationship', { trustDomain: str(r.trust_domain) })),
  RefreshBundle: (req) => admin('RefreshBundle', { trustDomain: str(req.trust_domain) }),
  // Bundles
  BatchSetFederatedBundle: (req, res) => {
    const bundles = (req.bundles as { trust_domain?: string }[] | undefined) ?? [];
    const results = (res.results as { status?: WireStatus }[] | undefined) ?? [];
    const tds = bundles.filter((_b, i) => ok(results[i]?.status)).map((b) => str(b.trust_domain));
    return tds.flatMap((trustDomain) => admin('BatchSetFederatedBundle', { trustDomain }));
  },
  BatchDeleteFederatedBundle: (_req, res) => {
    const tds = ((res.results as { status?: WireStatus; trust_domain?: string }[] | undefined) ?? []).filter((r) => ok(r.status)).map((r) => str(r.trust_domain));
    return tds.flatMap((trustDomain) => admin('BatchDeleteFederatedBundle', { trustDomain }));
  },
};

/** Whether calls to `method` are recorded. */
export function isAudited(method: string): boolean {
  return Object.prototype.hasOwnProperty.call(SUMMARIES, method);
}

/** The events a successful call of `method` records ([] when it changed or issued nothing). */
export function auditEventsOf(method: string, req: unknown, res: unknown, caller: Caller): AuditEvent[] {
  const summarize = SUMMARIES[method];
  if (summarize === undefined) return [];
  const asRecord = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
  return summarize(asRecord(req), asRecord(res), caller);
}

/** Who the ledger says asked. */
export function auditActorOf(caller: Caller): AuditActor {
  switch (caller.kind) {
    case 'local-admin':
      return { kind: 'admin', id: 'admin-socket' };
    case 'admin':
      return { kind: 'admin', id: caller.spiffeId.toString() };
    case 'agent':
      return { kind: 'agent', id: caller.agentId.toString() };
    case 'workload':
      return { kind: 'anonymous', id: caller.spiffeId.toString() };
    default:
      return { kind: 'anonymous', id: '' };
  }
}
