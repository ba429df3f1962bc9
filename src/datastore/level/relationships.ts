/**
 * @module datastore/level/relationships
 *
 * Federation relationships on LevelDB (`r!<trust domain>` → relationship JSON). Writes run
 * in the store's write queue, so a create racing another create of the same trust domain
 * sees it.
 */
import type { FederationRelationship, ListFederationRelationshipsQuery, NewFederationRelationship, Page } from '../datastore.js';
import { checkFederationRelationship, checkPageSize, checkTrustDomainArg, DatastoreError, decodePageToken, encodePageToken, RELATIONSHIP_PAGE_KIND } from '../records.js';
import type { LevelStore } from './store.js';

const key = (td: string): string => `r!${td}`;

async function read(s: LevelStore, td: string): Promise<FederationRelationship | undefined> {
  const v = await s.db.get(key(td));
  return v === undefined ? undefined : (JSON.parse(v) as FederationRelationship);
}

export async function createFederationRelationship(s: LevelStore, input: NewFederationRelationship): Promise<FederationRelationship> {
  s.check();
  const r = checkFederationRelationship(input);
  return s.exclusive(async () => {
    if ((await read(s, r.trustDomain)) !== undefined) {
      throw new DatastoreError('ERR_DATASTORE_ALREADY_EXISTS', `a federation relationship with ${r.trustDomain} already exists; update it instead`);
    }
    const now = s.seconds();
    const rec: FederationRelationship = { ...r, createdAt: now, updatedAt: now };
    await s.write([{ type: 'put', key: key(r.trustDomain), value: JSON.stringify(rec) }]);
    return rec;
  });
}

export async function getFederationRelationship(s: LevelStore, trustDomain: string): Promise<FederationRelationship | undefined> {
  s.check();
  checkTrustDomainArg(trustDomain, 'trustDomain');
  return read(s, trustDomain);
}

export async function updateFederationRelationship(s: LevelStore, input: NewFederationRelationship): Promise<FederationRelationship> {
  s.check();
  const r = checkFederationRelationship(input);
  return s.exclusive(async () => {
    const old = await read(s, r.trustDomain);
    if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no federation relationship with ${r.trustDomain}`);
    const rec: FederationRelationship = { ...r, createdAt: old.createdAt, updatedAt: s.seconds() };
    await s.write([{ type: 'put', key: key(r.trustDomain), value: JSON.stringify(rec) }]);
    return rec;
  });
}

export async function deleteFederationRelationship(s: LevelStore, trustDomain: string): Promise<FederationRelationship> {
  s.check();
  checkTrustDomainArg(trustDomain, 'trustDomain');
  return s.exclusive(async () => {
    const old = await read(s, trustDomain);
    if (old === undefined) throw new DatastoreError('ERR_DATASTORE_NOT_FOUND', `no federation relationship with ${trustDomain}`);
    await s.write([{ type: 'del', key: key(trustDomain) }]);
    return old;
  });
}

export async function listFederationRelationships(s: LevelStore, query: ListFederationRelationshipsQuery = {}): Promise<Page<FederationRelationship>> {
  s.check();
  const pageSize = checkPageSize(query.pageSize);
  const after = decodePageToken(RELATIONSHIP_PAGE_KIND, query.pageToken);
  const vs = await s.db.values(after === undefined ? { gte: 'r!', lt: 'r"', limit: pageSize } : { gt: key(after), lt: 'r"', limit: pageSize }).all();
  const items = vs.map((v) => JSON.parse(v) as FederationRelationship);
  const last = items[items.length - 1];
  return { items, nextPageToken: items.length === pageSize && last !== undefined ? encodePageToken(RELATIONSHIP_PAGE_KIND, last.trustDomain) : '' };
}
