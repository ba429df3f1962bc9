/**
 * @module server/static-relationships
 *
 * Writes the static federation relationships of `server.conf` (server/config-federates-with)
 * to the datastore at start: created when missing, replaced when the stored one differs (the
 * file wins), left alone when equal. Relationships created through the API are not touched.
 */
import type { Datastore, NewFederationRelationship } from '../datastore/datastore.js';
import type { ServerLogger } from './ports.js';

export async function applyStaticRelationships(
  ds: Pick<Datastore, 'getFederationRelationship' | 'createFederationRelationship' | 'updateFederationRelationship'>,
  rels: readonly NewFederationRelationship[],
  log: ServerLogger,
): Promise<void> {
  for (const rel of rels) {
    const stored = await ds.getFederationRelationship(rel.trustDomain);
    if (stored === undefined) {
      await ds.createFederationRelationship(rel);
      log.info({ trustDomain: rel.trustDomain, bundleEndpointUrl: rel.bundleEndpointUrl, profile: rel.bundleEndpointProfile }, 'federation relationship from server.conf created');
      continue;
    }
    const same =
      stored.bundleEndpointUrl === rel.bundleEndpointUrl && stored.bundleEndpointProfile === rel.bundleEndpointProfile && stored.endpointSpiffeId === rel.endpointSpiffeId;
    if (same) continue;
    await ds.updateFederationRelationship(rel);
    log.info({ trustDomain: rel.trustDomain, bundleEndpointUrl: rel.bundleEndpointUrl, profile: rel.bundleEndpointProfile }, 'federation relationship from server.conf replaced the stored one');
  }
}
