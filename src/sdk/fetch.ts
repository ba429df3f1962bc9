/**
 * @module sdk/fetch
 *
 * SPIFFE mutual TLS for `fetch`: an `undici` Agent (dispatcher) whose every connection
 * presents the source's current SVID and verifies the server with sdk/tls's checks.
 *
 * Threats this stops:
 * - A server with a chain from another trust domain, an expired or malformed SVID, or an
 *   unauthorised SPIFFE ID: `checkServerIdentity` runs `verifyPeer`, so the request fails
 *   at the handshake, before anything is sent.
 * - Pooled connections crossing identities: an Agent pools connections by origin only. Each
 *   `createSpiffeDispatcher` call makes its own Agent, so a pool holds connections of one
 *   (client SVID source, server authorizer) pair; never share a dispatcher between them.
 * - Presenting a rotated-out SVID: the connector reads the source's secure context for every
 *   new connection (undici's own `connect` options object would be read once, at
 *   construction). TLS session resumption is off (`maxCachedSessions: 0`).
 * - Plaintext by mistake: an `http:` origin is refused, not fetched without TLS.
 */
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
import { spiffeConnectOptions, type SpiffeTlsOptions, type X509SvidSourceLike } from './tls.js';

/** Agent options the caller may set; TLS and the connector belong to the SDK. */
export type SpiffeDispatcherOptions = Omit<Agent.Options, 'connect' | 'factory'>;

/**
 * An `undici` Agent for `fetch(url, { dispatcher })` (undici's `fetch`; see `createSpiffeFetch`)
 * doing SPIFFE mTLS with `source` and `opts.authorize`. Close it with `close()`.
 */
export function createSpiffeDispatcher(source: X509SvidSourceLike, opts: SpiffeTlsOptions, agentOptions: SpiffeDispatcherOptions = {}): Agent {
  const base = spiffeConnectOptions(source, opts);
  const connect: buildConnector.connector = (options, callback) => {
    if (options.protocol !== 'https:') {
      callback(new TypeError(`a SPIFFE dispatcher only connects to https: origins, not ${options.protocol}//${options.hostname}`), null);
      return;
    }
    let fresh: buildConnector.BuildOptions;
    try {
      fresh = { ...base, maxCachedSessions: 0, allowH2: agentOptions.allowH2 ?? false }; // reads the current secureContext
    } catch (err) {
      callback(err as Error, null);
      return;
    }
    buildConnector(fresh)(options, callback);
  };
  return new Agent({ ...agentOptions, connect });
}

/** `fetch` bound to a SPIFFE dispatcher of its own, and a `close()` for that dispatcher. */
export interface SpiffeFetch {
  fetch: (input: Parameters<typeof undiciFetch>[0], init?: Omit<NonNullable<Parameters<typeof undiciFetch>[1]>, 'dispatcher'>) => ReturnType<typeof undiciFetch>;
  dispatcher: Agent;
  close(): Promise<void>;
}

/** undici's `fetch` over `createSpiffeDispatcher(source, opts, agentOptions)`. */
export function createSpiffeFetch(source: X509SvidSourceLike, opts: SpiffeTlsOptions, agentOptions: SpiffeDispatcherOptions = {}): SpiffeFetch {
  const dispatcher = createSpiffeDispatcher(source, opts, agentOptions);
  return {
    fetch: (input, init) => undiciFetch(input, { ...init, dispatcher }),
    dispatcher,
    close: () => dispatcher.close(),
  };
}
