/**
 * @module spiffe/bundle/bundle
 *
 * One trust domain's bundle: the X.509 root certificates that anchor its X509-SVIDs and the
 * public keys (by `kid`) that sign its JWT-SVIDs, plus the SPIFFE sequence number and
 * refresh hint. Immutable; rotation makes a new Bundle.
 *
 * Threat: mixing trust domains. A Bundle is bound to exactly one trust domain at
 * construction and validators look bundles up by the trust domain of the identity being
 * checked, never by "any bundle that has this key".
 */
import { createPublicKey, KeyObject, X509Certificate } from 'node:crypto';
import { TrustDomain } from '../id.js';
import { concatDer, pemEncodeCertificates } from '../x509/pem.js';
import { jwtAuthorityProblem, publicJwkParams, type SpiffeJwk, type SpiffeJwks } from './jwk.js';

export interface BundleConfig {
  trustDomain: TrustDomain;
  /** DER certificates of the trust domain's X.509 authorities (roots). */
  x509Authorities?: readonly Uint8Array[];
  /** JWT authorities by key ID; private keys are reduced to their public half. */
  jwtAuthorities?: ReadonlyMap<string, KeyObject> | Iterable<[string, KeyObject]>;
  /** `spiffe_sequence`: non-negative integer, increases on every change. */
  sequence?: number;
  /** `spiffe_refresh_hint` in seconds. */
  refreshHintSeconds?: number;
}

function checkCount(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new TypeError(`${what} must be a non-negative integer`);
}

export class Bundle {
  readonly trustDomain: TrustDomain;
  readonly x509Authorities: readonly Buffer[];
  readonly jwtAuthorities: ReadonlyMap<string, KeyObject>;
  readonly sequence?: number;
  readonly refreshHintSeconds?: number;
  #x509Jwks: SpiffeJwk[] | undefined;
  #jwtJwks: SpiffeJwk[] | undefined;

  constructor(cfg: BundleConfig) {
    if (!(cfg.trustDomain instanceof TrustDomain)) throw new TypeError('Bundle needs a TrustDomain');
    checkCount(cfg.sequence, 'sequence');
    checkCount(cfg.refreshHintSeconds, 'refreshHintSeconds');
    const certs: Buffer[] = [];
    for (const der of cfg.x509Authorities ?? []) {
      if (!(der instanceof Uint8Array)) throw new TypeError('x509Authorities must hold DER certificates as Uint8Array');
      const copy = Buffer.from(der);
      try {
        new X509Certificate(copy);
      } catch (cause) {
        throw new TypeError(`x509Authorities[${certs.length}] is not a DER certificate`, { cause });
      }
      certs.push(copy);
    }
    const jwt = new Map<string, KeyObject>();
    for (const [kid, key] of cfg.jwtAuthorities ?? []) {
      if (typeof kid !== 'string' || kid === '') throw new TypeError('every JWT authority needs a non-empty key ID');
      if (!(key instanceof KeyObject) || key.type === 'secret') throw new TypeError(`JWT authority ${kid} must be an asymmetric KeyObject`);
      if (jwt.has(kid)) throw new TypeError(`JWT authority key ID ${kid} appears twice`);
      const pub = key.type === 'private' ? createPublicKey(key) : key;
      const problem = jwtAuthorityProblem(pub);
      if (problem !== undefined) throw new TypeError(`JWT authority ${kid}: ${problem}`);
      jwt.set(kid, pub);
    }
    this.trustDomain = cfg.trustDomain;
    this.x509Authorities = Object.freeze(certs);
    this.jwtAuthorities = jwt;
    if (cfg.sequence !== undefined) this.sequence = cfg.sequence;
    if (cfg.refreshHintSeconds !== undefined) this.refreshHintSeconds = cfg.refreshHintSeconds;
  }

  #x509Keys(): SpiffeJwk[] {
    this.#x509Jwks ??= this.x509Authorities.map((der) => ({
      use: 'x509-svid' as const,
      ...publicJwkParams(new X509Certificate(der).publicKey),
      // RFC 7517 §4.7: standard base64 (not base64url) of the DER.
      x5c: [der.toString('base64')],
    }));
    return this.#x509Jwks;
  }

  #jwtKeys(): SpiffeJwk[] {
    this.#jwtJwks ??= [...this.jwtAuthorities].map(([kid, key]) => ({ use: 'jwt-svid' as const, kid, ...publicJwkParams(key) }));
    return this.#jwtJwks;
  }

  /** The SPIFFE bundle document (x509-svid keys, then jwt-svid keys). A fresh object each call. */
  toJwks(): SpiffeJwks {
    const out: SpiffeJwks = { keys: [...this.#x509Keys(), ...this.#jwtKeys()].map((k) => ({ ...k, ...(k.x5c ? { x5c: [...k.x5c] } : {}) })) };
    if (this.sequence !== undefined) out.spiffe_sequence = this.sequence;
    if (this.refreshHintSeconds !== undefined) out.spiffe_refresh_hint = this.refreshHintSeconds;
    return out;
  }

  /** The SPIFFE bundle document as JSON (what a bundle endpoint serves). */
  toJson(): string {
    return JSON.stringify(this.toJwks());
  }

  /** Root certificates as concatenated DER (the Workload API `bundle` field form). */
  x509AuthoritiesDer(): Buffer {
    return concatDer(this.x509Authorities);
  }

  /** Root certificates as PEM `CERTIFICATE` blocks. */
  x509AuthoritiesPem(): string {
    return pemEncodeCertificates(this.x509Authorities);
  }

  /**
   * JWKS JSON bytes with only the jwt-svid keys, each with its `kid` (the Workload API
   * FetchJWTBundles form). No SPIFFE top-level parameters: this is a plain JWK Set.
   */
  jwksForWorkloadApi(): Buffer {
    return Buffer.from(JSON.stringify({ keys: this.#jwtKeys() }), 'utf8');
  }

  /** Same trust domain, same roots (in any order), same JWT keys by kid, same sequence and refresh hint. */
  equals(other: Bundle): boolean {
    if (this === other) return true;
    if (!this.trustDomain.equals(other.trustDomain)) return false;
    if (this.sequence !== other.sequence || this.refreshHintSeconds !== other.refreshHintSeconds) return false;
    if (this.x509Authorities.length !== other.x509Authorities.length || this.jwtAuthorities.size !== other.jwtAuthorities.size) return false;
    const mine = this.x509Authorities.map((c) => c.toString('base64')).sort();
    const theirs = other.x509Authorities.map((c) => c.toString('base64')).sort();
    if (mine.some((c, i) => c !== theirs[i])) return false;
    for (const [kid, key] of this.jwtAuthorities) {
      const o = other.jwtAuthorities.get(kid);
      if (o === undefined || !o.equals(key)) return false;
    }
    return true;
  }
}
