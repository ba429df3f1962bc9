/**
 * @module datastore
 *
 * The server's storage: the `Datastore` interface, its shared record checks and errors,
 * and the LevelDB and PostgreSQL implementations. The conformance suite
 * (`conformance.ts`) is imported by implementations' tests only, since it registers
 * vitest blocks.
 */
export type * from './datastore.js';
export { DatastoreError, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_BATCH_CREATE } from './records.js';
export { openLevelDatastore, LevelDatastore, type LevelDatastoreConfig } from './level/level.js';
export { openPostgresDatastore, PostgresDatastore, type PostgresDatastoreConfig, type DatastoreChange } from './postgres/postgres.js';
