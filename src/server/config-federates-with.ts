/**
 * @module server/config-federates-with
 *
 * Static federation relationships: `federates_with "<trust domain>" { ... }` inside
 * `server { federation { ... } }`, spelt as SPIRE spells them:
 *
 *     federates_with "partner.org" {
 *       bundle_endpoint_url = "https://partner.org:8443"
 *       bundle_endpoint_profile "https_spiffe" {
 *         endpoint_spiffe_id = "spiffe://partner.org/spire/server"
 *       }
 *     }
 *
 * (`bundle_endpoint_profile "https_web" {}` for Web PKI.) The server writes them to its
 * datastore at every start (server/runner), so `federation list` shows them and the peer
 * bundle fetcher polls them like any other; the file wins over an earlier `federation update`.
 *
 * Threat: a relationship for the server's own trust domain would let a peer's endpoint
 * replace our own trust anchors; it is refused, as are endpoint URLs and profiles the
 * fetcher would misuse (federation/profile).
 */
import { at, block, checkKeys, str } from '../config/accessors.js';
import { isHclObject, type HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';
import type { NewFederationRelationship } from '../datastore/datastore.js';
import { bundleEndpointProfile, parseBundleEndpointUrl } from '../federation/profile.js';
import { TrustDomain } from '../spiffe/id.js';

const RELATIONSHIP_KEYS = ['bundle_endpoint_url', 'bundle_endpoint_profile'] as const;
const PROFILES = ['https_spiffe', 'https_web'] as const;

/** The relationships of `federation.federates_with` (`where` is the federation block's path). */
export function readFederatesWith(fed: HclObject, ownTrustDomain: string, where: string, p: Problems): NewFederationRelationship[] {
  const all = fed.federates_with;
  if (all === undefined) return [];
  const w = at(where, 'federates_with');
  if (!isHclObject(all)) {
    p.add(`${w} must be named blocks: federates_with "<trust domain>" { ... }`);
    return [];
  }
  const out: NewFederationRelationship[] = [];
  for (const [name, body] of Object.entries(all)) {
    const rw = `${w}.${name}`;
    if (!isHclObject(body)) {
      p.add(`${rw} must be a block`);
      continue;
    }
    checkKeys(body, RELATIONSHIP_KEYS, rw, p);
    let td: string | undefined;
    try {
      td = TrustDomain.parse(name).name;
      if (td !== name) throw new Error(`write it as ${td}`);
    } catch (err) {
      p.add(`${rw}: ${JSON.stringify(name)} is not a trust domain name: ${(err as Error).message}`);
      td = undefined;
    }
    if (td !== undefined && td === ownTrustDomain) p.add(`${rw}: ${td} is the server's own trust domain; federates_with names foreign trust domains`);
    const url = str(body, 'bundle_endpoint_url', rw, p);
    if (url === undefined) p.add(`${at(rw, 'bundle_endpoint_url')} is required`);
    else {
      try {
        parseBundleEndpointUrl(url);
      } catch (err) {
        p.add(`${at(rw, 'bundle_endpoint_url')}: ${(err as Error).message}`);
      }
    }
    const pw = at(rw, 'bundle_endpoint_profile');
    const prof = block(body, 'bundle_endpoint_profile', rw, p);
    if (prof === undefined) {
      if (body.bundle_endpoint_profile === undefined) p.add(`${pw} is required: bundle_endpoint_profile "https_spiffe" { endpoint_spiffe_id = "..." } or bundle_endpoint_profile "https_web" {}`);
      continue;
    }
    checkKeys(prof, PROFILES, pw, p);
    const names = Object.keys(prof).filter((k) => (PROFILES as readonly string[]).includes(k));
    if (names.length !== 1) {
      if (Object.keys(prof).length === 0 || names.length > 1) p.add(`${pw} must name exactly one profile: https_spiffe or https_web`);
      continue;
    }
    const profileName = names[0] as (typeof PROFILES)[number];
    const settings = block(prof, profileName, pw, p) ?? {};
    const sw = `${pw}.${profileName}`;
    checkKeys(settings, profileName === 'https_spiffe' ? ['endpoint_spiffe_id'] : [], sw, p);
    const id = profileName === 'https_spiffe' ? str(settings, 'endpoint_spiffe_id', sw, p) : undefined;
    let endpointSpiffeId = '';
    try {
      const profile = bundleEndpointProfile(profileName, id);
      if (profile.name === 'https_spiffe') endpointSpiffeId = profile.endpointSpiffeId.toString();
    } catch (err) {
      p.add(`${sw}: ${(err as Error).message}`);
      continue;
    }
    if (td === undefined || url === undefined || td === ownTrustDomain) continue;
    out.push({ trustDomain: td, bundleEndpointUrl: url, bundleEndpointProfile: profileName, endpointSpiffeId });
  }
  return out;
}
