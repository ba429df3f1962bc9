/**
 * @module ca
 *
 * Mayfly's certificate authority: key managers (memory, disk), the disk upstream
 * authority, the journal store seam, and ServerCa (X.509 and JWT authorities with
 * prepare/activate/old rotation, operator controls, and the SVID mint paths).
 */
export type { AuthorityInfo, AuthorityKind, AuthorityState, AuthorityStatus, CaEvent, CaLogger } from './authority.js';
export { SILENT_LOGGER } from './authority.js';
export { type KeyManager, MemoryKeyManager } from './key-manager.js';
export { DiskKeyManager, type DiskKeyManagerConfig } from './disk-key-manager.js';
export { type CaJournalStore, FileJournalStore, type FileJournalStoreConfig, MemoryJournalStore } from './journal-store.js';
export { CaJournalError } from './journal.js';
export { CaFileError } from './secure-file.js';
export { loadDiskUpstreamAuthority, type DiskUpstreamAuthorityConfig, type UpstreamAuthority, UpstreamAuthorityError } from './upstream.js';
export {
  ServerCa, CaError, type ServerCaConfig, type SignX509SvidRequest, type SignedX509Svid, type SignJwtSvidRequest, type SignedJwtSvid,
  DEFAULT_CA_TTL_SECONDS, DEFAULT_X509_SVID_TTL_SECONDS, DEFAULT_JWT_SVID_TTL_SECONDS, DEFAULT_BUNDLE_REFRESH_HINT_SECONDS, DEFAULT_TICK_INTERVAL_MS,
} from './server-ca.js';
