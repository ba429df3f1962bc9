/**
 * @module server/spire-api/trustdomain-convert
 *
 * SPIRE's `spire.api.types.FederationRelationship` to and from Mayfly's wire relationship,
 * with SPIRE's `api.ProtoToFederationRelationship` checks in its order and words (the text
 * after SPIRE's prefix is Mayfly's parser's, not Go's), and SPIRE's output mask.
 */
import { SpiffeId, TrustDomain } from '../../spiffe/id.js';
import type { WireFederationRelationship } from '../messages.js';
import { bundleToSpireMarked, protoToBundleProblem, spireBundleToWire } from './bundle-convert.js';
import type { SpireBundle, SpireMask } from './types.js';

export interface SpireFederationRelationship {
  trust_domain: string;
  bundle_endpoint_url: string;
  https_web?: Record<string, never> | null;
  https_spiffe?: { endpoint_spiffe_id: string } | null;
  bundle_endpoint_profile?: 'https_web' | 'https_spiffe';
  trust_domain_bundle?: SpireBundle | null;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Go's `url.Parse` + SPIRE's checks of a bundle endpoint URL; the reason it is refused, or undefined. */
export function bundleEndpointUrlProblem(raw: string): string | undefined {
  // Go parses a string without a scheme as a relative URL, which then fails the scheme check.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw)) return 'bundle endpoint URL must use the https scheme';
  let u: URL;
  try {
    u = new URL(raw);
  } catch (err) {
    return `failed to parse bundle endpoint URL: parse ${JSON.stringify(raw)}: ${errorText(err)}`;
  }
  if (u.protocol !== 'https:') return 'bundle endpoint URL must use the https scheme';
  if (u.host === '') return 'bundle endpoint URL must specify the host';
  if (u.username !== '' || u.password !== '' || /^https:\/\/[^/]*@/i.test(raw)) return 'bundle endpoint URL must not contain user info';
  return undefined;
}

/**
 * SPIRE's relationship as Mayfly's wire relationship, or the reason SPIRE would refuse it
 * (answered as "failed to convert federation relationship: <reason>").
 */
export function relationshipFromSpire(f: Partial<SpireFederationRelationship> | null | undefined): { rel: WireFederationRelationship } | { problem: string } {
  if (f === null || f === undefined) return { problem: 'missing federation relationship' };
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(f.trust_domain ?? '');
  } catch (err) {
    return { problem: `failed to parse trust domain: ${errorText(err)}` };
  }
  const url = f.bundle_endpoint_url ?? '';
  const urlProblem = bundleEndpointUrlProblem(url);
  if (urlProblem !== undefined) return { problem: urlProblem };
  const rel: WireFederationRelationship = { trust_domain: td.name, bundle_endpoint_url: url, created_at: 0, updated_at: 0 };
  const which = f.bundle_endpoint_profile ?? (f.https_spiffe ? 'https_spiffe' : f.https_web ? 'https_web' : undefined);
  if (which === 'https_spiffe') {
    if (f.https_spiffe === null || f.https_spiffe === undefined) return { problem: 'bundle endpoint profile does not contain "HttpsSpiffe"' };
    try {
      SpiffeId.parse(f.https_spiffe.endpoint_spiffe_id ?? '');
    } catch (err) {
      return { problem: `failed to parse endpoint SPIFFE ID: ${errorText(err)}` };
    }
    rel.https_spiffe = { endpoint_spiffe_id: f.https_spiffe.endpoint_spiffe_id };
  } else if (which === 'https_web') {
    rel.https_web = {};
  } else {
    return { problem: 'unsupported bundle endpoint profile type: <nil>' };
  }
  const b = f.trust_domain_bundle;
  if (b !== null && b !== undefined) {
    const problem = protoToBundleProblem(b);
    if (problem !== undefined) return { problem: `failed to parse bundle: ${problem}` };
    const w = spireBundleToWire(b);
    if (w.trust_domain !== td.name) return { problem: `trust domain bundle (${JSON.stringify(b.trust_domain)}) must match the trust domain of the federation relationship (${JSON.stringify(td.name)})` };
    rel.trust_domain_bundle = w;
  }
  return { rel };
}

/** Mayfly's wire relationship as SPIRE's, with SPIRE's output mask (nil: every field). */
export function relationshipToSpire(w: WireFederationRelationship, mask?: SpireMask | null): SpireFederationRelationship {
  const all = mask === null || mask === undefined;
  const out: SpireFederationRelationship = { trust_domain: w.trust_domain, bundle_endpoint_url: '' };
  if (all || mask.bundle_endpoint_url === true) out.bundle_endpoint_url = w.bundle_endpoint_url;
  if (all || mask.bundle_endpoint_profile === true) {
    if (w.https_spiffe !== null && w.https_spiffe !== undefined) out.https_spiffe = { endpoint_spiffe_id: w.https_spiffe.endpoint_spiffe_id };
    else out.https_web = {};
  }
  if ((all || mask.trust_domain_bundle === true) && w.trust_domain_bundle !== null && w.trust_domain_bundle !== undefined) {
    out.trust_domain_bundle = bundleToSpireMarked(w.trust_domain_bundle);
  }
  return out;
}

/**
 * SPIRE's UpdateFederationRelationship with an input mask: fields the mask leaves out keep
 * the stored relationship's values (the stored bundle is then left alone).
 */
export function maskedRelationshipUpdate(stored: WireFederationRelationship, update: WireFederationRelationship, mask: SpireMask | null | undefined): WireFederationRelationship {
  if (mask === null || mask === undefined) return update;
  const out: WireFederationRelationship = { trust_domain: update.trust_domain, bundle_endpoint_url: stored.bundle_endpoint_url, created_at: 0, updated_at: 0 };
  if (mask.bundle_endpoint_url === true) out.bundle_endpoint_url = update.bundle_endpoint_url;
  const profile = mask.bundle_endpoint_profile === true ? update : stored;
  if (profile.https_spiffe !== null && profile.https_spiffe !== undefined) out.https_spiffe = profile.https_spiffe;
  else out.https_web = {};
  if (mask.trust_domain_bundle === true && update.trust_domain_bundle !== null && update.trust_domain_bundle !== undefined) out.trust_domain_bundle = update.trust_domain_bundle;
  return out;
}
