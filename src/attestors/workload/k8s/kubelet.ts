/**
 * @module attestors/workload/k8s/kubelet
 *
 * Reads the pods of this node from the kubelet: `GET /pods` on the secure port (10250,
 * HTTPS, bearer service-account token, kubelet certificate verified against a CA), or on
 * the read-only port (HTTP, no authentication) when one is configured.
 *
 * Threat: a forged pod list. Over the secure port the kubelet's certificate is verified
 * against `caPath` (hostname included) unless `skipKubeletVerification` is set explicitly
 * (kubelets commonly serve self-signed certificates; SPIRE has the same switch, and it
 * means anyone who can intercept node-local traffic could feed the agent pod facts). Any
 * answer that is not a well-formed PodList (non-200, not JSON, wrong kind, oversized,
 * timed out) is an error: the attestor fails closed rather than attest from part of one.
 *
 * Why `node:https` and not `@kubernetes/client-node`: that library talks to the API
 * server; it has no kubelet client (the kubelet API is not part of the OpenAPI spec it is
 * generated from). Its types are used for the wire shapes.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { checkServerIdentity } from 'node:tls';
import type { V1Pod, V1PodList } from '@kubernetes/client-node';

/** Where a pod's service-account token and cluster CA are mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const DEFAULT_KUBELET_SECURE_PORT = 10250;
/** The environment variable the DaemonSet fills from `spec.nodeName` (SPIRE's `node_name_env` default). */
export const DEFAULT_NODE_NAME_ENV = 'MY_NODE_NAME';
/**
 * The RBAC the kubelet checks for `GET /pods` (checked against deploy/k8s by a test). It is
 * authorised as `nodes/proxy` (or `nodes/pods` with fine-grained kubelet authorisation).
 */
export const KUBELET_API_CALLS = [{ apiGroup: '', resource: 'nodes/proxy', verb: 'get' }] as const;

export interface KubeletClientConfig {
  /** Host to connect to. Default 127.0.0.1 (the agent runs with hostNetwork, next to the kubelet). */
  host?: string;
  /**
   * Name the kubelet's certificate must carry. Default: the node name from `$MY_NODE_NAME`
   * (kubelet serving certificates name the node, not 127.0.0.1), else `host`.
   */
  serverName?: string;
  /** HTTPS port. Default 10250. */
  securePort?: number;
  /** Use the unauthenticated read-only port instead (e.g. 10255). Off unless set. */
  readOnlyPort?: number;
  /** CA bundle (PEM) the kubelet's serving certificate must chain to. Default: the service account's `ca.crt`. */
  caPath?: string;
  /** Service-account token sent as the bearer token (re-read on every call: projected tokens rotate). */
  tokenPath?: string;
  /** Do not verify the kubelet's certificate. Insecure; off unless set to true. */
  skipKubeletVerification?: boolean;
  /** Per-request timeout (ms). Default 5000. */
  timeoutMs?: number;
  /** Largest PodList accepted (bytes). Default 64 MiB. */
  maxResponseBytes?: number;
}

/** A kubelet answer the attestor cannot use; the message says why. */
export class KubeletError extends Error {}

/** The subset of the kubelet's answer the attestor uses, checked at runtime. */
export type KubeletPod = V1Pod;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks that `body` is a PodList whose items carry the fields attestation relies on. */
export function parsePodList(body: string): KubeletPod[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new KubeletError(`the kubelet's /pods answer is not JSON (starts ${JSON.stringify(body.slice(0, 80))})`);
  }
  if (!isObject(doc) || doc.kind !== 'PodList' || !Array.isArray(doc.items)) {
    throw new KubeletError('the kubelet\'s /pods answer is not a PodList (no kind "PodList" with an items array)');
  }
  const list = doc as unknown as V1PodList;
  for (const [i, pod] of list.items.entries()) {
    const m: unknown = (pod as unknown as Record<string, unknown>).metadata;
    if (!isObject(m) || typeof m.uid !== 'string' || typeof m.name !== 'string' || typeof m.namespace !== 'string') {
      throw new KubeletError(`the kubelet's PodList item ${i} lacks metadata.uid/name/namespace`);
    }
  }
  return list.items;
}

export class KubeletClient {
  readonly #host: string;
  readonly #serverName: string;
  readonly #port: number;
  readonly #secure: boolean;
  readonly #caPath: string;
  readonly #tokenPath: string;
  readonly #skipVerify: boolean;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  /**
   * This client's own connection pool: Node's global agent would hand a kept-alive
   * connection verified under another client's settings (its pool key ignores
   * checkServerIdentity) to this one.
   */
  readonly #agent: http.Agent;

  constructor(cfg: KubeletClientConfig = {}) {
    this.#host = cfg.host ?? '127.0.0.1';
    this.#serverName = cfg.serverName ?? (process.env[DEFAULT_NODE_NAME_ENV] || this.#host);
    this.#secure = cfg.readOnlyPort === undefined;
    this.#port = cfg.readOnlyPort ?? cfg.securePort ?? DEFAULT_KUBELET_SECURE_PORT;
    if (!Number.isInteger(this.#port) || this.#port <= 0 || this.#port > 65535) throw new TypeError(`kubelet port must be 1..65535, got ${this.#port}`);
    this.#caPath = cfg.caPath ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`;
    this.#tokenPath = cfg.tokenPath ?? `${SERVICE_ACCOUNT_DIR}/token`;
    this.#skipVerify = cfg.skipKubeletVerification === true;
    this.#timeoutMs = cfg.timeoutMs ?? 5000;
    this.#maxBytes = cfg.maxResponseBytes ?? 64 * 1024 * 1024;
    this.#agent = this.#secure ? new https.Agent({ keepAlive: true, maxSockets: 4 }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  /** The URL asked, for messages. */
  get url(): string {
    return `${this.#secure ? 'https' : 'http'}://${this.#host}:${this.#port}/pods`;
  }

  /** The pods the kubelet runs. Throws KubeletError for anything but a good PodList. */
  async listPods(): Promise<KubeletPod[]> {
    return parsePodList(await this.#get());
  }

  async #get(): Promise<string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    let options: https.RequestOptions = { host: this.#host, port: this.#port, path: '/pods', method: 'GET', headers, timeout: this.#timeoutMs, agent: this.#agent };
    if (this.#secure) {
      const token = (await this.#read(this.#tokenPath, 'service-account token')).trim();
      if (token === '') throw new KubeletError(`the service-account token file ${this.#tokenPath} is empty`);
      headers.authorization = `Bearer ${token}`;
      options = this.#skipVerify
        ? { ...options, rejectUnauthorized: false }
        : {
            ...options,
            ca: await this.#read(this.#caPath, 'kubelet CA bundle'),
            rejectUnauthorized: true,
            // The certificate must name the node even though we connect to 127.0.0.1.
            checkServerIdentity: (_host, cert) => checkServerIdentity(this.#serverName, cert),
          };
    }
    const request = this.#secure ? https.request : http.request;
    return new Promise<string>((resolve, reject) => {
      const fail = (why: string, cause?: unknown): void => reject(new KubeletError(`kubelet ${this.url}: ${why}`, cause === undefined ? undefined : { cause }));
      const req = request(options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.#maxBytes) {
            req.destroy();
            fail(`answer is larger than ${this.#maxBytes} bytes`);
            return;
          }
          chunks.push(c);
        });
        res.on('error', (err) => fail(`answer broke off: ${err.message}`, err));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            const hint = res.statusCode === 401 || res.statusCode === 403 ? ' (does the agent\'s service account have "get" on nodes/proxy?)' : '';
            fail(`HTTP ${res.statusCode}${hint}: ${body.slice(0, 200)}`);
            return;
          }
          resolve(body);
        });
      });
      req.on('timeout', () => {
        req.destroy();
        fail(`no answer within ${this.#timeoutMs} ms`);
      });
      req.on('error', (err) => fail(`unreachable: ${err.message}`, err));
      req.end();
    });
  }

  async #read(path: string, what: string): Promise<string> {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new KubeletError(`cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }
}
