/**
 * @module server/ports
 *
 * What the server API consumes from the rest of Mayfly, declared here by the consumer
 * (SPIRE style) with only the calls it makes, so a hand-written fake or an adapter over a
 * different implementation fits.
 */
import type { ServerCa } from '../ca/server-ca.js';
import type { Datastore, X509SvidIssuance } from '../datastore/datastore.js';
import type { AuditActor, AuditEvent } from '../audit/record.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';

/** The datastore calls the server API makes. */
export type ServerDatastore = Pick<
  Datastore,
  | 'createEntry'
  | 'createEntries'
  | 'getEntry'
  | 'updateEntry'
  | 'deleteEntry'
  | 'listEntries'
  | 'countEntries'
  | 'listEntriesForParents'
  | 'createAgent'
  | 'getAgent'
  | 'updateAgent'
  | 'listAgents'
  | 'deleteAgent'
  | 'countAgents'
  | 'purgeExpiredAgents'
  | 'recordX509SvidIssuances'
  | 'getX509SvidIssuance'
  | 'listX509SvidIssuances'
  | 'revokeX509Svids'
  | 'listRevokedX509Svids'
  | 'pruneX509Svids'
  | 'recordEntryUsage'
  | 'listEntryUsage'
  | 'createJoinToken'
  | 'consumeJoinToken'
  | 'getBundle'
  | 'setBundle'
  | 'listBundles'
  | 'mergeBundle'
  | 'deleteBundle'
  | 'listAuditRecords'
  | 'createFederationRelationship'
  | 'getFederationRelationship'
  | 'updateFederationRelationship'
  | 'deleteFederationRelationship'
  | 'listFederationRelationships'
>;

/** What the TrustDomain API asks of the peer bundle fetcher (federation/poller). */
export interface FederationControl {
  /**
   * Fetches `trustDomain`'s bundle now: resolves once it is stored (or found unchanged),
   * rejects with the reason it was refused (the previous bundle is kept).
   */
  refresh(trustDomain: string): Promise<void>;
  /** Relationships were created, updated or deleted: re-read them. */
  relationshipsChanged(): void;
}

/**
 * The trust domain's bundle as the server serves it (server/trust-bundle: the CA's own
 * bundle merged with the one servers sharing the datastore publish there).
 */
export interface ServedTrustBundle {
  bundle(): Bundle;
  /** Tainted authorities (X.509: hex SKI; JWT: kid) of every server of the trust domain. */
  taintedAuthorities(): { x509: string[]; jwt: string[] };
}

/**
 * The CA calls the server API makes: a subset of `ca/server-ca`'s ServerCa. The SPIFFE ID,
 * DNS names and lifetime of an SVID are exactly the arguments; the CA never sees a CSR.
 */
export type ServerApiCa = Pick<
  ServerCa,
  | 'trustDomain'
  | 'signX509Svid'
  | 'x509MintAuthority'
  | 'signJwtSvid'
  | 'getBundle'
  | 'onEvent'
  | 'taintedAuthorities'
  | 'authorityState'
  | 'prepareAuthority'
  | 'activateAuthority'
  | 'taintAuthority'
  | 'revokeAuthority'
  | 'signX509Crls'
> & {
  /**
   * Told how many X.509-SVIDs a batch minted with an `x509MintAuthority` snapshot (off the
   * CA's own `signX509Svid`, on the CSR workers), so metrics count them too.
   */
  noteX509SvidsMinted?(count: number): void;
};

/** pino-compatible logger (fields first). */
export interface ServerLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export const SILENT_LOGGER: ServerLogger = { info() {}, warn() {}, error() {} };

/** Where the server API records issuances and changes (audit/ledger's AuditLedger fits): resolves once durable. */
export interface AuditRecorder {
  /** `attached.x509Issuances` must be written in the same durable write as the record (one sync for both). */
  record(actor: AuditActor, event: AuditEvent, attached?: { x509Issuances?: readonly X509SvidIssuance[] }): Promise<void>;
}
