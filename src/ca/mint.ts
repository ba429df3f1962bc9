/**
 * @module ca/mint
 *
 * The SVID mint paths of `ServerCa`, given the active authority it picked.
 *
 * Threats stopped:
 * - minting a broken or mis-chained SVID: every X.509-SVID is path-validated against the
 *   current bundle before it is returned (as SPIRE does), so a CA/bundle mismatch fails
 *   loudly at the server instead of at every relying party;
 * - an identity outside the trust domain: SPIFFE IDs of other trust domains are refused;
 * - an SVID outliving its CA: TTLs are capped at the signing authority's NotAfter.
 */
import type { KeyObject } from 'node:crypto';
import { SpiffeIdError } from '../spiffe/errors.js';
import { SpiffeId, type TrustDomain } from '../spiffe/id.js';
import type { Bundle } from '../spiffe/bundle/index.js';
import { JwtSvidSigner } from '../spiffe/jwt/index.js';
import { verifyX509Svid, X509SvidMinter } from '../spiffe/x509/index.js';
import type { Slot } from './authority-slots.js';
import { fail, positive } from './ca-error.js';
import type { UpstreamAuthority } from './upstream.js';

export interface SignX509SvidRequest {
  spiffeId: SpiffeId | string;
  /** The SVID's public key as SPKI DER (e.g. from a CSR); preferred: no key export. */
  publicKeySpki?: Uint8Array;
  publicKey?: KeyObject;
  ttlSeconds?: number;
  dnsNames?: readonly string[];
  subject?: { commonName?: string; organization?: string; country?: string };
}

export interface SignedX509Svid {
  /** Leaf first, then intermediates (Mayfly's CA when under an upstream, then upstream intermediates); never a root. */
  certificates: Buffer[];
  expiresAt: Date;
  /** The X.509 authority (hex SKI) that signed the leaf. */
  authorityId: string;
}

export interface SignJwtSvidRequest {
  spiffeId: SpiffeId | string;
  audience: readonly string[];
  ttlSeconds?: number;
}

export interface SignedJwtSvid {
  token: string;
  expiresAt: Date;
  /** `kid` of the signing key. */
  authorityId: string;
}

/** `input` as a SPIFFE ID of `trustDomain` with a path; SpiffeIdError otherwise. */
export function memberId(trustDomain: TrustDomain, input: SpiffeId | string): SpiffeId {
  const id = input instanceof SpiffeId ? input : SpiffeId.parse(input);
  if (!id.memberOf(trustDomain)) {
    throw new SpiffeIdError('ERR_SPIFFE_ID_NOT_MEMBER', `${id} is not in trust domain ${trustDomain.name}; this CA only signs identities of its own trust domain`);
  }
  if (id.isTrustDomainId) throw new SpiffeIdError('ERR_SPIFFE_ID_PATH_REQUIRED', `${id} is a trust domain ID; an SVID needs a path`);
  return id;
}

function intermediatesFor(slot: Slot, upstream: UpstreamAuthority | undefined): Buffer[] {
  if (slot.upstreamAuthorityId === undefined || !upstream) return [];
  return [slot.certificate as Buffer, ...upstream.intermediates];
}

/** Mints an X.509-SVID for `id` with `slot`, verified against `bundle` before it is returned. */
export function mintX509Svid(
  slot: Slot,
  id: SpiffeId,
  req: SignX509SvidRequest,
  ctx: { now: Date; defaultTtlSeconds: number; bundle: Bundle; upstream: UpstreamAuthority | undefined },
): SignedX509Svid {
  const now = ctx.now;
  const ttl = req.ttlSeconds === undefined ? ctx.defaultTtlSeconds : positive(req.ttlSeconds, 0, 'ttlSeconds');
  if (req.publicKeySpki === undefined && req.publicKey === undefined) throw new TypeError('signX509Svid needs publicKeySpki or publicKey');
  const minter = (slot.minter ??= new X509SvidMinter({ caCertificate: slot.certificate as Buffer, caPrivateKey: slot.key.privateKey }));
  const leaf = minter.mint({
    spiffeId: id,
    ...(req.publicKeySpki !== undefined ? { publicKeySpki: req.publicKeySpki } : { publicKey: req.publicKey as KeyObject }),
    ttlSeconds: ttl,
    ...(req.dnsNames !== undefined ? { dnsNames: req.dnsNames } : {}),
    ...(req.subject !== undefined ? { subject: req.subject } : {}),
    now,
  });
  const certificates = [leaf, ...intermediatesFor(slot, ctx.upstream)];
  // SPIRE's rule: never hand out an SVID that does not verify against our own bundle.
  verifyX509Svid(certificates, ctx.bundle, { now });
  // Same arithmetic as the minter (whole seconds, capped at the CA's NotAfter).
  const notAfterMs = Math.min(now.getTime() + ttl * 1000, slot.notAfter.getTime());
  return { certificates, expiresAt: new Date(notAfterMs - (notAfterMs % 1000)), authorityId: slot.id };
}

/** Mints a JWT-SVID for `id` with `slot`; `exp` is capped at the key's NotAfter. */
export function mintJwtSvid(slot: Slot, id: SpiffeId, req: SignJwtSvidRequest, ctx: { now: Date; defaultTtlSeconds: number }): SignedJwtSvid {
  const now = ctx.now;
  const wanted = req.ttlSeconds === undefined ? ctx.defaultTtlSeconds : positive(req.ttlSeconds, 0, 'ttlSeconds');
  const left = Math.floor((slot.notAfter.getTime() - now.getTime()) / 1000);
  const ttl = Math.min(wanted, left);
  if (ttl <= 0) fail('ERR_CA_NOT_READY', 'the active JWT key expires within a second; rotation is behind (is tick() running?)');
  const signer = (slot.signer ??= new JwtSvidSigner({ privateKey: slot.key.privateKey, kid: slot.id }));
  const token = signer.mint({ spiffeId: id, audience: req.audience, ttlSeconds: ttl, now });
  return { token, expiresAt: new Date((Math.floor(now.getTime() / 1000) + ttl) * 1000), authorityId: slot.id };
}
