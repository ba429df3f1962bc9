/**
 * @module datastore/postgres/relationships
 *
 * Federation relationships on PostgreSQL (table `federation_relationships`, schema
 * version 2). A create is `ON CONFLICT DO NOTHING`, so of two servers creating the same
 * relationship at once exactly one succeeds and the other gets `ERR_DATASTORE_ALREADY_EXISTS`.
 */
import type { FederationProfileName, FederationRelationship, ListFederationRelationshipsQuery, NewFederationRelationship, Page } from '../datastore.js';
import { checkFederationRelationship, checkPageSize, checkTrustDomainArg, DatastoreError, decodePageToken, encodePageToken, RELATIONSHIP_PAGE_KIND } from '../records.js';
import type { PostgresStore } from './store.js';

interface Row {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: string;
  endpoint_spiffe_id: string;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id, created_at, updated_at';

function fromRow(r: Row): FederationRelationship {
  return {
    trustDomain: r.trust_domain,
    bundleEndpointUrl: r.bundle_endpoint_url,
    bundleEndpointProfile: r.profile as FederationProfileName,
    endpointSpiffeId: r.endpoint_spiffe_id,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export function createFederationRelationship(s: PostgresStore, input: NewFederationRelationship): Promise<FederationRelationship> {
  return s.run(async () => {
    const r = checkFederationRelationship(input);
    const now = s.seconds();
    const res = await s.query<Row>(
      `INSERT INTO ${s.S}.federation_relationships (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (trust_domain) DO NOTHING RETURNING ${COLUMNS}`,
      [r.trustDomain, r.bundleEndpointUrl, r.bundleEndpointProfile, r.endpointSpiffeId, now],
    );
    if (res.rows[0] === undefined) {
      throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `a federation relationship with ${r.trustDomain} already exists; update it instead`);
    }
    return fromRow(res.rows[0]);
  });
}

export function getFederationRelationship(s: PostgresStore, trustDomain: string): Promise<FederationRelationship | undefined> {
  return s.run(async () => {
    checkTrustDomainArg(trustDomain, 'trustDomain');
    const res = await s.query<Row>(`SELECT ${COLUMNS} FROM ${s.S}.federation_relationships WHERE trust_domain = $1`, [trustDomain]);
    return res.rows[0] === undefined ? undefined : fromRow(res.rows[0]);
  });
}

export function updateFederationRelationship(s: PostgresStore, input: NewFederationRelationship): Promise<FederationRelationship> {
  return s.run(async () => {
    const r = checkFederationRelationship(input);
    const res = await s.query<Row>(
      `UPDATE ${s.S}.federation_relationships SET bundle_endpoint_url = $2, profile = $3, endpoint_spiffe_id = $4, updated_at = $5 WHERE trust_domain = $1 RETURNING ${COLUMNS}`,
      [r.trustDomain, r.bundleEndpointUrl, r.bundleEndpointProfile, r.endpointSpiffeId, s.seconds()],
    );
    if (res.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no federation relationship with ${r.trustDomain}`);
    return fromRow(res.rows[0]);
  });
}

export function deleteFederationRelationship(s: PostgresStore, trustDomain: string): Promise<FederationRelationship> {
  return s.run(async () => {
    checkTrustDomainArg(trustDomain, 'trustDomain');
    const res = await s.query<Row>(`DELETE FROM ${s.S}.federation_relationships WHERE trust_domain = $1 RETURNING ${COLUMNS}`, [trustDomain]);
    if (res.rows[0] === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no federation relationship with ${trustDomain}`);
    return fromRow(res.rows[0]);
  });
}

export function listFederationRelationships(s: PostgresStore, query: ListFederationRelationshipsQuery = {}): Promise<Page<FederationRelationship>> {
  return s.run(async () => {
    const pageSize = checkPageSize(query.pageSize);
    const after = decodePageToken(RELATIONSHIP_PAGE_KIND, query.pageToken);
    const res = await s.query<Row>(
      `SELECT ${COLUMNS} FROM ${s.S}.federation_relationships${after === undefined ? '' : ' WHERE trust_domain > $2'} ORDER BY trust_domain LIMIT $1`,
      after === undefined ? [pageSize] : [pageSize, after],
    );
    const items = res.rows.map(fromRow);
    const last = items[items.length - 1];
    return { items, nextPageToken: items.length === pageSize && last !== undefined ? encodePageToken(RELATIONSHIP_PAGE_KIND, last.trustDomain) : '' };
  });
}
