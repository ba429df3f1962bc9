/**
 * @module datastore/delegating
 *
 * The `Datastore` surface both implementations share: each keeps its operations as plain
 * functions over its own store handle (`entries.ts`, `agents.ts`, `join-tokens.ts`,
 * `bundles.ts` in `level/` and `postgres/`), and this base class maps every interface
 * method onto them, so the two stores differ only in those functions and their lifecycle.
 */
import type { EntryInput, RegistrationEntry } from '../registration/entry.js';
import type {
  AgentUpdate,
  AuditAppendOptions,
  AuditLink,
  AuditRecordRow,
  AttestedAgent,
  BundleMerge,
  CreateEntryResult,
  Datastore,
  FederationRelationship,
  JoinToken,
  ListAgentsQuery,
  ListEntriesQuery,
  ListFederationRelationshipsQuery,
  NewAgent,
  NewFederationRelationship,
  Page,
  StoredBundle,
} from './datastore.js';
import type { EntryUsage, EntryUsageDelta, ListX509SvidIssuancesQuery, RevokedX509Svid, X509SvidIssuance } from './datastore.js';

/** The operation modules of one implementation, each taking its store handle first. */
export interface StoreOperations<S> {
  entries: {
    createEntries(s: S, inputs: readonly EntryInput[]): Promise<CreateEntryResult[]>;
    getEntry(s: S, entryId: string): Promise<RegistrationEntry | undefined>;
    updateEntry(s: S, input: EntryInput & { entryId: string }, opts: { expectedRevision: number }): Promise<RegistrationEntry>;
    deleteEntry(s: S, entryId: string): Promise<RegistrationEntry>;
    countEntries(s: S): Promise<number>;
    listEntries(s: S, query?: ListEntriesQuery): Promise<Page<RegistrationEntry>>;
    listEntriesForParents(s: S, parentIds: readonly string[]): Promise<RegistrationEntry[]>;
  };
  agents: {
    createAgent(s: S, agent: NewAgent): Promise<AttestedAgent>;
    getAgent(s: S, spiffeId: string): Promise<AttestedAgent | undefined>;
    updateAgent(s: S, spiffeId: string, update: AgentUpdate): Promise<AttestedAgent>;
    listAgents(s: S, query: ListAgentsQuery): Promise<Page<AttestedAgent>>;
    deleteAgent(s: S, spiffeId: string): Promise<AttestedAgent>;
    countAgents(s: S): Promise<number>;
    purgeExpiredAgents(s: S, before: number, opts: { includeBanned?: boolean }): Promise<number>;
  };
  joinTokens: {
    createJoinToken(s: S, input: { token: string; expiresAt: number }): Promise<JoinToken>;
    consumeJoinToken(s: S, token: string, now: number): Promise<JoinToken>;
    purgeExpiredJoinTokens(s: S, before: number): Promise<number>;
  };
  relationships: {
    createFederationRelationship(s: S, rel: NewFederationRelationship): Promise<FederationRelationship>;
    getFederationRelationship(s: S, trustDomain: string): Promise<FederationRelationship | undefined>;
    updateFederationRelationship(s: S, rel: NewFederationRelationship): Promise<FederationRelationship>;
    deleteFederationRelationship(s: S, trustDomain: string): Promise<FederationRelationship>;
    listFederationRelationships(s: S, query?: ListFederationRelationshipsQuery): Promise<Page<FederationRelationship>>;
  };
  bundles: {
    getBundle(s: S, trustDomain: string): Promise<StoredBundle | undefined>;
    setBundle(s: S, input: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle>;
    listBundles(s: S): Promise<StoredBundle[]>;
    mergeBundle(s: S, merge: BundleMerge): Promise<{ bundle: StoredBundle | undefined; changed: boolean }>;
    deleteBundle(s: S, trustDomain: string): Promise<void>;
    getCaJournal(s: S): Promise<Uint8Array | undefined>;
    setCaJournal(s: S, bytes: Uint8Array): Promise<void>;
  };
  audit: {
    appendAuditRecords(s: S, bodies: readonly string[], link: AuditLink, opts: AuditAppendOptions): Promise<AuditRecordRow[]>;
    listAuditRecords(s: S, query: { afterSeq?: number; limit?: number }): Promise<AuditRecordRow[]>;
    lastAuditRecord(s: S): Promise<AuditRecordRow | undefined>;
    pruneAuditRecords(s: S, beforeSeq: number): Promise<number>;
  };
  /** Issued X509-SVIDs and their revocations (`level/svids.ts`, `postgres/svids.ts`). */
  svids: {
    recordX509SvidIssuances(s: S, items: readonly X509SvidIssuance[]): Promise<void>;
    getX509SvidIssuance(s: S, serialHex: string): Promise<X509SvidIssuance | undefined>;
    listX509SvidIssuances(s: S, query: ListX509SvidIssuancesQuery): Promise<X509SvidIssuance[]>;
    revokeX509Svids(s: S, items: readonly { serialHex: string; revokedAt: number; reason: string }[]): Promise<RevokedX509Svid[]>;
    listRevokedX509Svids(s: S): Promise<RevokedX509Svid[]>;
    pruneX509Svids(s: S, before: number): Promise<number>;
  };
  /** Entry usage records (`level/usage.ts`, `postgres/usage.ts`). */
  usage: {
    recordEntryUsage(s: S, deltas: readonly EntryUsageDelta[]): Promise<void>;
    listEntryUsage(s: S): Promise<EntryUsage[]>;
  };
}

export abstract class DelegatingDatastore<S> implements Datastore {
  readonly #s: S;
  readonly #ops: StoreOperations<S>;

  protected constructor(store: S, ops: StoreOperations<S>) {
    this.#s = store;
    this.#ops = ops;
  }

  /** The store handle, for the subclass's own lifecycle and checks. */
  protected get store(): S {
    return this.#s;
  }

  abstract close(): Promise<void>;

  // ---------------------------------------------------------------- entries

  async createEntry(input: EntryInput): Promise<RegistrationEntry> {
    const [r] = await this.createEntries([input]);
    if (r!.error !== undefined) throw r!.error;
    return r!.entry;
  }

  createEntries(inputs: readonly EntryInput[]): Promise<CreateEntryResult[]> {
    return this.#ops.entries.createEntries(this.#s, inputs);
  }

  getEntry(entryId: string): Promise<RegistrationEntry | undefined> {
    return this.#ops.entries.getEntry(this.#s, entryId);
  }

  updateEntry(input: EntryInput & { entryId: string }, opts: { expectedRevision: number }): Promise<RegistrationEntry> {
    return this.#ops.entries.updateEntry(this.#s, input, opts);
  }

  deleteEntry(entryId: string): Promise<RegistrationEntry> {
    return this.#ops.entries.deleteEntry(this.#s, entryId);
  }

  countEntries(): Promise<number> {
    return this.#ops.entries.countEntries(this.#s);
  }

  listEntries(query?: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
    return this.#ops.entries.listEntries(this.#s, query);
  }

  listEntriesForParents(parentIds: readonly string[]): Promise<RegistrationEntry[]> {
    return this.#ops.entries.listEntriesForParents(this.#s, parentIds);
  }

  // ---------------------------------------------------------------- agents

  createAgent(agent: NewAgent): Promise<AttestedAgent> {
    return this.#ops.agents.createAgent(this.#s, agent);
  }

  getAgent(spiffeId: string): Promise<AttestedAgent | undefined> {
    return this.#ops.agents.getAgent(this.#s, spiffeId);
  }

  updateAgent(spiffeId: string, update: AgentUpdate): Promise<AttestedAgent> {
    return this.#ops.agents.updateAgent(this.#s, spiffeId, update);
  }

  listAgents(query: ListAgentsQuery = {}): Promise<Page<AttestedAgent>> {
    return this.#ops.agents.listAgents(this.#s, query);
  }

  deleteAgent(spiffeId: string): Promise<AttestedAgent> {
    return this.#ops.agents.deleteAgent(this.#s, spiffeId);
  }

  countAgents(): Promise<number> {
    return this.#ops.agents.countAgents(this.#s);
  }

  purgeExpiredAgents(before: number, opts: { includeBanned?: boolean } = {}): Promise<number> {
    return this.#ops.agents.purgeExpiredAgents(this.#s, before, opts);
  }

  // ---------------------------------------------------------------- join tokens

  createJoinToken(input: { token: string; expiresAt: number }): Promise<JoinToken> {
    return this.#ops.joinTokens.createJoinToken(this.#s, input);
  }

  consumeJoinToken(token: string, now: number): Promise<JoinToken> {
    return this.#ops.joinTokens.consumeJoinToken(this.#s, token, now);
  }

  purgeExpiredJoinTokens(before: number): Promise<number> {
    return this.#ops.joinTokens.purgeExpiredJoinTokens(this.#s, before);
  }

  // ---------------------------------------------------------------- federation relationships

  createFederationRelationship(rel: NewFederationRelationship): Promise<FederationRelationship> {
    return this.#ops.relationships.createFederationRelationship(this.#s, rel);
  }

  getFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    return this.#ops.relationships.getFederationRelationship(this.#s, trustDomain);
  }

  updateFederationRelationship(rel: NewFederationRelationship): Promise<FederationRelationship> {
    return this.#ops.relationships.updateFederationRelationship(this.#s, rel);
  }

  deleteFederationRelationship(trustDomain: string): Promise<FederationRelationship> {
    return this.#ops.relationships.deleteFederationRelationship(this.#s, trustDomain);
  }

  listFederationRelationships(query?: ListFederationRelationshipsQuery): Promise<Page<FederationRelationship>> {
    return this.#ops.relationships.listFederationRelationships(this.#s, query);
  }

  // ---------------------------------------------------------------- bundles and CA journal

  getBundle(trustDomain: string): Promise<StoredBundle | undefined> {
    return this.#ops.bundles.getBundle(this.#s, trustDomain);
  }

  setBundle(input: { trustDomain: string; bundle: string; sequence: number }): Promise<StoredBundle> {
    return this.#ops.bundles.setBundle(this.#s, input);
  }

  listBundles(): Promise<StoredBundle[]> {
    return this.#ops.bundles.listBundles(this.#s);
  }

  mergeBundle(merge: BundleMerge): Promise<{ bundle: StoredBundle | undefined; changed: boolean }> {
    return this.#ops.bundles.mergeBundle(this.#s, merge);
  }

  deleteBundle(trustDomain: string): Promise<void> {
    return this.#ops.bundles.deleteBundle(this.#s, trustDomain);
  }

  getCaJournal(): Promise<Uint8Array | undefined> {
    return this.#ops.bundles.getCaJournal(this.#s);
  }

  setCaJournal(bytes: Uint8Array): Promise<void> {
    return this.#ops.bundles.setCaJournal(this.#s, bytes);
  }

  // ---------------------------------------------------------------- audit ledger

  appendAuditRecords(bodies: readonly string[], link: AuditLink, opts: AuditAppendOptions = {}): Promise<AuditRecordRow[]> {
    return this.#ops.audit.appendAuditRecords(this.#s, bodies, link, opts);
  }

  listAuditRecords(query: { afterSeq?: number; limit?: number } = {}): Promise<AuditRecordRow[]> {
    return this.#ops.audit.listAuditRecords(this.#s, query);
  }

  lastAuditRecord(): Promise<AuditRecordRow | undefined> {
    return this.#ops.audit.lastAuditRecord(this.#s);
  }

  pruneAuditRecords(beforeSeq: number): Promise<number> {
    return this.#ops.audit.pruneAuditRecords(this.#s, beforeSeq);
  }

  // ---------------------------------------------------------------- issued X509-SVIDs and revocations

  recordX509SvidIssuances(items: readonly X509SvidIssuance[]): Promise<void> {
    return this.#ops.svids.recordX509SvidIssuances(this.#s, items);
  }

  getX509SvidIssuance(serialHex: string): Promise<X509SvidIssuance | undefined> {
    return this.#ops.svids.getX509SvidIssuance(this.#s, serialHex);
  }

  listX509SvidIssuances(query: ListX509SvidIssuancesQuery): Promise<X509SvidIssuance[]> {
    return this.#ops.svids.listX509SvidIssuances(this.#s, query);
  }

  revokeX509Svids(items: readonly { serialHex: string; revokedAt: number; reason: string }[]): Promise<RevokedX509Svid[]> {
    return this.#ops.svids.revokeX509Svids(this.#s, items);
  }

  listRevokedX509Svids(): Promise<RevokedX509Svid[]> {
    return this.#ops.svids.listRevokedX509Svids(this.#s);
  }

  pruneX509Svids(before: number): Promise<number> {
    return this.#ops.svids.pruneX509Svids(this.#s, before);
  }

  // ---------------------------------------------------------------- entry usage

  recordEntryUsage(deltas: readonly EntryUsageDelta[]): Promise<void> {
    return this.#ops.usage.recordEntryUsage(this.#s, deltas);
  }

  listEntryUsage(): Promise<EntryUsage[]> {
    return this.#ops.usage.listEntryUsage(this.#s);
  }
}
