/**
 * @module delegation/testing
 *
 * A test OIDC issuer for the delegation tests: a real `node:https` server on loopback
 * (`localhost`), its certificate from a test CA made here, serving an OIDC discovery
 * document and a JWKS of RS256 keys made here, signing user tokens with them. Tests change
 * what it serves (rotate keys, a wrong issuer, an http `jwks_uri`, an oversize JWKS), take
 * it down and bring it back on the same port, and count what was fetched.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { makeTestCa, makeTestSvid } from '../spiffe/x509/testing.js';

export interface IdpKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
}

export async function makeIdpKey(kid: string): Promise<IdpKey> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

/** A free loopback port (listened on and closed again). */
export function freeLocalhostPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, 'localhost', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export class TestIdp {
  readonly ca = makeTestCa({ trustDomain: 'idp.test' });
  /** PEM of the CA the issuer's certificate chains to (what `ca_file` holds). */
  readonly caPem = pemEncodeCertificates([this.ca.certificate]);
  readonly hits = { discovery: 0, jwks: 0 };
  /** Keys published in the JWKS. */
  keys: IdpKey[] = [];
  /** Overrides of the discovery document's fields. */
  discoveryOverride: Record<string, unknown> = {};
  /** Replaces the JWKS body (e.g. an oversize one); `chunked` sends it without Content-Length. */
  jwksBody: { body: string; chunked: boolean } | undefined;
  #server: Server | undefined;
  readonly #tls: { cert: string; key: string };

  constructor(readonly port: number) {
    const id = makeTestSvid(this.ca, '/idp', { dnsNames: ['localhost'] });
    this.#tls = { cert: pemEncodeCertificates([id.certificate]), key: id.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  }

  get issuer(): string {
    return `https://localhost:${this.port}`;
  }

  get discoveryUrl(): string {
    return `${this.issuer}/.well-known/openid-configuration`;
  }

  get up(): boolean {
    return this.#server !== undefined;
  }

  async start(): Promise<void> {
    const server = createServer(this.#tls, (req, res) => this.#answer(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, 'localhost', () => resolve());
    });
    this.#server = server;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s === undefined) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** A user token signed with `key` (its kid in the header). */
  token(key: IdpKey, sub: string, o: { audience?: string; scope?: string; issuer?: string } = {}): Promise<string> {
    return new SignJWT({ scope: o.scope ?? 'tools.read tools.write' })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(o.issuer ?? this.issuer)
      .setAudience(o.audience ?? 'mayfly')
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(key.privateKey);
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/.well-known/openid-configuration') {
      this.hits.discovery++;
      const doc = { issuer: this.issuer, jwks_uri: `${this.issuer}/jwks`, id_token_signing_alg_values_supported: ['RS256'], ...this.discoveryOverride };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    } else if (path === '/jwks') {
      this.hits.jwks++;
      if (this.jwksBody !== undefined) {
        const { body, chunked } = this.jwksBody;
        res.writeHead(200, { 'content-type': 'application/json', ...(chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }) });
        // Chunked: written in pieces, so only the streaming cap can catch it.
        if (chunked) for (let i = 0; i < body.length; i += 16_384) res.write(body.slice(i, i + 16_384));
        res.end(chunked ? undefined : body);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
      }
    } else if (path === '/redirect') {
      res.writeHead(302, { location: `${this.issuer}/jwks` }).end();
    } else {
      res.writeHead(404).end();
    }
  }
}
