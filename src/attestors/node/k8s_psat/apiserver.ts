/**
 * @module attestors/node/k8s_psat/apiserver
 *
 * The three Kubernetes API server calls the k8s_psat attestor makes: create a TokenReview,
 * get a Pod, get a Node. HTTPS with the server's CA verified (hostname included) and a
 * bearer token; answers are checked to be JSON of the expected `kind`, size-limited and
 * time-limited. A 404 on a Pod or Node is "does not exist" (undefined); every other
 * failure throws `KubernetesApiError`, which the attestor turns into a refusal.
 *
 * Why not `@kubernetes/client-node` at runtime: its 2.x line needs Node >= 22.19 (its
 * `undici` dependency fails to load on Node 20, which Mayfly supports), and three REST
 * calls do not justify a second HTTP stack. The library's generated types describe the
 * wire shapes. `inClusterConfig` reads what a pod gets (as client-node's `loadFromCluster`
 * does); a kubeconfig file is not supported yet.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { V1Node, V1Pod, V1TokenReview } from '@kubernetes/client-node';

/** Where a pod's service-account token, CA and namespace are mounted. */
export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubernetesApi {
  createTokenReview(token: string, audiences: readonly string[]): Promise<V1TokenReview>;
  /** undefined when the pod does not exist. */
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  /** undefined when the node does not exist. */
  getNode(name: string): Promise<V1Node | undefined>;
}

export interface ApiServerClientConfig {
  /** `https://host:port` of the API server. */
  server: string;
  /** PEM CA bundle of the API server's certificate. */
  caPem: string;
  /** File holding the bearer token (re-read on every call: projected tokens rotate). */
  tokenPath: string;
  /** Per-request timeout (ms). Default 10000. */
  timeoutMs?: number;
}

export class KubernetesApiError extends Error {}

/** The API server as seen from inside a pod: `$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` and the mounted service account. */
export async function inClusterConfig(opts: { env?: NodeJS.ProcessEnv; dir?: string } = {}): Promise<ApiServerClientConfig> {
  const env = opts.env ?? process.env;
  const dir = opts.dir ?? IN_CLUSTER_DIR;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubernetesApiError('not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set');
  let caPem: string;
  try {
    caPem = await readFile(`${dir}/ca.crt`, 'utf8');
  } catch (err) {
    throw new KubernetesApiError(`cannot read the cluster CA ${dir}/ca.crt: ${(err as Error).message}`, { cause: err });
  }
  const h = host.includes(':') ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, caPem, tokenPath: `${dir}/token` };
}

const MAX_BODY = 4 * 1024 * 1024;

export class ApiServerClient implements KubernetesApi {
  readonly #url: URL;
  readonly #cfg: ApiServerClientConfig;
  /** A pool of its own, so no kept-alive connection made under other TLS settings is reused. */
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 8 });

  constructor(cfg: ApiServerClientConfig) {
    const url = new URL(cfg.server);
    if (url.protocol !== 'https:') throw new TypeError(`the API server URL must be https, got ${cfg.server}`);
    if (typeof cfg.caPem !== 'string' || cfg.caPem === '') throw new TypeError('caPem is required');
    this.#url = url;
    this.#cfg = cfg;
  }

  async createTokenReview(token: string, audiences: readonly string[]): Promise<V1TokenReview> {
    const body: V1TokenReview = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [...audiences] } };
    const res = await this.#call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', body);
    if (res === undefined) throw new KubernetesApiError('TokenReview: the API server answered 404 (is authentication.k8s.io/v1 served?)');
    return expectKind<V1TokenReview>(res, 'TokenReview');
  }

  async getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    const res = await this.#call('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`);
    return res === undefined ? undefined : expectKind<V1Pod>(res, 'Pod');
  }

  async getNode(name: string): Promise<V1Node | undefined> {
    const res = await this.#call('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
    return res === undefined ? undefined : expectKind<V1Node>(res, 'Node');
  }

  async #call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    let token: string;
    try {
      token = (await readFile(this.#cfg.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new KubernetesApiError(`cannot read the API server token ${this.#cfg.tokenPath}: ${(err as Error).message}`, { cause: err });
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json', authorization: `Bearer ${token}` };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const timeout = this.#cfg.timeoutMs ?? 10_000;
    const what = `${method} ${path}`;
    return new Promise((resolve, reject) => {
      const fail = (why: string, cause?: unknown): void => reject(new KubernetesApiError(`API server ${what}: ${why}`, cause === undefined ? undefined : { cause }));
      const req = https.request(
        { host: this.#url.hostname.replace(/^\[|\]$/g, ''), port: this.#url.port || 443, path, method, headers, ca: this.#cfg.caPem, rejectUnauthorized: true, timeout, agent: this.#agent },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) {
              req.destroy();
              fail(`answer larger than ${MAX_BODY} bytes`);
            } else chunks.push(c);
          });
          res.on('error', (err) => fail(`answer broke off: ${err.message}`, err));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 404) return resolve(undefined);
            if (res.statusCode !== 200 && res.statusCode !== 201) {
              const hint = res.statusCode === 403 ? ' (check the server\'s RBAC: tokenreviews create, pods and nodes get)' : '';
              return fail(`HTTP ${res.statusCode}${hint}: ${text.slice(0, 300)}`);
            }
            try {
              resolve(JSON.parse(text));
            } catch {
              fail('answer is not JSON');
            }
          });
        },
      );
      req.on('timeout', () => {
        req.destroy();
        fail(`no answer within ${timeout} ms`);
      });
      req.on('error', (err) => fail(`unreachable: ${err.message}`, err));
      req.end(payload);
    });
  }
}

function expectKind<T>(v: unknown, kind: string): T {
  if (typeof v !== 'object' || v === null || (v as { kind?: unknown }).kind !== kind) {
    throw new KubernetesApiError(`expected a ${kind} from the API server, got ${JSON.stringify(v).slice(0, 120)}`);
  }
  return v as T;
}
