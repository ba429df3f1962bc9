/**
 * @module server/notifier/k8sbundle/k8sbundle
 *
 * SPIRE's `Notifier "k8sbundle"`: the trust domain's X.509 authorities, as PEM, kept in one
 * key of a Kubernetes ConfigMap (default `mayfly/mayfly-bundle`, key `bundle.crt`), written
 * when the server starts and again on every change of the bundle it serves. Agents mount
 * that ConfigMap as their `trust_bundle_path`, so a node added after a CA rotation
 * bootstraps with the current roots and nobody re-exports the bundle by hand.
 *
 * Threat it stops: new agents bootstrapping from a stale bundle (an old, revoked or
 * expired root) and so failing to verify the server, or trusting a root the operator
 * revoked. Every write carries the resourceVersion it read (merge patch), so two servers
 * sharing a datastore never interleave an older bundle over a newer one: the loser gets
 * 409, reads again and writes the bundle it serves now. The ConfigMap is only updated,
 * never created (as SPIRE's): the operator decides where it lives and who may read it.
 *
 * Failures (API server unreachable, RBAC, a missing ConfigMap) are logged and retried
 * after `retryMs`; they never stop the server.
 */
import type { ApiServerClientConfig } from '../../../attestors/node/k8s_psat/apiserver.js';
import { pemEncodeCertificates } from '../../../spiffe/x509/pem.js';
import type { BundleSource, Notifier } from '../notifier.js';
import { KubernetesApiError } from '../../../attestors/node/k8s_psat/api-request.js';
import { ConfigMapClient } from './configmaps.js';

export interface K8sBundleConfig {
  namespace: string;
  configMap: string;
  configMapKey: string;
}

export interface K8sBundleLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface K8sBundleNotifierConfig extends K8sBundleConfig {
  /** Where the API server is and how to authenticate (default: the pod's in-cluster configuration). */
  apiServer: () => Promise<ApiServerClientConfig>;
  logger: K8sBundleLogger;
  /** Wait before retrying a failed publish (ms, default 5000). */
  retryMs?: number;
}

/** Tries per publish when another writer keeps winning (409). */
const CONFLICT_TRIES = 5;

export class K8sBundleNotifier implements Notifier {
  readonly name = 'k8sbundle';
  readonly #cfg: K8sBundleNotifierConfig;
  #client: ConfigMapClient | undefined;
  #source: BundleSource | undefined;
  #unsubscribe: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(cfg: K8sBundleNotifierConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.apiServer !== 'function') throw new TypeError('K8sBundleNotifier needs { namespace, configMap, configMapKey, apiServer, logger }');
    this.#cfg = cfg;
  }

  async start(source: BundleSource): Promise<void> {
    this.#source = source;
    this.#unsubscribe = source.onChange(() => this.#request());
    this.#request();
    await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
    this.#client?.close();
  }

  /** Resolves when no publish is running or asked for (tests). */
  async settled(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  #request(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#publishOnce();
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
    });
  }

  async #publishOnce(): Promise<void> {
    const { namespace, configMap, configMapKey: key } = this.#cfg;
    const where = { namespace, configMap, key };
    try {
      const bundle = this.#source!.bundle();
      const pem = pemEncodeCertificates(bundle.x509Authorities);
      this.#client ??= new ConfigMapClient(await this.#cfg.apiServer());
      for (let attempt = 1; ; attempt++) {
        const cm = await this.#client.get(namespace, configMap);
        if (cm.data?.[key] === pem) return;
        try {
          await this.#client.patchKey(namespace, configMap, key, pem, cm.metadata?.resourceVersion ?? '');
          this.#cfg.logger.info({ ...where, authorities: bundle.x509Authorities.length, sequence: bundle.sequence }, 'trust bundle published to the ConfigMap');
          return;
        } catch (err) {
          if (!(err instanceof KubernetesApiError && err.status === 409) || attempt >= CONFLICT_TRIES) throw err;
        }
      }
    } catch (err) {
      const retryMs = this.#cfg.retryMs ?? 5000;
      this.#cfg.logger.warn({ ...where, err: (err as Error).message, retryMs }, 'could not publish the trust bundle to the ConfigMap; will retry');
      if (!this.#stopped) {
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#request();
        }, retryMs);
        this.#timer.unref();
      }
    }
  }
}
