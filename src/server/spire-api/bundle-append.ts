/**
 * @module server/spire-api/bundle-append
 *
 * SPIRE's AppendBundle: adds X.509 and JWT authorities to the server trust domain's own
 * bundle (admins only). Mayfly keeps them in the stored bundle of its trust domain, where
 * the served bundle (server/trust-bundle: this CA's authorities ∪ the stored ones) picks
 * them up, and the CA's own publishes never remove them (they carry no owner).
 *
 * Threats it stops: an authority that does not parse, or a JWT key without a key ID,
 * entering the bundle every workload trusts: each is checked (SPIRE's checks and messages)
 * before anything is written.
 *
 * Deliberate difference from SPIRE: the answer is the bundle as served right after the
 * write (the CA's authorities ∪ the stored ones), not only the stored row.
 */
import { status as GrpcStatus, type handleUnaryCall } from '@grpc/grpc-js';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { BundleAuthority } from '../../datastore/datastore.js';
import { Bundle } from '../../spiffe/bundle/bundle.js';
import type { SpiffeJwk } from '../../spiffe/bundle/jwk.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import type { Transport } from '../auth.js';
import { servedBundle, type ApiContext } from '../context.js';
import { bundleToWire, storedBundleToBundle, type WireBundle } from '../messages.js';
import { applyBundleMask, bundleToSpireMarked } from './bundle-convert.js';
import { ownMarks } from './bundle-get.js';
import { spireError, spireUnary } from './spire-call.js';
import type { SpireBundle, SpireJwtKey, SpireMask, SpireX509Certificate } from './types.js';

interface AppendRequest {
  x509_authorities?: SpireX509Certificate[];
  jwt_authorities?: SpireJwtKey[];
  output_mask?: SpireMask | null;
}

/** The served bundle ∪ the stored one: what the trust domain's bundle holds after the write. */
function union(served: WireBundle, stored: WireBundle | undefined): WireBundle {
  if (stored === undefined) return served;
  const x509 = new Map(served.x509_authorities.map((d) => [d.toString('base64'), d]));
  for (const d of stored.x509_authorities) if (!x509.has(d.toString('base64'))) x509.set(d.toString('base64'), d);
  const jwt = new Map(served.jwt_authorities.map((k) => [k.key_id, k]));
  for (const k of stored.jwt_authorities) if (!jwt.has(k.key_id)) jwt.set(k.key_id, k);
  return { ...served, x509_authorities: [...x509.values()], jwt_authorities: [...jwt.values()] };
}

export function appendBundleHandler(ctx: ApiContext, t: Transport): handleUnaryCall<AppendRequest, SpireBundle> {
  return spireUnary(ctx, t, 'spire.Bundle/AppendBundle', 'admin', async (req) => {
    const certs = req.x509_authorities ?? [];
    const keys = req.jwt_authorities ?? [];
    if (certs.length === 0 && keys.length === 0) throw spireError(GrpcStatus.INVALID_ARGUMENT, 'no authorities to append');
    const jwt = new Map<string, KeyObject>();
    const jwtExpiry = new Map<string, number>();
    for (const k of keys) {
      let key: KeyObject;
      try {
        key = createPublicKey({ key: k?.public_key ?? Buffer.alloc(0), format: 'der', type: 'spki' });
      } catch (err) {
        throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert JWT authority', (err as Error).message);
      }
      if ((k.key_id ?? '') === '') throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert JWT authority', 'missing key ID');
      jwt.set(k.key_id, key);
      if ((k.expires_at ?? 0) > 0) jwtExpiry.set(k.key_id, k.expires_at);
    }
    const der: Buffer[] = [];
    for (const c of certs) {
      try {
        der.push(parseCertificate(c?.asn1 ?? Buffer.alloc(0)).der);
      } catch (err) {
        throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert X.509 authority', (err as Error).message);
      }
    }
    let added: Bundle;
    try {
      added = new Bundle({ trustDomain: ctx.trustDomain, x509Authorities: der, jwtAuthorities: jwt });
    } catch (err) {
      throw spireError(GrpcStatus.INVALID_ARGUMENT, 'failed to convert X.509 authority', (err as Error).message);
    }
    const jwks = (JSON.parse(added.toJson()) as { keys: SpiffeJwk[] }).keys;
    const add: BundleAuthority[] = jwks.map((jwk) => {
      const kid = (jwk as { kid?: string }).kid;
      const exp = kid !== undefined && jwk.use === 'jwt-svid' ? jwtExpiry.get(kid) : undefined;
      return exp === undefined ? { jwk } : { jwk, notAfter: exp };
    });
    let stored: WireBundle | undefined;
    try {
      const merged = await ctx.ds.mergeBundle({ trustDomain: ctx.trustDomain.name, add });
      stored = merged.bundle === undefined ? undefined : bundleToWire(storedBundleToBundle(merged.bundle));
    } catch (err) {
      throw spireError(GrpcStatus.INTERNAL, 'failed to append bundle', err);
    }
    ctx.hub.publish({ kind: 'bundles' });
    const marks = ownMarks(ctx);
    return applyBundleMask(bundleToSpireMarked(union(bundleToWire(servedBundle(ctx)), stored), { ...marks, jwtExpiry: new Map([...(marks.jwtExpiry ?? []), ...jwtExpiry]) }), req.output_mask);
  });
}
