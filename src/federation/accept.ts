/**
 * @module federation/accept
 *
 * Whether a fetched document may replace the stored bundle of a peer trust domain.
 *
 * Threats it stops:
 * - A peer (or whoever answers at its endpoint) planting another trust domain's roots under
 *   the peer's name: the document must parse as a SPIFFE bundle (spiffe/bundle/parse);
 *   every X.509 authority that names a SPIFFE trust domain in a URI SAN (SPIFFE CA
 *   certificates do) must name this one; and when the endpoint is the peer's own
 *   (`https_spiffe` with an endpoint SPIFFE ID in that trust domain), the new X.509
 *   authorities must still verify the certificate the endpoint just presented, so the
 *   bundle is the one its own CA publishes.
 * - Replay of an old bundle (one with a revoked key): a `spiffe_sequence` lower than the
 *   stored one is a downgrade and refused (a missing sequence counts as 0).
 */
import { Bundle } from '../spiffe/bundle/bundle.js';
import { parseBundle } from '../spiffe/bundle/parse.js';
import { SpiffeId, type TrustDomain } from '../spiffe/id.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { BundleRefusal } from './refusal.js';

export interface AcceptInput {
  readonly trustDomain: TrustDomain;
  readonly body: string;
  /** The stored bundle's sequence (undefined when none is stored). */
  readonly storedSequence?: number;
  /** https_spiffe: the endpoint's verified chain and SPIFFE ID. */
  readonly endpoint?: { readonly chain: readonly Buffer[]; readonly spiffeId: SpiffeId };
  readonly now: Date;
  readonly maxBytes: number;
  /** For messages: `bundle endpoint <url> of <td>`. */
  readonly where: string;
}

export function acceptPeerBundle(a: AcceptInput): Bundle {
  let bundle: Bundle;
  try {
    bundle = parseBundle(a.body, a.trustDomain, { maxBytes: a.maxBytes });
  } catch (err) {
    throw new BundleRefusal('invalid_bundle', `${a.where}: it served no SPIFFE bundle: ${(err as Error).message}`);
  }
  for (const der of bundle.x509Authorities) {
    for (const uri of parseCertificate(der).uriSans) {
      if (!uri.startsWith('spiffe://')) continue;
      let named: string;
      try {
        named = SpiffeId.parse(uri).trustDomain.name;
      } catch {
        continue;
      }
      if (named !== a.trustDomain.name) {
        throw new BundleRefusal('wrong_trust_domain', `${a.where}: it served a bundle whose X.509 authority is for ${named}, not ${a.trustDomain.name}`);
      }
    }
  }
  if (a.endpoint !== undefined && a.endpoint.spiffeId.trustDomain.equals(a.trustDomain)) {
    try {
      verifyX509Svid(a.endpoint.chain, { trustDomain: a.trustDomain, x509Authorities: bundle.x509Authorities }, { now: a.now });
    } catch (err) {
      throw new BundleRefusal(
        'wrong_trust_domain',
        `${a.where}: its new bundle's X.509 authorities do not verify the endpoint's own certificate, so it is not ${a.trustDomain.name}'s bundle: ${(err as Error).message}`,
      );
    }
  }
  const seq = bundle.sequence ?? 0;
  if (a.storedSequence !== undefined && seq < a.storedSequence) {
    throw new BundleRefusal('sequence_downgrade', `${a.where}: it served spiffe_sequence ${seq}, lower than the stored ${a.storedSequence} (a downgrade)`);
  }
  return bundle;
}
