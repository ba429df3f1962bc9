/**
 * @module server/notifier/k8sbundle/configmaps
 *
 * The two Kubernetes API calls `k8sbundle` makes: GET a ConfigMap and PATCH one key of its
 * `data` (JSON merge patch, `application/merge-patch+json`, carrying the resourceVersion
 * read, so a concurrent writer makes it fail with 409 instead of being overwritten).
 * HTTPS with the API server's CA verified and a bearer token re-read on every call
 * (projected tokens rotate); answers size- and time-limited. The connection settings are
 * k8s_psat's (`ApiServerClientConfig`, `inClusterConfig`): the same API server, the same
 * pod credentials.
 */
import https from 'node:https';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { answerJson, apiServerUrl, callApiServer, KubernetesApiError, type ApiServerClientConfig } from '../../../attestors/node/k8s_psat/api-request.js';

/** The API calls made, for the RBAC it needs (test/k8s/manifests.test.ts checks deploy/k8s grants exactly these). */
export const K8S_BUNDLE_API_CALLS = [
  { resource: 'configmaps', verb: 'get' },
  { resource: 'configmaps', verb: 'patch' },
] as const;

export class ConfigMapClient {
  readonly #url: URL;
  readonly #cfg: ApiServerClientConfig;
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 2 });

  constructor(cfg: ApiServerClientConfig) {
    this.#url = apiServerUrl(cfg);
    this.#cfg = cfg;
  }

  static path(namespace: string, name: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(name)}`;
  }

  async get(namespace: string, name: string): Promise<V1ConfigMap> {
    const cm = (await this.#call('GET', ConfigMapClient.path(namespace, name))) as V1ConfigMap;
    if (cm?.kind !== 'ConfigMap') throw new KubernetesApiError(`expected a ConfigMap from the API server, got ${JSON.stringify(cm).slice(0, 120)}`);
    return cm;
  }

  /** Sets `data[key] = value`, failing with status 409 unless the ConfigMap is still at `resourceVersion`. */
  async patchKey(namespace: string, name: string, key: string, value: string, resourceVersion: string): Promise<V1ConfigMap> {
    const patch = { metadata: { resourceVersion }, data: { [key]: value } };
    return (await this.#call('PATCH', ConfigMapClient.path(namespace, name), patch)) as V1ConfigMap;
  }

  close(): void {
    this.#agent.destroy();
  }

  async #call(method: 'GET' | 'PATCH', path: string, body?: unknown): Promise<unknown> {
    const what = `${method} ${path}`;
    const answer = await callApiServer(this.#cfg, this.#url, this.#agent, { method, path, body, contentType: 'application/merge-patch+json' });
    if (answer.status !== 200) {
      let message = answer.text.slice(0, 300);
      try {
        message = String((JSON.parse(answer.text) as { message?: unknown }).message ?? message);
      } catch {
        // not a Status object: keep the text
      }
      const hint =
        answer.status === 404 ? ' (create the ConfigMap: the notifier only updates it, as SPIRE\'s does)' : answer.status === 403 ? ' (the server\'s RBAC needs get and patch on this ConfigMap)' : '';
      throw new KubernetesApiError(`API server ${what}: HTTP ${answer.status}${hint}: ${message}`, answer.status);
    }
    return answerJson(answer, what);
  }
}
