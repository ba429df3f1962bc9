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
 *
 * `mintX509SvidsFromCsrs` is the batch path (server/csr-pool runs it on worker threads):
 * the same checks, given an `X509MintAuthority` snapshot that `ServerCa.x509MintAuthority`
 * took when the request arrived, so a whole batch is signed by the authority that was
 * active then and verified against the bundle of then, whichever thread does the work.
 */
import type { KeyObject } from 'node:crypto';
import { SpiffeIdError } from '../spiffe/errors.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { parseCsr } from '../spiffe/x509/csr.js';
import type { Bundle } from '../spiffe/bundle/index.js';
import { JwtSvidSigner } from '../spiffe/jwt/index.js';
import { verifyX509Svid, X509SvidMinter, type X509BundleInput } from '../spiffe/x509/index.js';
import type { Slot } from './authority-slots.js';
import { checkMinted, fail, positive } from './ca-error.js';
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
  checkMinted(() => verifyX509Svid(certificates, ctx.bundle, { now }));
  // Same arithmetic as the minter (whole seconds, capped at the CA's NotAfter).
  const notAfterMs = Math.min(now.getTime() + ttl * 1000, slot.notAfter.getTime());
  return { certificates, expiresAt: new Date(notAfterMs - (notAfterMs % 1000)), authorityId: slot.id };
}

/** Mints a JWT-SVID for `id` with `slot`; `exp` is capped at the key's NotAfter. */
export function mintJwtSvid(slot: Slot, id: SpiffeId, req: SignJwtSvidRequest, ctx: { now: Date; defaultTtlSeconds: number; issuer?: string }): SignedJwtSvid {
  const now = ctx.now;
  const wanted = req.ttlSeconds === undefined ? ctx.defaultTtlSeconds : positive(req.ttlSeconds, 0, 'ttlSeconds');
  const left = Math.floor((slot.notAfter.getTime() - now.getTime()) / 1000);
  const ttl = Math.min(wanted, left);
  if (ttl <= 0) fail('ERR_CA_NOT_READY', 'the active JWT key expires within a second; rotation is behind (is tick() running?)');
  const signer = (slot.signer ??= new JwtSvidSigner({ privateKey: slot.key.privateKey, kid: slot.id }));
  const token = signer.mint({ spiffeId: id, audience: req.audience, ttlSeconds: ttl, now, ...(ctx.issuer !== undefined ? { extraClaims: { iss: ctx.issuer } } : {}) });
  return { token, expiresAt: new Date((Math.floor(now.getTime() / 1000) + ttl) * 1000), authorityId: slot.id };
}

/**
 * The active X.509 authority and the bundle as of one moment: everything needed to mint
 * and verify X.509-SVIDs with it, on this thread or a worker thread (it survives
 * `postMessage`; the private key is a KeyObject and never leaves the process). The same
 * object is handed out while neither the active authority nor the bundle changes.
 */
export interface X509MintAuthority {
  readonly authorityId: string;
  readonly trustDomain: string;
  readonly caCertificate: Buffer;
  readonly caPrivateKey: KeyObject;
  /** Chain after the leaf (Mayfly's CA and upstream intermediates under an upstream authority; else empty). */
  readonly intermediates: readonly Buffer[];
  /** The bundle's X.509 authorities: every SVID is verified against them before it is returned. */
  readonly bundleRoots: readonly Buffer[];
  readonly defaultTtlSeconds: number;
}

/**
 * Whether SVIDs minted with the snapshot `auth` may still be handed out, given the CA's
 * state now: its authority not tainted since (`taintedX509`: SKIs in hex, as
 * `ServerCa.taintedAuthorities().x509`), and its CA certificate still in the bundle (not
 * revoked). A batch takes time on the workers; an operator who taints the old authority
 * meanwhile must not see agents handed fresh SVIDs from it. Under an upstream authority the
 * local authority cannot be tainted or revoked, so only the taint list is consulted.
 */
export function mintAuthorityStillUsable(auth: X509MintAuthority, now: { taintedX509: readonly string[]; bundle: Pick<Bundle, 'x509Authorities'> }): boolean {
  if (now.taintedX509.includes(auth.authorityId)) return false;
  if (auth.intermediates.length > 0) return true;
  return now.bundle.x509Authorities.some((root) => root.equals(auth.caCertificate));
}

/** Builds the snapshot for `slot` (ServerCa caches it per slot and bundle). */
export function x509MintAuthorityOf(slot: Slot, ctx: { trustDomain: TrustDomain; bundle: Bundle; upstream: UpstreamAuthority | undefined; defaultTtlSeconds: number }): X509MintAuthority {
  return Object.freeze({
    authorityId: slot.id,
    trustDomain: ctx.trustDomain.name,
    caCertificate: slot.certificate as Buffer,
    caPrivateKey: slot.key.privateKey,
    intermediates: Object.freeze(intermediatesFor(slot, ctx.upstream)),
    bundleRoots: Object.freeze([...ctx.bundle.x509Authorities]),
    defaultTtlSeconds: ctx.defaultTtlSeconds,
  });
}

/** One SVID of a batch: the identity and lifetime come from the entry, only the key from the CSR. */
export interface CsrMintItem {
  csr: Uint8Array;
  spiffeId: string;
  ttlSeconds?: number;
  dnsNames?: readonly string[];
}

/** A minted, verified leaf (the chain is `[leaf, ...authority.intermediates]`), or why the item failed. */
export type CsrMintOutcome = { leaf: Buffer; serialHex: string; notAfter: number } | { error: unknown };

interface Prepared {
  minter: X509SvidMinter;
  bundle: X509BundleInput;
  td: TrustDomain;
}
const prepared = new WeakMap<X509MintAuthority, Prepared>();

function prepare(auth: X509MintAuthority): Prepared {
  let p = prepared.get(auth);
  if (p === undefined) {
    const td = TrustDomain.parse(auth.trustDomain);
    p = { minter: new X509SvidMinter({ caCertificate: auth.caCertificate, caPrivateKey: auth.caPrivateKey }), bundle: { trustDomain: td, x509Authorities: auth.bundleRoots }, td };
    prepared.set(auth, p);
  }
  return p;
}

/**
 * Checks each CSR (strict parse, key policy, proof of possession), mints its X.509-SVID with
 * `auth` for the item's SPIFFE ID, and verifies the result — signature included — against
 * `auth`'s bundle. One outcome per item, in order; a bad item fails only itself.
 */
export function mintX509SvidsFromCsrs(auth: X509MintAuthority, items: readonly CsrMintItem[], now: Date): CsrMintOutcome[] {
  let p: Prepared;
  try {
    p = prepare(auth);
  } catch (error) {
    return items.map(() => ({ error }));
  }
  return items.map((item): CsrMintOutcome => {
    try {
      const id = memberId(p.td, item.spiffeId);
      const ttl = item.ttlSeconds === undefined ? auth.defaultTtlSeconds : positive(item.ttlSeconds, 0, 'ttlSeconds');
      const { spki } = parseCsr(item.csr);
      const leaf = p.minter.mint({ spiffeId: id, publicKeySpki: spki, ttlSeconds: ttl, dnsNames: item.dnsNames ?? [], now });
      const verified = checkMinted(() => verifyX509Svid(auth.intermediates.length === 0 ? [leaf] : [leaf, ...auth.intermediates], p.bundle, { now }));
      return { leaf, serialHex: verified.leaf.serialHex, notAfter: Math.floor(verified.leaf.notAfter.getTime() / 1000) };
    } catch (error) {
      return { error };
    }
  });
}
