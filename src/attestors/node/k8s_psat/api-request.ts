/**
 * @module attestors/node/k8s_psat/api-request
 *
 * One HTTPS call to a Kubernetes API server, shared by k8s_psat's `ApiServerClient` and the
 * `k8sbundle` notifier's `ConfigMapClient`. What it guards against: an API server reached
 * through a certificate we did not pin (the configured CA is the only trust, hostname
 * checked), a stale bearer token (re-read from its file on every call: projected tokens
 * rotate), and an answer that never ends or never stops growing (time- and size-limited).
 * Transport failures throw `KubernetesApiError`; the status and text of any answer are the
 * caller's to judge.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';

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

/** A failed API server call; `status` is the HTTP status when the server answered. */
export class KubernetesApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  /** Sent as JSON with this content type (default application/json). */
  body?: unknown;
  contentType?: string;
}

export interface ApiAnswer {
  status: number;
  text: string;
}

const MAX_BODY = 4 * 1024 * 1024;

/** The API server's URL, refusing what cannot be a verified HTTPS connection (caller misuse: TypeError). */
export function apiServerUrl(cfg: ApiServerClientConfig): URL {
  const url = new URL(cfg.server);
  if (url.protocol !== 'https:') throw new TypeError(`the API server URL must be https, got ${cfg.server}`);
  if (typeof cfg.caPem !== 'string' || cfg.caPem === '') throw new TypeError('caPem is required');
  return url;
}

/** Makes one call over `agent` (the caller's own pool, so no connection made under other TLS settings is reused). */
export async function callApiServer(cfg: ApiServerClientConfig, url: URL, agent: https.Agent, request: ApiRequest): Promise<ApiAnswer> {
  const what = `${request.method} ${request.path}`;
  let token: string;
  try {
    token = (await readFile(cfg.tokenPath, 'utf8')).trim();
  } catch (err) {
    throw new KubernetesApiError(`cannot read the API server token ${cfg.tokenPath}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body));
  const headers: Record<string, string | number> = { accept: 'application/json', authorization: `Bearer ${token}` };
  if (payload) {
    headers['content-type'] = request.contentType ?? 'application/json';
    headers['content-length'] = payload.length;
  }
  const timeout = cfg.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown): void => reject(new KubernetesApiError(`API server ${what}: ${why}`, undefined, cause === undefined ? undefined : { cause }));
    const req = https.request(
      { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || 443, path: request.path, method: request.method, headers, ca: cfg.caPem, rejectUnauthorized: true, timeout, agent },
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
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
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

/** The answer's JSON, or a `KubernetesApiError` naming the call. */
export function answerJson(answer: ApiAnswer, what: string): unknown {
  try {
    return JSON.parse(answer.text);
  } catch {
    throw new KubernetesApiError(`API server ${what}: answer is not JSON`, answer.status);
  }
}
