/**
 * @module server/console/source
 *
 * What the console's pages read, declared here by the consumer: a few read-only calls over
 * the datastore, the CA and the inventory, never the whole server. The runner composes them
 * from its parts (`consoleSource`); tests may pass fakes.
 */
import type { AttestedAgent, AuditRecordRow, EntryUsage, ListAgentsQuery, ListEntriesQuery, Page, RevokedX509Svid } from '../../datastore/datastore.js';
import type { RegistrationEntry } from '../../registration/entry.js';
import type { AuthorityInfo, AuthorityKind } from '../../ca/authority.js';
import type { InventoryReport } from '../inventory.js';

export interface ConsoleStore {
  listEntries(q: ListEntriesQuery): Promise<Page<RegistrationEntry>>;
  countEntries(): Promise<number>;
  listAgents(q: ListAgentsQuery): Promise<Page<AttestedAgent>>;
  countAgents(): Promise<number>;
  listEntryUsage(): Promise<EntryUsage[]>;
  listRevokedX509Svids(): Promise<RevokedX509Svid[]>;
  lastAuditRecord(): Promise<AuditRecordRow | undefined>;
  listAuditRecords(q: { afterSeq?: number; limit?: number }): Promise<AuditRecordRow[]>;
}

export interface ConsoleCa {
  readonly trustDomain: { readonly name: string };
  authorityState(kind: AuthorityKind): { readonly all: readonly AuthorityInfo[] };
}

export interface ConsoleSource {
  readonly store: ConsoleStore;
  readonly ca: ConsoleCa;
  /** The inventory report now (server/inventory). */
  inventory(): Promise<InventoryReport>;
  /** Whether the audit ledger is on (server.conf `audit`). */
  readonly auditEnabled: boolean;
  now(): Date;
}
