/**
 * @module server/spire-api/entry-admin
 *
 * SPIRE's Entry admin RPCs (CountEntries, ListEntries, GetEntry, BatchCreateEntry, BatchUpdateEntry, BatchDeleteEntry). Not served yet: every RPC of it answers UNIMPLEMENTED.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { MayflyImpls } from './delegate.js';

export function entryAdminHandlers(_ctx: ApiContext, _t: Transport, _mayfly: MayflyImpls): UntypedServiceImplementation {
  return {};
}
