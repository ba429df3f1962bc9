/**
 * @module datastore/datastore-error
 *
 * The codes the datastore raises (stable: never rename one). The class that carries them,
 * `DatastoreError`, is in `records.ts` with the checks every implementation shares.
 * A consumed join token that is unknown, used or expired is `ERR_JOIN_TOKEN_INVALID`,
 * declared by the attestor whose contract that is (`src/attestors/attestor-error.ts`);
 * a bad selector or entry is registration's `ERR_SELECTOR_INVALID` / `ERR_ENTRY_INVALID`.
 */
export type DatastoreErrorCode =
  | 'ERR_DATASTORE_NOT_FOUND'
  | 'ERR_DATASTORE_ALREADY_EXISTS'
  | 'ERR_DATASTORE_CONFLICT'
  | 'ERR_DATASTORE_INVALID'
  | 'ERR_DATASTORE_UNAVAILABLE';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<DatastoreErrorCode, 'datastore'> {}
}
