/**
 * @module oidc/discovery-routes
 *
 * What the OIDC discovery listener answers: `/.well-known/openid-configuration` (the
 * document, oidc/discovery-document) and the JWKS at the document's `jwks_uri`, holding the
 * public keys of the trust domain's JWT authorities only, each as a relying party expects
 * (`kty`, `crv`/`x`/`y` or `n`/`e`, `use: "sig"`, `kid`, `alg`). Both are rebuilt whenever
 * the key source hands out a new set (each JWT key rotation, taint or revoke makes one),
 * and cached by relying parties for a short while only (`Cache-Control: max-age`).
 * The listener itself (methods, limits, timeouts, TLS) is the composer's: the server puts
 * these routes on the bundle endpoint's hardened listener.
 *
 * Threat: a relying party trusting a key it should not. X.509 authorities are never
 * published here (a JWT verifier has no use for them and some accept any key in the set),
 * nor any private parameter: keys are exported from their public halves.
 */
import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { defaultAlgorithmFor } from '../spiffe/jwt/algorithms.js';
import { DISCOVERY_PATH, discoveryDocument, JWKS_PATH } from './discovery-document.js';

/** The JWT authorities to publish, by key ID (a new map object whenever they change). */
export interface JwtKeySource {
  jwtAuthorities(): ReadonlyMap<string, KeyObject>;
}

export interface OidcRoute {
  readonly body: Buffer;
  readonly contentType: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface OidcRoutesConfig {
  /** The issuer (`checkIssuer` accepted it). */
  issuer: string;
  keys: JwtKeySource;
  /** `Cache-Control: max-age` of both answers (seconds, default 60). */
  maxAgeSeconds?: number;
}

interface PublicJwk {
  kty: string;
  kid: string;
  use: 'sig';
  alg: string;
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

function publicJwk(kid: string, key: KeyObject): PublicJwk | undefined {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const alg = defaultAlgorithmFor(pub);
  if (alg === undefined) return undefined;
  const j = pub.export({ format: 'jwk' });
  const out: PublicJwk = { kty: j.kty as string, kid, use: 'sig', alg };
  if (j.kty === 'EC') Object.assign(out, { crv: j.crv, x: j.x, y: j.y });
  else if (j.kty === 'RSA') Object.assign(out, { n: j.n, e: j.e });
  else return undefined;
  return out;
}

/** The JWKS document of `keys` (key IDs sorted, so the bytes are stable). */
export function oidcJwks(keys: ReadonlyMap<string, KeyObject>): { keys: PublicJwk[] } {
  const out: PublicJwk[] = [];
  for (const kid of [...keys.keys()].sort()) {
    const jwk = publicJwk(kid, keys.get(kid) as KeyObject);
    if (jwk !== undefined) out.push(jwk);
  }
  return { keys: out };
}

/** The two routes below the issuer's path; `route(path)` answers a GET (undefined: 404). */
export class OidcRoutes {
  readonly #cfg: OidcRoutesConfig;
  readonly #discoveryPath: string;
  readonly #jwksPath: string;
  readonly #cacheControl: string;
  #cached: { keys: ReadonlyMap<string, KeyObject>; discovery: OidcRoute; jwks: OidcRoute } | undefined;

  constructor(cfg: OidcRoutesConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.issuer !== 'string' || cfg.keys === undefined) throw new TypeError('OidcRoutes needs { issuer, keys }');
    this.#cfg = cfg;
    // An issuer with a path (https://host/td) serves below it, as the document's URLs say.
    const base = new URL(cfg.issuer).pathname.replace(/\/$/, '');
    this.#discoveryPath = `${base}${DISCOVERY_PATH}`;
    this.#jwksPath = `${base}${JWKS_PATH}`;
    this.#cacheControl = `public, max-age=${cfg.maxAgeSeconds ?? 60}`;
  }

  /** The paths served (discovery document, JWKS). */
  get paths(): readonly [string, string] {
    return [this.#discoveryPath, this.#jwksPath];
  }

  route(path: string): OidcRoute | undefined {
    if (path !== this.#discoveryPath && path !== this.#jwksPath) return undefined;
    const keys = this.#cfg.keys.jwtAuthorities();
    if (this.#cached?.keys !== keys) {
      const jwks = oidcJwks(keys);
      const headers = { 'cache-control': this.#cacheControl };
      const doc = discoveryDocument({ issuer: this.#cfg.issuer, algorithms: jwks.keys.map((k) => k.alg) });
      this.#cached = {
        keys,
        discovery: { body: Buffer.from(JSON.stringify(doc), 'utf8'), contentType: 'application/json', headers },
        jwks: { body: Buffer.from(JSON.stringify(jwks), 'utf8'), contentType: 'application/json', headers },
      };
    }
    return path === this.#discoveryPath ? this.#cached.discovery : this.#cached.jwks;
  }
}
