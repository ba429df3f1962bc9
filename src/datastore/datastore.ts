/**
 * @module datastore/datastore
 *
 * The server's storage, as one interface: registration entries, attested agents, join
 * tokens, trust bundles and the CA's journal. Implementations (`level`, later `postgres`)
 * pass the same conformance suite (`conformance.ts`); consumers that need less may
 * declare a smaller interface with `Pick<Datastore, ...>`.
 *
 * Conventions shared by every implementation:
 * - Times are integer unix seconds.
 * - `get*` returns `undefined` when the record does not exist; update and delete throw
 *   `ERR_DATASTORE_NOT_FOUND`.
 * - Every acknowledged write is durable (it survives the process being killed).
 * - Bad input throws a MayflyError (`ERR_ENTRY_INVALID`, `ERR_SELECTOR_INVALID`,
 *   `ERR_DATASTORE_INVALID`); nothing invalid is ever stored.
 * - Listing is keyset-paged in key order: a listing that runs to the end returns every
 *   record that existed throughout it exactly once. `pageSize` defaults to 500 and must be
 *   an integer from 1 to 1000, otherwise `ERR_DATASTORE_INVALID` (an API that receives the
 *   protobuf default 0 passes `undefined`). `nextPageToken` is '' on the last page; it
 *   may be non-empty on a page that happens to end exactly at the last record, in which
 *   case the next page is empty. Page tokens are opaque.
 * - After `close()` every call throws `ERR_DATASTORE_UNAVAILABLE`.
 */
import type { EntryInput, RegistrationEntry } from '../registration/entry.js';
import type { Selector } from '../registration/selector.js';
import type { MayflyError } from '../spiffe/errors.js';
import type { SpiffeJwk } from '../spiffe/bundle/jwk.js';

export type { EntryInput, RegistrationEntry } from '../registration/entry.js';
export type { Selector } from '../registration/selector.js';

/**
 * How a set filter compares a record's set S with the query's set Q:
 * - exact: S equals Q;
 * - subset: S ⊆ Q (S non-empty) — "entries a caller with selectors Q may have";
 * - superset: S ⊇ Q;
 * - any: S ∩ Q non-empty.
 */
export type SetMatch = 'exact' | 'subset' | 'superset' | 'any';

export interface ListEntriesQuery {
  bySpiffeId?: string;
  byParentId?: string;
  /** 1..256 selectors. */
  bySelectors?: { selectors: readonly Selector[]; match: SetMatch };
  /** 1..256 bare trust domain names. */
  byFederatesWith?: { trustDomains: readonly string[]; match: SetMatch };
  /** Entries whose owner is exactly this (non-empty) owner. */
  byOwner?: string;
  /** Entries holding every one of these labels (1..32 of them). */
  byLabels?: Readonly<Record<string, string>>;
  pageSize?: number;
  pageToken?: string;
}

export interface Page<T> {
  items: T[];
  /** '' when there are no more pages. */
  nextPageToken: string;
}

/** The outcome of one item of `createEntries`, in input order. */
export type CreateEntryResult = { entry: RegistrationEntry; error?: undefined } | { entry?: undefined; error: MayflyError };

/** An agent that has attested to the server. */
export interface AttestedAgent {
  /** The agent's SPIFFE ID (the key). */
  readonly spiffeId: string;
  /** The node attestor that vouched for it, e.g. `join_token`, `k8s_psat`. */
  readonly attestationType: string;
  /** Serial number of the agent's current SVID (hex), '' when none (e.g. banned). */
  readonly serialNumber: string;
  /** When the agent's current SVID expires. */
  readonly certNotAfter: number;
  /** Node selectors produced at attestation. */
  readonly selectors: readonly Selector[];
  readonly banned: boolean;
  /** Whether the agent may attest again with the same identity (false for join tokens). */
  readonly canReattest: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type NewAgent = Omit<AttestedAgent, 'createdAt' | 'updatedAt' | 'banned' | 'canReattest' | 'selectors'> & {
  selectors?: readonly Selector[];
  banned?: boolean;
  canReattest?: boolean;
};

export type AgentUpdate = Partial<Pick<AttestedAgent, 'attestationType' | 'serialNumber' | 'certNotAfter' | 'selectors' | 'banned' | 'canReattest'>>;

export interface ListAgentsQuery {
  byBanned?: boolean;
  /** Only agents whose certNotAfter < this. */
  byExpiredBefore?: number;
  pageSize?: number;
  pageToken?: string;
}

export interface JoinToken {
  readonly token: string;
  /** The token is invalid at and after this time. */
  readonly expiresAt: number;
  readonly createdAt: number;
}

export interface StoredBundle {
  /** Bare trust domain name. */
  readonly trustDomain: string;
  /** The SPIFFE bundle JSON text, stored as given (the datastore does not parse it). */
  readonly bundle: string;
  readonly sequence: number;
  readonly updatedAt: number;
}

/** One authority to merge into a stored bundle (see `Datastore.mergeBundle`). */
export interface BundleAuthority {
  /**
   * The key as a SPIFFE bundle document holds it: `use: "x509-svid"` with exactly one
   * certificate in `x5c` (identified by that certificate), or `use: "jwt-svid"` with its
   * `kid` (identified by the key ID). Public members only.
   */
  readonly jwk: SpiffeJwk;
  /**
   * Unix seconds after which the authority may be pruned. Default: an X.509 authority's
   * certificate NotAfter; a JWT authority without one is never pruned.
   */
  readonly notAfter?: number;
  /** An operator tainted it. A stored taint is never lifted by a later merge. */
  readonly tainted?: boolean;
}

/** Names one authority of a stored bundle: an X.509 authority by its certificate (standard base64 DER, as in `x5c`), a JWT authority by key ID. */
export type BundleAuthorityRef = { readonly x509: string; readonly jwtKid?: undefined } | { readonly jwtKid: string; readonly x509?: undefined };

/** One atomic change to a trust domain's stored bundle (see `Datastore.mergeBundle`). */
export interface BundleMerge {
  /** Bare trust domain name. */
  trustDomain: string;
  /** Added, or updated in place when already stored (same certificate / same key ID and key). */
  add?: readonly BundleAuthority[];
  /** Removed when stored (a revoke); unknown ones are ignored. */
  remove?: readonly BundleAuthorityRef[];
  /** Removes authorities whose notAfter is before this (unix seconds), never every X.509 authority. */
  pruneExpiredBefore?: number;
  /** Sets the bundle's `spiffe_refresh_hint`. */
  refreshHintSeconds?: number;
  /** When the merge changes the bundle, its new sequence is at least this. */
  minSequence?: number;
  /**
   * The publishing server's identity (1 to 128 of `A-Z a-z 0-9 . _ : -`), stable across its
   * restarts. With an owner, `add` is the owner's complete set of authorities: each added key
   * is tagged with the owner (`mayfly_owners`, a key several servers publish, e.g. a shared
   * upstream root, carries each of them), and in the same atomic write the owner's tag is
   * taken off every stored key not in `add`; a key left with no owner is removed. Keys tagged
   * only by other owners, and untagged keys (written by `setBundle`, by merges without an
   * owner, or before owners existed), are never removed this way; an untagged key the owner
   * adds becomes its own. As pruning, an owner's merge never removes every X.509 authority:
   * when it would, the owner's unpublished X.509 authorities stay (still tagged, so a later
   * merge removes them). A server always publishes its active X.509 authority, so for a
   * server this never applies. Without an owner, a merge adds and removes as before.
   */
  owner?: string;
}

/** One record of the audit ledger as stored: the datastore keeps the chain's links, not its meaning. */
export interface AuditRecordRow {
  /** 1, 2, 3, … without gaps, assigned by the store at append. */
  readonly seq: number;
  /** The previous record's `hash`; '' for the first record ever appended. */
  readonly prevHash: string;
  /** What `AuditLink` returned for this record. */
  readonly hash: string;
  /** The record's text, stored as given (the datastore does not parse it); at most 64 KiB. */
  readonly body: string;
}

/** Computes a record's hash from its seq, the previous record's hash ('' for the first) and its body: 64 lowercase hex. */
export type AuditLink = (seq: number, prevHash: string, body: string) => string;
/** How a federation relationship's bundle endpoint is authenticated. */
export type FederationProfileName = 'https_web' | 'https_spiffe';

/**
 * A federation relationship with a foreign trust domain (SPIRE's `FederationRelationship`):
 * where its bundle endpoint is and how it is authenticated. The bundle itself is stored as
 * any other (`setBundle`); deleting a relationship keeps it.
 */
export interface FederationRelationship {
  /** Bare trust domain name (the key). */
  readonly trustDomain: string;
  /** `https://host[:port]/path`: no userinfo, query or fragment; at most 2048 bytes. */
  readonly bundleEndpointUrl: string;
  readonly bundleEndpointProfile: FederationProfileName;
  /** The SPIFFE ID the endpoint presents (`https_spiffe`); '' for `https_web`. */
  readonly endpointSpiffeId: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type NewFederationRelationship = Omit<FederationRelationship, 'createdAt' | 'updatedAt'>;

export interface ListFederationRelationshipsQuery {
  pageSize?: number;
  pageToken?: string;
}

/**
 * One X509-SVID the server issued: what revoking by SPIFFE ID or by entry needs to know
 * (issue 10). Kept until `notAfter`, then pruned (`pruneX509Svids`).
 */
export interface X509SvidIssuance {
  /** Lowercase hex of the certificate's serial INTEGER content bytes (`ParsedCertificate.serialHex`), 1 to 21 bytes. */
  readonly serialHex: string;
  readonly spiffeId: string;
  /** The registration entry it was issued for; '' for agent SVIDs and admin mints. */
  readonly entryId: string;
  /** The issuing X.509 authority: its hex SKI. */
  readonly authorityId: string;
  /** The SVID's NotAfter (unix seconds). */
  readonly notAfter: number;
  /**
   * The agent it was signed for (a workload SVID of BatchNewX509SVID): what banning that
   * agent revokes, also under entries it shares through a node alias. Absent otherwise.
   */
  readonly agentId?: string;
}

/** Options of `appendAuditRecords`. */
export interface AuditAppendOptions {
  /** Append only if the last record is this one (0: none), else `ERR_DATASTORE_CONFLICT`. */
  readonly expectedLastSeq?: number;
  /** Issuance records written in the same atomic write as the audit records (0 to 10,000). */
  readonly x509Issuances?: readonly X509SvidIssuance[];
}

/** An issued X509-SVID an operator revoked; kept until it expires (it then needs no CRL entry). */
export interface RevokedX509Svid extends X509SvidIssuance {
  readonly revokedAt: number;
  /** An RFC 5280 CRLReason name (`keyCompromise`, `superseded`, ...; `unspecified` by default). */
  readonly reason: string;
}

export interface ListX509SvidIssuancesQuery {
  /** Exactly one of `bySpiffeId`, `byEntryId` and `byAgentId`. */
  bySpiffeId?: string;
  byEntryId?: string;
  /** SVIDs signed for this agent (records that carry `agentId`). */
  byAgentId?: string;
  /** Only SVIDs with notAfter >= this (unix seconds). */
  notExpiredAt?: number;
}

/** How an entry has been used (issue 11); times are unix seconds, 0 = never. */
export interface EntryUsage {
  readonly entryId: string;
  readonly firstIssuedAt: number;
  readonly lastIssuedAt: number;
  readonly issuanceCount: number;
  /** The agents that fetched its SVIDs, least recent first (at most 64: datastore/usage). */
  readonly agents: readonly string[];
  /** How many distinct agents were ever recorded. */
  readonly agentCount: number;
  /** The last Workload API delivery an agent reported. */
  readonly lastDeliveredAt: number;
}

/** What a batch adds to one entry's usage (server/usage-recorder). */
export interface EntryUsageDelta {
  entryId: string;
  firstIssuedAt?: number;
  lastIssuedAt?: number;
  issuanceCount?: number;
  agents?: readonly string[];
  lastDeliveredAt?: number;
}

export interface Datastore {
  // ---- registration entries ----
  /** Stores a new entry (revision 0). `ERR_DATASTORE_ALREADY_EXISTS` when an entry with the same id, or the same (parentId, spiffeId, selectors), exists; the error's `existingEntryId` names it. */
  createEntry(input: EntryInput): Promise<RegistrationEntry>;
  /** Creates many entries; each item succeeds or fails on its own, results in input order. At most 10,000 items per call. */
  createEntries(inputs: readonly EntryInput[]): Promise<CreateEntryResult[]>;
  getEntry(entryId: string): Promise<RegistrationEntry | undefined>;
  /**
   * Replaces the entry `input.entryId` with `input` if its stored revision is still
   * `expectedRevision` (else `ERR_DATASTORE_CONFLICT`). The revision is bumped, createdAt
   * kept. `ERR_DATASTORE_ALREADY_EXISTS` when the new fields collide with another entry.
   */
  updateEntry(input: EntryInput & { entryId: string }, opts: { expectedRevision: number }): Promise<RegistrationEntry>;
  /** Deletes and returns the entry. */
  deleteEntry(entryId: string): Promise<RegistrationEntry>;
  /** Filters are ANDed; results in ascending entryId order. */
  listEntries(query?: ListEntriesQuery): Promise<Page<RegistrationEntry>>;
  countEntries(): Promise<number>;
  /** Every entry whose parentId is one of `parentIds` (1..1024 of them), in no particular order. For the authorised-entry computation. */
  listEntriesForParents(parentIds: readonly string[]): Promise<RegistrationEntry[]>;

  // ---- attested agents ----
  /** `ERR_DATASTORE_ALREADY_EXISTS` when the SPIFFE ID is already recorded. */
  createAgent(agent: NewAgent): Promise<AttestedAgent>;
  getAgent(spiffeId: string): Promise<AttestedAgent | undefined>;
  updateAgent(spiffeId: string, update: AgentUpdate): Promise<AttestedAgent>;
  /** Results in ascending SPIFFE ID order. */
  listAgents(query?: ListAgentsQuery): Promise<Page<AttestedAgent>>;
  /** Evicts (forgets) the agent, which must attest again. */
  deleteAgent(spiffeId: string): Promise<AttestedAgent>;
  countAgents(): Promise<number>;
  /**
   * Deletes agents whose certNotAfter < `before`; returns how many. Banned agents are
   * kept unless `includeBanned`, because deleting the record would lift the ban.
   */
  purgeExpiredAgents(before: number, opts?: { includeBanned?: boolean }): Promise<number>;

  // ---- join tokens ----
  /** `ERR_DATASTORE_ALREADY_EXISTS` when the token exists. */
  createJoinToken(token: { token: string; expiresAt: number }): Promise<JoinToken>;
  /**
   * Deletes and returns the token if it exists and `now < expiresAt`. Unknown, already
   * consumed and expired tokens all throw `ERR_JOIN_TOKEN_INVALID` (the same message, so
   * the caller learns nothing). Of concurrent consumes of one token exactly one succeeds.
   */
  consumeJoinToken(token: string, now: number): Promise<JoinToken>;
  /** Deletes tokens with expiresAt <= `before`; returns how many. */
  purgeExpiredJoinTokens(before: number): Promise<number>;

  // ---- bundles ----
  getBundle(trustDomain: string): Promise<StoredBundle | undefined>;
  /** Creates or replaces the bundle of `trustDomain`. The bundle text is at most 4 MiB. */
  setBundle(bundle: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle>;
  /** In ascending trust domain order. */
  listBundles(): Promise<StoredBundle[]>;
  /**
   * Atomically adds, removes and prunes authorities of one trust domain's stored bundle
   * (SPIRE's AppendBundle / PruneBundle; what servers sharing a datastore publish their CA
   * authorities with): a read-modify-write under the store's serialisation, so of concurrent
   * merges none is lost. Creates the bundle when there is none and something is added.
   * When the content changes the sequence increases (to at least `minSequence`) and
   * `changed` is true; otherwise nothing is written. The stored text stays a SPIFFE bundle
   * document (at most 4 MiB) whose keys may carry `mayfly_not_after`, `mayfly_tainted` and
   * `mayfly_owners` (see `BundleMerge.owner`: how a restarted server removes the authorities
   * its CA dropped while it could not publish).
   * `ERR_DATASTORE_INVALID` for a bad key or a stored bundle that does not parse;
   * `ERR_DATASTORE_CONFLICT` when an added key ID already names a different key.
   */
  mergeBundle(merge: BundleMerge): Promise<{ bundle: StoredBundle | undefined; changed: boolean }>;
  /** `ERR_DATASTORE_CONFLICT` while any entry federates with `trustDomain` (nothing is dissociated silently). */
  deleteBundle(trustDomain: string): Promise<void>;

  // ---- audit ledger ----
  /**
   * Appends `bodies` (1 to 10,000, in order) after the current last record, in one atomic,
   * durable write: under the store's serialisation (across every server sharing the store),
   * each gets the next seq and its hash from `link`, chained to the one before. Of concurrent
   * appends none interleave and none fork the chain. Returns the rows written.
   * With `expectedLastSeq`, appends only if the last record is still that one (0: none),
   * else `ERR_DATASTORE_CONFLICT` (a checkpoint signs the head it follows).
   * With `x509Issuances`, those issuance records (as `recordX509SvidIssuances` writes them)
   * go into the same atomic, durable write: both or neither survive a crash, for one sync.
   */
  appendAuditRecords(bodies: readonly string[], link: AuditLink, opts?: AuditAppendOptions): Promise<AuditRecordRow[]>;
  /** Records with seq > `afterSeq` (default 0), ascending, at most `limit` (1..1000, default 500). */
  listAuditRecords(query?: { afterSeq?: number; limit?: number }): Promise<AuditRecordRow[]>;
  /** The last record, or undefined when none was ever appended. */
  lastAuditRecord(): Promise<AuditRecordRow | undefined>;
  /** Deletes records with seq < `beforeSeq`, never the last record; returns how many. */
  pruneAuditRecords(beforeSeq: number): Promise<number>;
  // ---- federation relationships ----
  /** `ERR_DATASTORE_ALREADY_EXISTS` when one exists for the trust domain. */
  createFederationRelationship(rel: NewFederationRelationship): Promise<FederationRelationship>;
  getFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined>;
  /** Replaces the endpoint URL and profile; createdAt kept. */
  updateFederationRelationship(rel: NewFederationRelationship): Promise<FederationRelationship>;
  /** Deletes and returns the relationship (the trust domain's bundle stays). */
  deleteFederationRelationship(trustDomain: string): Promise<FederationRelationship>;
  /** In ascending trust domain order. */
  listFederationRelationships(query?: ListFederationRelationshipsQuery): Promise<Page<FederationRelationship>>;

  // ---- CA journal ----
  getCaJournal(): Promise<Uint8Array | undefined>;
  /** Replaces the journal; at most 16 MiB. */
  setCaJournal(bytes: Uint8Array): Promise<void>;

  // ---- issued X509-SVIDs and their revocation (issue 10) ----
  /**
   * Records issued X509-SVIDs (1..10,000 per call, one atomic write); a serial already
   * recorded is replaced. `ERR_DATASTORE_INVALID` for a bad record.
   */
  recordX509SvidIssuances(items: readonly X509SvidIssuance[]): Promise<void>;
  getX509SvidIssuance(serialHex: string): Promise<X509SvidIssuance | undefined>;
  /** Issuances of one SPIFFE ID or one entry, ascending serial; at most 100,000. */
  listX509SvidIssuances(query: ListX509SvidIssuancesQuery): Promise<X509SvidIssuance[]>;
  /**
   * Revokes recorded serials (1..10,000 per call, one atomic write) and returns their
   * revocation records in input order. A serial already revoked keeps its first revocation
   * (returned as stored). `ERR_DATASTORE_NOT_FOUND` when a serial was never recorded (or
   * was pruned); nothing is written then.
   */
  revokeX509Svids(items: readonly { serialHex: string; revokedAt: number; reason: string }[]): Promise<RevokedX509Svid[]>;
  /** Every revoked, not yet pruned serial, ascending serial. */
  listRevokedX509Svids(): Promise<RevokedX509Svid[]>;
  /** Deletes issuance and revocation records with notAfter < `before`; returns how many serials. */
  pruneX509Svids(before: number): Promise<number>;

  // ---- entry usage (issue 11) ----
  /** Merges the deltas (1..10,000, one entryId each) into the stored usage records, in one atomic write. */
  recordEntryUsage(deltas: readonly EntryUsageDelta[]): Promise<void>;
  /** Every stored usage record, ascending entryId (records of deleted entries included). */
  listEntryUsage(): Promise<EntryUsage[]>;

  /** Waits for writes in flight, then releases the store. Idempotent. */
  close(): Promise<void>;
}
