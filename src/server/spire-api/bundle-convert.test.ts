/**
 * The SPIRE ⇄ Mayfly conversions of the Bundle, SVID-mint and TrustDomain groups, with
 * SPIRE's words for what it refuses (pkg/server/api/{bundle,svid,trustdomain}/v1 at v1.13.3).
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SpiffeId, TrustDomain } from '../../spiffe/id.js';
import { createCsr } from '../../spiffe/x509/csr.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import { makeTestCa } from '../../spiffe/x509/testing.js';
import type { WireBundle } from '../messages.js';
import { applyBundleMask, bundleToSpireMarked, maskedUpdate, protoToBundleProblem, spireBundleToWire, spireTrustDomain } from './bundle-convert.js';
import { csrNames } from './csr-names.js';
import { SpireStatus } from './spire-call.js';
import { wildcardOverlap, workloadIdProblem } from './svid-mint.js';
import { bundleEndpointUrlProblem, maskedRelationshipUpdate, relationshipFromSpire, relationshipToSpire } from './trustdomain-convert.js';

const ca1 = makeTestCa({ trustDomain: 'peer.test' });
const ca2 = makeTestCa({ trustDomain: 'peer.test' });
const jwtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
const ski = (der: Buffer): string => Buffer.from(parseCertificate(der).subjectKeyId as Buffer).toString('hex');

const wire: WireBundle = {
  trust_domain: 'peer.test',
  x509_authorities: [ca1.certificate, ca2.certificate],
  jwt_authorities: [{ key_id: 'k1', public_key: jwtKey, expires_at: 0 }],
  refresh_hint: 300,
  sequence_number: 7,
};

describe('bundles', () => {
  it('flags tainted X.509 authorities by SKI and JWT ones by key ID, and dates JWT keys', () => {
    const b = bundleToSpireMarked(wire, { tainted: { x509: [ski(ca2.certificate)], jwt: ['k1'] }, jwtExpiry: new Map([['k1', 1234]]) });
    expect(b.x509_authorities.map((a) => a.tainted)).toEqual([false, true]);
    expect(b.jwt_authorities).toEqual([{ public_key: jwtKey, key_id: 'k1', expires_at: 1234, tainted: true }]);
    expect(b).toMatchObject({ trust_domain: 'peer.test', refresh_hint: 300, sequence_number: 7 });
  });

  it('applies the output mask as SPIRE does: nil keeps all, a set mask zeroes what it leaves out', () => {
    const b = bundleToSpireMarked(wire);
    expect(applyBundleMask(b, null)).toBe(b);
    expect(applyBundleMask(b, { x509_authorities: true })).toEqual({ trust_domain: 'peer.test', x509_authorities: b.x509_authorities, jwt_authorities: [], refresh_hint: 0, sequence_number: 0 });
    expect(applyBundleMask(b, {})).toMatchObject({ trust_domain: 'peer.test', x509_authorities: [], jwt_authorities: [] });
  });

  it("refuses what SPIRE's ProtoToBundle refuses, with its words", () => {
    const ok = bundleToSpireMarked(wire);
    expect(protoToBundleProblem(ok)).toBeUndefined();
    expect(protoToBundleProblem(null)).toBe('no bundle provided');
    expect(protoToBundleProblem({ ...ok, trust_domain: 'Bad Name' })).toMatch(/^invalid trust domain: /);
    expect(protoToBundleProblem({ ...ok, x509_authorities: [{ asn1: Buffer.from('not a cert'), tainted: false }] })).toMatch(/^unable to parse X\.509 authority: /);
    expect(protoToBundleProblem({ ...ok, jwt_authorities: [{ public_key: Buffer.from([1, 2, 3]), key_id: 'k', expires_at: 0, tainted: false }] })).toMatch(/^unable to parse JWT authority: /);
    expect(protoToBundleProblem({ ...ok, jwt_authorities: [{ public_key: jwtKey, key_id: '', expires_at: 0, tainted: false }] })).toBe('unable to parse JWT authority: missing key ID');
  });

  it("takes SPIRE CLI's `-id spiffe://peer.test` as the bare trust domain", () => {
    expect(spireBundleToWire({ ...bundleToSpireMarked(wire), trust_domain: 'spiffe://peer.test' }).trust_domain).toBe('peer.test');
    expect(spireTrustDomain('spiffe://peer.test', 'x').name).toBe('peer.test');
    const err = (() => {
      try {
        spireTrustDomain('', 'trust domain argument is not valid');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SpireStatus);
    expect((err as SpireStatus).message).toBe('trust domain argument is not valid: trust domain is missing');
  });

  it('updates only the masked fields (nil mask: all of them)', () => {
    const update: WireBundle = { ...wire, x509_authorities: [ca1.certificate], refresh_hint: 60, sequence_number: 9 };
    expect(maskedUpdate(wire, update, null)).toBe(update);
    expect(maskedUpdate(wire, update, { refresh_hint: true })).toEqual({ ...wire, refresh_hint: 60 });
  });
});

describe('SVID mint checks', () => {
  it("reads the CSR's URI and DNS SANs", () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csr = createCsr({ privateKey, uri: 'spiffe://example.org/w', dnsNames: ['a.example.org', 'b.example.org'] });
    expect(csrNames(csr)).toEqual({ uris: ['spiffe://example.org/w'], dnsNames: ['a.example.org', 'b.example.org'] });
    expect(csrNames(createCsr({ privateKey }))).toEqual({ uris: [], dnsNames: [] });
    expect(() => csrNames(Buffer.from('junk'))).toThrow();
  });

  it("words workload ID refusals as SPIRE's VerifyTrustDomainWorkloadID", () => {
    const td = TrustDomain.parse('example.org');
    expect(workloadIdProblem(td, SpiffeId.parse('spiffe://example.org/w'))).toBeUndefined();
    expect(workloadIdProblem(td, SpiffeId.parse('spiffe://other.org/w'))).toBe('"spiffe://other.org/w" is not a member of trust domain "example.org"');
    expect(workloadIdProblem(td, SpiffeId.parse('spiffe://example.org'))).toBe('"spiffe://example.org" is not a workload in trust domain "example.org"; path is empty');
    expect(workloadIdProblem(td, SpiffeId.parse('spiffe://example.org/spire/agent/x'))).toMatch(/path is in the reserved namespace$/);
    expect(workloadIdProblem(td, SpiffeId.parse('spiffe://example.org/spirea'))).toBeUndefined();
  });

  it('finds a DNS name a wildcard of the same list covers', () => {
    expect(wildcardOverlap(['*.example.org', 'a.example.org'])).toBe('name "a.example.org" overlaps with an existing wildcard name in the list: wildcard overlap');
    expect(wildcardOverlap(['*.example.org', 'a.b.example.org', 'example.org'])).toBeUndefined();
  });
});

describe('federation relationships', () => {
  const base = { trust_domain: 'peer.test', bundle_endpoint_url: 'https://peer.test:8443/bundle', https_web: {}, bundle_endpoint_profile: 'https_web' as const };

  it('checks the bundle endpoint URL as SPIRE does', () => {
    expect(bundleEndpointUrlProblem('https://peer.test/x')).toBeUndefined();
    expect(bundleEndpointUrlProblem('http://peer.test/x')).toBe('bundle endpoint URL must use the https scheme');
    expect(bundleEndpointUrlProblem('peer.test/x')).toBe('bundle endpoint URL must use the https scheme');
    expect(bundleEndpointUrlProblem('https://user:pw@peer.test/x')).toBe('bundle endpoint URL must not contain user info');
    expect(bundleEndpointUrlProblem('https://exa mple.org/')).toMatch(/^failed to parse bundle endpoint URL: parse "https:\/\/exa mple\.org\/": /);
  });

  it('converts both ways and refuses a foreign bootstrap bundle', () => {
    const converted = relationshipFromSpire({ ...base, trust_domain_bundle: bundleToSpireMarked(wire) });
    expect('rel' in converted && converted.rel).toMatchObject({ trust_domain: 'peer.test', https_web: {}, trust_domain_bundle: { trust_domain: 'peer.test' } });
    const other = relationshipFromSpire({ ...base, trust_domain_bundle: { ...bundleToSpireMarked(wire), trust_domain: 'third.test' } });
    expect(other).toEqual({ problem: 'trust domain bundle ("third.test") must match the trust domain of the federation relationship ("peer.test")' });
    expect(relationshipFromSpire({ trust_domain: 'peer.test', bundle_endpoint_url: 'https://peer.test/' })).toEqual({ problem: 'unsupported bundle endpoint profile type: <nil>' });
    expect(relationshipFromSpire({ ...base, https_web: null, bundle_endpoint_profile: 'https_spiffe', https_spiffe: { endpoint_spiffe_id: 'nope' } })).toMatchObject({
      problem: expect.stringMatching(/^failed to parse endpoint SPIFFE ID: /),
    });
    const w = { ...base, https_spiffe: null, created_at: 1, updated_at: 2, trust_domain_bundle: wire };
    expect(relationshipToSpire(w)).toMatchObject({ trust_domain: 'peer.test', bundle_endpoint_url: base.bundle_endpoint_url, https_web: {}, trust_domain_bundle: { trust_domain: 'peer.test' } });
    expect(relationshipToSpire(w, { bundle_endpoint_url: true })).toEqual({ trust_domain: 'peer.test', bundle_endpoint_url: base.bundle_endpoint_url });
  });

  it('updates only the masked fields of a relationship', () => {
    const stored = { ...base, created_at: 0, updated_at: 0 };
    const update = { trust_domain: 'peer.test', bundle_endpoint_url: 'https://new.peer.test/', https_spiffe: { endpoint_spiffe_id: 'spiffe://peer.test/b' }, created_at: 0, updated_at: 0 };
    expect(maskedRelationshipUpdate(stored, update, { bundle_endpoint_url: true })).toEqual({ trust_domain: 'peer.test', bundle_endpoint_url: 'https://new.peer.test/', https_web: {}, created_at: 0, updated_at: 0 });
    expect(maskedRelationshipUpdate(stored, update, { bundle_endpoint_profile: true })).toMatchObject({ bundle_endpoint_url: base.bundle_endpoint_url, https_spiffe: update.https_spiffe });
  });
});
