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
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { V1ConfigMap } from '@kubernetes/client-node';
import type { ApiServerClientConfig } from '../../../attestors/node/k8s_psat/apiserver.js';

export class ConfigMapApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const MAX_BODY = 4 * 1024 * 1024;

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
    const url = new URL(cfg.server);
    if (url.protocol !== 'https:') throw new TypeError(`the API server URL must be https, got ${cfg.server}`);
    if (typeof cfg.caPem !== 'string' || cfg.caPem === '') throw new TypeError('caPem is required');
    this.#url = url;
    this.#cfg = cfg;
  }

  static path(namespace: string, name: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(name)}`;
  }

  async get(namespace: string, name: string): Promise<V1ConfigMap> {
    const cm = (await this.#call('GET', ConfigMapClient.path(namespace, name))) as V1ConfigMap;
    if (cm?.kind !== 'ConfigMap') throw new ConfigMapApiError(`expected a ConfigMap from the API server, got ${JSON.stringify(cm).slice(0, 120)}`);
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
    let token: string;
    try {
      token = (await readFile(this.#cfg.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new ConfigMapApiError(`cannot read the API server token ${this.#cfg.tokenPath}: ${(err as Error).message}`, undefined, { cause: err });
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json', authorization: `Bearer ${token}` };
    if (payload) {
      headers['content-type'] = 'application/merge-patch+json';
      headers['content-length'] = payload.length;
    }
    const timeout = this.#cfg.timeoutMs ?? 10_000;
    const what = `${method} ${path}`;
    return new Promise((resolve, reject) => {
      const fail = (why: string, status?: number, cause?: unknown): void =>
        reject(new ConfigMapApiError(`API server ${what}: ${why}`, status, cause === undefined ? undefined : { cause }));
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
          res.on('error', (err) => fail(`answer broke off: ${err.message}`, undefined, err));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status !== 200) {
              let message = text.slice(0, 300);
              try {
                message = String((JSON.parse(text) as { message?: unknown }).message ?? message);
              } catch {
                // not a Status object: keep the text
              }
              const hint =
                status === 404 ? ' (create the ConfigMap: the notifier only updates it, as SPIRE\'s does)' : status === 403 ? ' (the server\'s RBAC needs get and patch on this ConfigMap)' : '';
              return fail(`HTTP ${status}${hint}: ${message}`, status);
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
      req.on('error', (err) => fail(`unreachable: ${err.message}`, undefined, err));
      req.end(payload);
    });
  }
}
