/**
 * @module server/notifier/k8sbundle/testing
 *
 * A STAND-IN Kubernetes API server for `k8sbundle`'s tests, and the plugin's conformance
 * fixture. Why a stand-in: the tests run on machines with no cluster (CI included), and
 * the notifier's contract is the API server's wire format, which this reproduces for the
 * two calls it makes, as the real one answers them:
 * - HTTPS (a self-signed serving certificate for 127.0.0.1 made with openssl; the client
 *   verifies it) and `Authorization: Bearer <token>` (else 401 with a `Status`);
 * - `GET /api/v1/namespaces/{ns}/configmaps/{name}`: 200 with the `ConfigMap` (apiVersion,
 *   kind, metadata with uid, resourceVersion, creationTimestamp; data), 404 `Status`
 *   (reason NotFound) when absent;
 * - `PATCH` of the same path with `Content-Type: application/merge-patch+json`: RFC 7386
 *   merge of the body; a `metadata.resourceVersion` in it that is not the current one is
 *   a 409 `Status` (reason Conflict), as the API server's optimistic concurrency answers;
 *   any other patch type 415; on success the resourceVersion moves on and 200 returns
 *   the new object.
 * Not for production use.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiServerClientConfig } from '../../../attestors/node/k8s_psat/apiserver.js';
import type { NotifierFixture } from '../conformance.js';

type Json = Record<string, unknown>;

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Json = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Json) } : {};
  for (const [k, v] of Object.entries(patch as Json)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const status = (code: number, reason: string, message: string): Json => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

export class StandInKubernetesApiServer {
  #dir = '';
  readonly #token = 'stand-in-token';
  readonly #objects = new Map<string, Json>();
  #server: https.Server | undefined;
  #port = 0;
  #caPem = '';
  #version = 100;
  /** Every request, as `METHOD path`. */
  readonly requests: string[] = [];
  /** When set, another writer changes the ConfigMap just before each of the next N PATCHes (they then conflict). */
  concurrentWrites = 0;

  async start(): Promise<void> {
    this.#dir = mkdtempSync(join(tmpdir(), 'mayfly-k8s-standin-'));
    const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: this.#dir, stdio: ['ignore', 'ignore', 'pipe'] });
    ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=kube-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1']);
    this.#caPem = readFileSync(join(this.#dir, 'cert.pem'), 'utf8');
    writeFileSync(join(this.#dir, 'token'), `${this.#token}\n`);
    const server = https.createServer({ cert: this.#caPem, key: readFileSync(join(this.#dir, 'key.pem')) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const [code, body] = this.#handle(req.method ?? '', req.url ?? '', String(req.headers['content-type'] ?? ''), String(req.headers.authorization ?? ''), Buffer.concat(chunks).toString('utf8'));
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.#server === undefined) return resolve();
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
    if (this.#dir !== '') rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = '';
  }

  /** What a client in a pod would be configured with. */
  clientConfig(): ApiServerClientConfig {
    return { server: `https://127.0.0.1:${this.#port}`, caPem: this.#caPem, tokenPath: join(this.#dir, 'token'), timeoutMs: 5000 };
  }

  /** Creates (or replaces) a ConfigMap, as `kubectl apply` of deploy/k8s would. */
  putConfigMap(namespace: string, name: string, data: Record<string, string> = {}): void {
    this.#objects.set(`${namespace}/${name}`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace, uid: `uid-${namespace}-${name}`, resourceVersion: String(++this.#version), creationTimestamp: new Date(0).toISOString() },
      data,
    });
  }

  configMap(namespace: string, name: string): { data?: Record<string, string>; metadata: { resourceVersion: string } } | undefined {
    return this.#objects.get(`${namespace}/${name}`) as { data?: Record<string, string>; metadata: { resourceVersion: string } } | undefined;
  }

  #handle(method: string, url: string, contentType: string, auth: string, body: string): [number, Json] {
    this.requests.push(`${method} ${url}`);
    if (auth !== `Bearer ${this.#token}`) return [401, status(401, 'Unauthorized', 'Unauthorized')];
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps\/([^/?]+)$/.exec(url);
    if (m === null) return [404, status(404, 'NotFound', 'the server could not find the requested resource')];
    const key = `${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`;
    const obj = this.#objects.get(key);
    const notFound = status(404, 'NotFound', `configmaps "${decodeURIComponent(m[2]!)}" not found`);
    if (method === 'GET') return obj === undefined ? [404, notFound] : [200, obj];
    if (method !== 'PATCH') return [405, status(405, 'MethodNotAllowed', `method ${method} not allowed`)];
    if (contentType.split(';')[0]!.trim() !== 'application/merge-patch+json') return [415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`)];
    if (obj === undefined) return [404, notFound];
    if (this.concurrentWrites > 0) {
      this.concurrentWrites--;
      (obj.metadata as Json).resourceVersion = String(++this.#version);
    }
    let patch: Json;
    try {
      patch = JSON.parse(body) as Json;
    } catch {
      return [400, status(400, 'BadRequest', 'the body is not JSON')];
    }
    const wanted = (patch.metadata as Json | undefined)?.resourceVersion;
    const current = (obj.metadata as Json).resourceVersion;
    if (wanted !== undefined && wanted !== current) {
      return [409, status(409, 'Conflict', `Operation cannot be fulfilled on configmaps "${(obj.metadata as Json).name as string}": the object has been modified; please apply your changes to the latest version and try again`)];
    }
    const next = mergePatch(obj, patch) as Json;
    (next.metadata as Json).resourceVersion = String(++this.#version);
    this.#objects.set(key, next);
    return [200, next];
  }
}

const standIn = new StandInKubernetesApiServer();

const k8sbundle: NotifierFixture = {
  binary: 'server',
  kind: 'Notifier',
  name: 'k8sbundle',
  beforeAll: async () => {
    await standIn.start();
    standIn.putConfigMap('infra', 'agents');
  },
  afterAll: () => standIn.stop(),
  pluginData: () => 'namespace = "infra"\nconfig_map = "agents"\nconfig_map_key = "bootstrap.crt"',
  deps: () => ({ logger: { info() {}, warn() {} }, kubernetesApiServer: async () => standIn.clientConfig(), notifierRetryMs: 50 }),
  published: async () => standIn.configMap('infra', 'agents')?.data?.['bootstrap.crt'],
};

export const pluginFixtures = [k8sbundle];
