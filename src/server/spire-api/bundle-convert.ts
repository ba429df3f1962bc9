/**
 * @module server/spire-api/bundle-convert
 *
 * SPIRE's `spire.api.types.Bundle` as the Bundle admin RPCs, `x509 mint` and the
 * TrustDomain RPCs exchange it, to and from Mayfly's wire bundle:
 * - out: X.509 authorities flagged `tainted` by their Subject Key Identifier (how Mayfly's CA
 *   names a tainted authority), JWT authorities with their expiry when the CA knows it, and
 *   SPIRE's output mask (`applyBundleMask`: a set mask zeroes every field not set true; the
 *   trust domain is always kept);
 * - in: SPIRE's `api.ProtoToBundle` checks, in its order and with its messages (trust
 *   domain, then every X.509 authority parses, then every JWT authority's key parses and
 *   has a key ID), before Mayfly's own `bundleFromWire` checks what it stores.
 * The text after SPIRE's prefix is Mayfly's parser's, not Go's (e.g. "unable to parse X.509
 * authority: <Mayfly's reason>").
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { createPublicKey } from 'node:crypto';
import { TrustDomain } from '../../spiffe/id.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import type { WireBundle } from '../messages.js';
import { spireError } from './spire-call.js';
import type { SpireBundle, SpireMask } from './types.js';

/** What `bundleToSpireMarked` needs to flag and date authorities. */
export interface AuthorityMarks {
  /** Tainted X.509 authorities (SKI, lowercase hex) and JWT authorities (key IDs). */
  tainted: { readonly x509: readonly string[]; readonly jwt: readonly string[] };
  /** Known JWT key expiries, unix seconds, by key ID. */
  jwtExpiry?: ReadonlyMap<string, number>;
}

function skiHex(der: Buffer): string | undefined {
  try {
    const ski = parseCertificate(der).subjectKeyId;
    return ski === undefined ? undefined : Buffer.from(ski).toString('hex');
  } catch {
    return undefined;
  }
}

/** Mayfly's wire bundle as SPIRE's, authorities flagged and dated by `marks`. */
export function bundleToSpireMarked(b: WireBundle, marks: AuthorityMarks = { tainted: { x509: [], jwt: [] } }): SpireBundle {
  const x509 = new Set(marks.tainted.x509);
  const jwt = new Set(marks.tainted.jwt);
  return {
    trust_domain: b.trust_domain,
    x509_authorities: b.x509_authorities.map((asn1) => {
      const ski = skiHex(asn1);
      return { asn1, tainted: ski !== undefined && x509.has(ski) };
    }),
    jwt_authorities: b.jwt_authorities.map((k) => ({
      public_key: k.public_key,
      key_id: k.key_id,
      expires_at: k.expires_at !== 0 ? k.expires_at : (marks.jwtExpiry?.get(k.key_id) ?? 0),
      tainted: jwt.has(k.key_id),
    })),
    refresh_hint: b.refresh_hint,
    sequence_number: b.sequence_number,
  };
}

/** SPIRE's `applyBundleMask`: nil mask = everything; otherwise unset fields are zeroed. */
export function applyBundleMask(b: SpireBundle, mask: SpireMask | null | undefined): SpireBundle {
  if (mask === null || mask === undefined) return b;
  return {
    trust_domain: b.trust_domain,
    x509_authorities: mask.x509_authorities === true ? b.x509_authorities : [],
    jwt_authorities: mask.jwt_authorities === true ? b.jwt_authorities : [],
    refresh_hint: mask.refresh_hint === true ? b.refresh_hint : 0,
    sequence_number: mask.sequence_number === true ? b.sequence_number : 0,
  };
}

/**
 * Go's `spiffeid.TrustDomainFromString`: a bare name or a SPIFFE ID (its trust domain).
 * Throws INVALID_ARGUMENT `<what>: <reason>` as SPIRE's handlers do.
 */
export function spireTrustDomain(raw: string | undefined, what: string): TrustDomain {
  try {
    if (typeof raw !== 'string' || raw === '') throw new Error('trust domain is missing');
    return TrustDomain.parse(raw);
  } catch (err) {
    throw spireError(GrpcStatus.INVALID_ARGUMENT, what, (err as Error).message);
  }
}

/** SPIRE's `api.ProtoToBundle` checks; the cause's text, for SPIRE's "failed to convert bundle: …". */
export function protoToBundleProblem(b: Partial<SpireBundle> | null | undefined): string | undefined {
  if (b === null || b === undefined) return 'no bundle provided';
  try {
    TrustDomain.parse(b.trust_domain ?? '');
  } catch (err) {
    return `invalid trust domain: ${(err as Error).message}`;
  }
  for (const c of b.x509_authorities ?? []) {
    try {
      parseCertificate(c?.asn1 ?? Buffer.alloc(0));
    } catch (err) {
      return `unable to parse X.509 authority: ${(err as Error).message}`;
    }
  }
  for (const k of b.jwt_authorities ?? []) {
    try {
      createPublicKey({ key: k?.public_key ?? Buffer.alloc(0), format: 'der', type: 'spki' });
    } catch (err) {
      return `unable to parse JWT authority: ${(err as Error).message}`;
    }
    if ((k?.key_id ?? '') === '') return 'unable to parse JWT authority: missing key ID';
  }
  return undefined;
}

/**
 * A SPIRE bundle as Mayfly's wire bundle under the bare trust domain name (SPIRE's CLI
 * sends `-id spiffe://other.org` as is in PEM mode). Run `protoToBundleProblem` first.
 */
export function spireBundleToWire(b: SpireBundle): WireBundle {
  return {
    trust_domain: TrustDomain.parse(b.trust_domain).name,
    x509_authorities: (b.x509_authorities ?? []).map((c) => c.asn1),
    jwt_authorities: (b.jwt_authorities ?? []).map((k) => ({ key_id: k.key_id, public_key: k.public_key, expires_at: k.expires_at ?? 0 })),
    refresh_hint: b.refresh_hint ?? 0,
    sequence_number: b.sequence_number ?? 0,
  };
}

/**
 * SPIRE's `UpdateBundle` with an input mask: the fields the mask leaves out keep their
 * stored values (a nil mask replaces all of them).
 */
export function maskedUpdate(stored: WireBundle, update: WireBundle, mask: SpireMask | null | undefined): WireBundle {
  if (mask === null || mask === undefined) return update;
  return {
    trust_domain: stored.trust_domain,
    x509_authorities: mask.x509_authorities === true ? update.x509_authorities : stored.x509_authorities,
    jwt_authorities: mask.jwt_authorities === true ? update.jwt_authorities : stored.jwt_authorities,
    refresh_hint: mask.refresh_hint === true ? update.refresh_hint : stored.refresh_hint,
    sequence_number: mask.sequence_number === true ? update.sequence_number : stored.sequence_number,
  };
}
