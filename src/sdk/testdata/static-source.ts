/**
 * Test support: an in-memory X509SvidSourceLike whose SVID a test swaps (a rotation) and
 * hostile identities built on sdk/testing's fake trust domains.
 */
import { EventEmitter } from 'node:events';
import { Bundle, BundleSet } from '../../spiffe/bundle/index.js';
import { SpiffeId } from '../../spiffe/id.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import { makeHostileCert } from '../../spiffe/x509/testing.js';
import type { X509Svid } from '../model.js';
import type { FakeSvid, FakeTrustDomain } from '../testing.js';
import type { X509SvidSourceLike } from '../tls.js';

export function toSvid(f: FakeSvid): X509Svid {
  const leaf = parseCertificate(f.certificates[0] as Buffer);
  const uri = leaf.uriSans[0] as string;
  return { id: SpiffeId.parse(uri), certificates: f.certificates, privateKey: f.key.privateKey, keyType: 'ec-p256', hint: f.hint, expiresAt: leaf.notAfter };
}

/** A source holding `svid`, trusting the roots of `trusted`; `rotate` swaps the SVID and emits 'update'. */
export class StaticSource extends EventEmitter implements X509SvidSourceLike {
  #svid: X509Svid;
  readonly #bundles: BundleSet;
  constructor(svid: FakeSvid, trusted: FakeTrustDomain[]) {
    super();
    this.#svid = toSvid(svid);
    this.#bundles = new BundleSet({ bundles: trusted.map((t) => new Bundle({ trustDomain: t.trustDomain, x509Authorities: [t.ca.certificate] })) });
  }
  getX509Svid(): X509Svid {
    return this.#svid;
  }
  getX509Bundles(): BundleSet {
    return this.#bundles;
  }
  rotate(svid: FakeSvid): void {
    this.#svid = toSvid(svid);
    this.emit('update');
  }
}

/** A leaf signed by `td`'s root with the given URI SANs and validity (a hostile SVID). */
export function hostileSvid(td: FakeTrustDomain, uris: string[], validity: { notBefore?: Date; notAfter?: Date } = {}): FakeSvid {
  const { certificate, key } = makeHostileCert({ issuer: { certificate: td.ca.certificate, privateKey: td.ca.key.privateKey }, uris, ...validity });
  return { spiffeId: uris[0] ?? '', certificates: [certificate], key, hint: '' };
}
