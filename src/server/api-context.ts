/**
 * @module server/api-context
 *
 * What every API handler is given: the datastore, the CA, the clock, the attestors, the
 * change hub and the limits (`ApiContext`), and the small reads every handler shares (the
 * served bundle and taints, the time in seconds). The wrappers that authenticate and
 * authorise each RPC are in `context.ts`, which re-exports all of this.
 */
import type { NodeAttestor } from '../attestors/node/attestor.js';
import type { AttestedAgent, RegistrationEntry, RevokedX509Svid } from '../datastore/datastore.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import type { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { MAX_JWT_SVID_AUDIENCES } from '../spiffe/jwt/limits.js';
import type { CsrMinter } from './csr-pool.js';
import type { ChangeHub } from './hub.js';
import type { UsageSink } from './usage-recorder.js';
import type { RegistrarScope } from './registrar-scope.js';
import type { AuditActor } from '../audit/record.js';
import type { CertificationStatus } from './certification.js';

/** Owner certification (issue 11, server/certification): what the entry, SVID and sync handlers ask of it. */
export interface CertificationGate {
  /** Why `entry` may not be served now (its certification lapsed), or undefined. */
  refusal(entry: RegistrationEntry): string | undefined;
  /** Where `entry` stands at `now` (unix seconds). */
  status(entry: RegistrationEntry, now: number): CertificationStatus;
  /** Records an owner's certification, or an exemption, in the ledger and applies it. */
  certify(actor: AuditActor, entry: RegistrationEntry, opts: { owner: string; note: string; exempt: boolean }): Promise<CertificationStatus>;
}
import type { AuditRecorder, FederationControl, ServedTrustBundle, ServerApiCa, ServerDatastore, ServerLogger } from './ports.js';

/** Per-agent copies of the authorised-entry set: what handlers need of `AuthorizedEntryCache` (authorized-cache.ts). */
export interface AuthorizedEntrySource {
  /** The entries `agent` is authorised for, by entry ID. */
  get(ctx: ApiContext, agent: AttestedAgent): Promise<ReadonlyMap<string, RegistrationEntry>>;
}

export interface ApiLimits {
  /** Items per batch RPC (entries, SVIDs, bundles). */
  maxBatch: number;
  /** Upper bound for page_size. */
  maxPageSize: number;
  /** Default X509-SVID lifetime (seconds) when an entry says 0. */
  defaultX509SvidTtl: number;
  /** Default JWT-SVID lifetime (seconds) when an entry says 0. */
  defaultJwtSvidTtl: number;
  /** Agent X509-SVID lifetime (seconds). */
  agentSvidTtl: number;
  /** Longest join token lifetime an admin may ask for (seconds). */
  maxJoinTokenTtl: number;
  /** Coalescing delay of the authorised-entry streams (ms). */
  syncCoalesceMs: number;
  /** Audience values per JWT-SVID request (default `MAX_JWT_SVID_AUDIENCES`, the agent's limit too). */
  maxAudiences: number;
  /** Concurrent authorised-entry streams per agent (each recomputes on every change). */
  maxSyncStreamsPerAgent: number;
  /** Entry policy (`require_owner`, issue 11): create and update refuse an entry without an owner. */
  requireOwner: boolean;
}

export const DEFAULT_LIMITS: ApiLimits = {
  maxBatch: 500,
  maxPageSize: 1000,
  defaultX509SvidTtl: 3600,
  defaultJwtSvidTtl: 300,
  agentSvidTtl: 3600,
  maxJoinTokenTtl: 7 * 24 * 3600,
  syncCoalesceMs: 50,
  maxAudiences: MAX_JWT_SVID_AUDIENCES,
  maxSyncStreamsPerAgent: 4,
  requireOwner: false,
};

export interface ApiContext {
  readonly trustDomain: TrustDomain;
  /** `spiffe://<td>/spire/server`: the server's own identity, parent of node-alias entries. */
  readonly serverId: SpiffeId;
  readonly ds: ServerDatastore;
  readonly ca: ServerApiCa;
  readonly hub: ChangeHub;
  readonly attestors: ReadonlyMap<string, NodeAttestor>;
  readonly logger: ServerLogger;
  readonly limits: ApiLimits;
  now(): Date;
  /** Intermediate certificates seen in chains the CA returned (for verifying bare leaves presented over TLS). */
  intermediates(): readonly Buffer[];
  /** Remembers the intermediates of a chain the CA returned. */
  noteChain(chain: readonly Buffer[]): void;
  /** Where batch signing checks CSRs, mints and verifies (server/csr-pool's workers); inline when absent. */
  readonly csrMinter?: CsrMinter;
  /** Per-agent copies of the authorised-entry set (server/authorized-cache); recomputed per call when absent. */
  readonly authorizedCache?: AuthorizedEntrySource;
  /** The bundle the server serves and trusts callers with (server/trust-bundle); the CA's own bundle when absent. */
  readonly trustBundle?: ServedTrustBundle;
  /** Entry usage (issue 11, server/usage-recorder): told of each issuance and reported delivery, never awaited. */
  readonly usage?: UsageSink;
  /** The audit ledger: every issuance and administrative change is recorded before the call answers (absent: not recorded). */
  readonly audit?: AuditRecorder;
  /** Owner certification (server.conf `certification`); absent: off, every entry is served. */
  readonly certification?: CertificationGate;
  /** Scoped registrars by admin SPIFFE ID (server.conf `registrars`, server/registrar-scope); absent or missing an ID: unscoped. */
  readonly registrars?: ReadonlyMap<string, RegistrarScope>;
  /** The peer bundle fetcher (federation/poller), for RefreshBundle; absent when none runs. */
  readonly federation?: FederationControl;
  /** The server's X.509 CRLs (server/crl-publisher; issue 10); none are served when absent. */
  readonly crls?: ServedCrls;
  /** Told after X509-SVIDs were revoked (the audit ledger's hook; issue 10). */
  readonly onX509SvidsRevoked?: (event: X509SvidsRevokedEvent) => void | Promise<void>;
  /** The server itself, for SPIRE's Debug.GetInfo (issue 14): when it started and its own X509-SVID chain (DER, leaf first). */
  readonly serverInfo?: ServerInfo;
}

/** What SPIRE's Debug.GetInfo reports of the server itself. */
export interface ServerInfo {
  readonly startedAt: Date;
  /** The server's current X509-SVID chain (DER, leaf first); empty before the first one. */
  svidChain(): readonly Buffer[];
}

/** What the audit hook is told after a revocation took effect. */
export interface X509SvidsRevokedEvent {
  readonly by: { readonly serialNumber?: string; readonly spiffeId?: string; readonly entryId?: string };
  readonly reason: string;
  /** Newly revoked (already revoked ones are not repeated). */
  readonly revoked: readonly RevokedX509Svid[];
  readonly at: Date;
}

/** What handlers need of `CrlPublisher` (server/crl-publisher). */
export interface ServedCrls {
  /** The current CRLs (DER), one per X.509 authority. */
  current(): readonly Buffer[];
  /** Re-reads the revoked serials and re-issues the CRLs if they changed (always with `force`). */
  refresh(opts?: { force?: boolean }): Promise<void>;
}

/**
 * The trust domain's bundle this server serves (GetBundle, attestation, agent push streams)
 * and authenticates callers against: every server's authorities when servers share a
 * datastore. SVIDs are still minted and checked against the CA's own bundle.
 */
export function servedBundle(ctx: ApiContext): Bundle {
  return ctx.trustBundle?.bundle() ?? ctx.ca.getBundle();
}

/** Tainted authorities as agents are told of them (every server's, when merged). */
export function servedTaints(ctx: ApiContext): { x509: string[]; jwt: string[] } {
  return ctx.trustBundle?.taintedAuthorities() ?? ctx.ca.taintedAuthorities();
}

export function nowSeconds(ctx: ApiContext): number {
  return Math.floor(ctx.now().getTime() / 1000);
}
