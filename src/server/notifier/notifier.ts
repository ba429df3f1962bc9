/**
 * @module server/notifier/notifier
 *
 * The seam of SPIRE's `Notifier` plugins as Mayfly runs them: told of the trust domain's
 * bundle when the server starts and every time the served bundle changes (CA rotation,
 * taint, revoke, another server's authorities on a shared datastore), so it can publish it
 * elsewhere (`k8sbundle`: a Kubernetes ConfigMap new agents bootstrap from).
 */
import type { Bundle } from '../../spiffe/bundle/bundle.js';

/** The served bundle and its changes (ServerRunner gives MayflyServer's). */
export interface BundleSource {
  bundle(): Bundle;
  /** `listener` is called after every change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

export interface Notifier {
  /** The plugin's name, for logs. */
  readonly name: string;
  /** Publishes the current bundle, then every change, until `stop()`. Resolves once the first publish was tried; a failed one is logged and retried, never fatal. */
  start(source: BundleSource): Promise<void>;
  stop(): Promise<void>;
}
