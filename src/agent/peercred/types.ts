/**
 * @module agent/peercred/types
 *
 * The shape of peer credentials, shared by every platform implementation: the Workload
 * API's own declaration (`src/workloadapi/identities.ts`), which this room fills in.
 */
export type { CallerCheck, PeerCredentials } from '../../workloadapi/identities.js';
