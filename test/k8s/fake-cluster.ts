/**
 * A loopback "kubelet" and "API server" for the k8s attestor tests: real HTTPS servers
 * (certificates from ./pki), real bearer-token checks, and real projected service-account
 * JWTs signed by a test issuer key (jose, RS256 as kube-apiserver uses) and verified by
 * the fake API server as kube-apiserver does for a TokenReview: signature, issuer,
 * expiry, audience intersection, and that the bound pod still exists with the same UID.
 * Both serve the recorded shapes from ./fixtures. Hand-written fakes, no mocks.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import type { TestPki } from './pki.js';
import { tokenReviewOk, tokenReviewRefused } from './fixtures.js';

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString('utf8')));
    req.on('end', () => resolve(b));
  });
}

/** The kubelet's secure port: `GET /pods` with a bearer token. */
export class FakeKubelet {
  readonly #server: Server;
  port = 0;
  /** Requests seen (path and authorization header). */
  readonly requests: { path: string; authorization: string | undefined }[] = [];
  /** What /pods answers; a function is called per request (to list a container only after N polls). */
  answer: string | (() => string) = '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}';
  status = 200;

  constructor(pki: TestPki, readonly acceptToken: string) {
    this.#server = createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
      this.requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
      if (req.headers.authorization !== `Bearer ${this.acceptToken}`) return send(res, 401, 'Unauthorized');
      if (req.method !== 'GET' || req.url !== '/pods') return send(res, 404, '404 page not found');
      send(res, this.status, typeof this.answer === 'function' ? this.answer() : this.answer);
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.#server);
    return this;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }
}

/** Signs projected service-account tokens like kube-apiserver's ServiceAccount token issuer. */
export class TokenIssuer {
  private constructor(readonly privateKey: CryptoKey, readonly publicKey: CryptoKey, readonly kid: string) {}

  static async create(): Promise<TokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    return new TokenIssuer(privateKey, publicKey, (jwk.n ?? '').slice(0, 43));
  }

  /** A projected token for `pod` (as the kubelet requests it via TokenRequest). */
  async projected(opts: { audience: string[]; pod: V1Pod; node?: V1Node; now: Date; ttlSeconds?: number; key?: CryptoKey }): Promise<string> {
    const iat = Math.floor(opts.now.getTime() / 1000);
    const ns = opts.pod.metadata?.namespace ?? '';
    const sa = opts.pod.spec?.serviceAccountName ?? 'default';
    const claims: JWTPayload = {
      'kubernetes.io': {
        namespace: ns,
        pod: { name: opts.pod.metadata?.name, uid: opts.pod.metadata?.uid },
        serviceaccount: { name: sa, uid: '8e0c6d2a-7f41-4b93-a5d8-1c9e3b7f2a60' },
        ...(opts.node ? { node: { name: opts.node.metadata?.name, uid: opts.node.metadata?.uid } } : {}),
      },
    };
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: this.kid })
      .setIssuer(ISSUER)
      .setSubject(`system:serviceaccount:${ns}:${sa}`)
      .setAudience(opts.audience)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + (opts.ttlSeconds ?? 3607))
      .setJti('7b3f9c1e-2d4a-4e8b-9f6c-0a1d5e7b3c92')
      .sign(opts.key ?? this.privateKey);
  }
}

interface PsatClaims {
  namespace: string;
  pod: { name: string; uid: string };
  serviceaccount: { name: string; uid: string };
  node?: { name: string; uid: string };
}

/** kube-apiserver's TokenReview, Pod and Node endpoints. */
export class FakeApiServer {
  readonly #server: Server;
  port = 0;
  readonly pods = new Map<string, V1Pod>();
  readonly nodes = new Map<string, V1Node>();
  readonly calls: string[] = [];
  /** Answer with the token's own audiences, ignoring the requested ones (an authenticator that does not honour spec.audiences). */
  ignoreRequestedAudiences = false;
  now: () => Date = () => new Date();

  constructor(pki: TestPki, readonly issuer: TokenIssuer, readonly acceptToken: string) {
    this.#server = createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => void this.#handle(req, res));
  }

  addPod(p: V1Pod): void {
    this.pods.set(`${p.metadata?.namespace}/${p.metadata?.name}`, p);
  }

  addNode(n: V1Node): void {
    this.nodes.set(n.metadata?.name ?? '', n);
  }

  async start(): Promise<this> {
    this.port = await listen(this.#server);
    return this;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '';
    this.calls.push(`${req.method} ${url}`);
    if (req.headers.authorization !== `Bearer ${this.acceptToken}`) return send(res, 401, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    const notFound = (kind: string, name: string): void =>
      send(res, 404, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `${kind} "${name}" not found`, reason: 'NotFound', details: { name, kind }, code: 404 });
    let m;
    if (req.method === 'POST' && url === '/apis/authentication.k8s.io/v1/tokenreviews') {
      const body = JSON.parse(await readBody(req)) as { spec: { token: string; audiences?: string[] } };
      return send(res, 201, await this.#review(body.spec.token, body.spec.audiences ?? []));
    }
    if (req.method === 'GET' && (m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url))) {
      const p = this.pods.get(`${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`);
      return p ? send(res, 200, p) : notFound('pods', decodeURIComponent(m[2]!));
    }
    if (req.method === 'GET' && (m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(url))) {
      const n = this.nodes.get(decodeURIComponent(m[1]!));
      return n ? send(res, 200, n) : notFound('nodes', decodeURIComponent(m[1]!));
    }
    send(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404 });
  }

  /** What kube-apiserver answers for a service-account token (the authenticator's checks, in its order). */
  async #review(token: string, requested: string[]): Promise<unknown> {
    const audiences = requested.length > 0 ? requested : [ISSUER];
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.issuer.publicKey, { issuer: ISSUER, currentDate: this.now() }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why = code === 'ERR_JWT_EXPIRED' ? 'service account token has expired' : 'token signature is invalid';
      return tokenReviewRefused(token, requested, `[invalid bearer token, ${why}, unknown]`);
    }
    const tokenAud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
    const granted = this.ignoreRequestedAudiences ? tokenAud : audiences.filter((a) => tokenAud.includes(a));
    if (granted.length === 0) {
      return tokenReviewRefused(token, requested, `[invalid bearer token, token audiences ${JSON.stringify(tokenAud)} is invalid for the target audiences ${JSON.stringify(audiences)}, unknown]`);
    }
    const k = payload['kubernetes.io'] as PsatClaims;
    const live = this.pods.get(`${k.namespace}/${k.pod.name}`);
    if (live === undefined || live.metadata?.uid !== k.pod.uid) {
      return tokenReviewRefused(token, requested, `[invalid bearer token, pod "${k.pod.name}" not found or UID mismatch, unknown]`);
    }
    const extra: Record<string, string[]> = {
      'authentication.kubernetes.io/credential-id': [`JTI=${payload.jti}`],
      'authentication.kubernetes.io/pod-name': [k.pod.name],
      'authentication.kubernetes.io/pod-uid': [k.pod.uid],
    };
    if (k.node) {
      extra['authentication.kubernetes.io/node-name'] = [k.node.name];
      extra['authentication.kubernetes.io/node-uid'] = [k.node.uid];
    }
    const out = tokenReviewOk({ token, audiences: granted, username: `system:serviceaccount:${k.namespace}:${k.serviceaccount.name}`, extra });
    return out;
  }
}
