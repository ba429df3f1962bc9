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
import { answerJson, apiServerUrl, callApiServer, KubernetesApiError, type ApiServerClientConfig } from './api-request.js';

export { KubernetesApiError, type ApiServerClientConfig } from './api-request.js';

/** Where a pod's service-account token, CA and namespace are mounted. */
export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubernetesApi {
  createTokenReview(token: string, audiences: readonly string[]): Promise<V1TokenReview>;
  /** undefined when the pod does not exist. */
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  /** undefined when the node does not exist. */
  getNode(name: string): Promise<V1Node | undefined>;
}


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
    throw new KubernetesApiError(`cannot read the cluster CA ${dir}/ca.crt: ${(err as Error).message}`, undefined, { cause: err });
  }
  const h = host.includes(':') ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, caPem, tokenPath: `${dir}/token` };
}

export class ApiServerClient implements KubernetesApi {
  readonly #url: URL;
  readonly #cfg: ApiServerClientConfig;
  /** A pool of its own, so no kept-alive connection made under other TLS settings is reused. */
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 8 });

  constructor(cfg: ApiServerClientConfig) {
    this.#url = apiServerUrl(cfg);
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
    const answer = await callApiServer(this.#cfg, this.#url, this.#agent, { method, path, body });
    if (answer.status === 404) return undefined;
    if (answer.status !== 200 && answer.status !== 201) {
      const hint = answer.status === 403 ? ' (check the server\'s RBAC: tokenreviews create, pods and nodes get)' : '';
      throw new KubernetesApiError(`API server ${method} ${path}: HTTP ${answer.status}${hint}: ${answer.text.slice(0, 300)}`, answer.status);
    }
    return answerJson(answer, `${method} ${path}`);
  }
}

function expectKind<T>(v: unknown, kind: string): T {
  if (typeof v !== 'object' || v === null || (v as { kind?: unknown }).kind !== kind) {
    throw new KubernetesApiError(`expected a ${kind} from the API server, got ${JSON.stringify(v).slice(0, 120)}`);
  }
  return v as T;
}
