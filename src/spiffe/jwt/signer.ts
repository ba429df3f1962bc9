/**
 * @module spiffe/jwt/signer
 *
 * The JWT-SVID mint path: a compact JWS built by hand around one synchronous
 * `crypto.sign` with a cached KeyObject and a cached base64url header. jose's signing is
 * async and re-imports the key per call; this path costs little more than the signature
 * itself (see bench/jwt.ts). Tokens are cross-checked against `jose.jwtVerify` in tests.
 */
import { sign, type KeyObject } from 'node:crypto';
import { SpiffeId } from '../id.js';
import { algorithmSpec, cryptoOptions, defaultAlgorithmFor, keyFitsAlgorithm, type AlgorithmSpec, type JwtSvidAlgorithm } from './algorithms.js';

export interface JwtSvidSignerConfig {
  privateKey: KeyObject;
  /** Key ID published with the public key in the trust domain's bundle. */
  kid: string;
  /** Default from the key: P-256→ES256, P-384→ES384, P-521→ES512, RSA→RS256. */
  algorithm?: JwtSvidAlgorithm;
  now?: () => Date;
}

export interface MintRequest {
  spiffeId: SpiffeId;
  audience: readonly string[];
  ttlSeconds: number;
  /** Issue time; defaults to the signer's clock. */
  now?: Date;
  /** Further claims (e.g. `iss`); may not override sub, aud, exp or iat. */
  extraClaims?: Record<string, unknown>;
}

const RESERVED = ['sub', 'aud', 'exp', 'iat'];

export class JwtSvidSigner {
  readonly kid: string;
  readonly algorithm: JwtSvidAlgorithm;
  readonly #spec: AlgorithmSpec;
  readonly #headerB64: string;
  readonly #signOptions: ReturnType<typeof cryptoOptions>;
  readonly #now: () => Date;

  constructor(cfg: JwtSvidSignerConfig) {
    const key = cfg.privateKey;
    if (key === null || typeof key !== 'object' || key.type !== 'private') throw new TypeError('JwtSvidSigner needs a private KeyObject');
    if (typeof cfg.kid !== 'string' || cfg.kid === '') throw new TypeError('JwtSvidSigner needs a non-empty kid');
    const alg = cfg.algorithm ?? defaultAlgorithmFor(key);
    const spec = algorithmSpec(alg);
    if (alg === undefined || spec === undefined) throw new TypeError(`no JWT-SVID algorithm ${alg === undefined ? 'fits this key (use EC P-256/384/521 or RSA ≥ 2048)' : `named ${String(alg)}`}`);
    if (!keyFitsAlgorithm(key, spec)) throw new TypeError(`algorithm ${alg} cannot be used with this ${key.asymmetricKeyType ?? 'unknown'} key`);
    this.kid = cfg.kid;
    this.algorithm = alg;
    this.#spec = spec;
    this.#headerB64 = Buffer.from(JSON.stringify({ alg, kid: cfg.kid, typ: 'JWT' })).toString('base64url');
    this.#signOptions = cryptoOptions(spec, key);
    this.#now = cfg.now ?? (() => new Date());
  }

  /** Mints a JWT-SVID: header {alg, kid, typ: JWT}; claims sub, aud (array), exp, iat (+ extras). */
  mint(req: MintRequest): string {
    const id = req.spiffeId;
    if (!(id instanceof SpiffeId) || id.path === '') throw new TypeError('mint needs a workload SpiffeId (with a path)');
    const aud = req.audience;
    if (!Array.isArray(aud) || aud.length === 0) throw new TypeError('mint needs at least one audience');
    for (const a of aud) if (typeof a !== 'string' || a === '') throw new TypeError('audiences must be non-empty strings');
    const ttl = req.ttlSeconds;
    if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new TypeError('ttlSeconds must be a positive integer');
    const iat = Math.floor((req.now ?? this.#now()).getTime() / 1000);
    if (!Number.isSafeInteger(iat)) throw new TypeError('now must be a valid Date');
    // Built as a string rather than JSON.stringify of an object: the same JSON, less work
    // on the hot path. `sub` and `aud` strings still go through JSON.stringify for escaping.
    let json = '{"sub":' + JSON.stringify(id.toString()) + ',"aud":' + JSON.stringify(aud) + ',"exp":' + (iat + ttl) + ',"iat":' + iat;
    if (req.extraClaims !== undefined) {
      for (const k of RESERVED) if (k in req.extraClaims) throw new TypeError(`extraClaims may not set "${k}"`);
      const extra = JSON.stringify(req.extraClaims) as string | undefined;
      if (extra === undefined || extra[0] !== '{') throw new TypeError('extraClaims must serialise to a JSON object');
      if (extra.length > 2) json += ',' + extra.slice(1, -1);
    }
    json += '}';
    const signingInput = this.#headerB64 + '.' + Buffer.from(json, 'utf8').toString('base64url');
    const signature = sign(this.#spec.hash, Buffer.from(signingInput, 'latin1'), this.#signOptions);
    return signingInput + '.' + signature.toString('base64url');
  }
}
