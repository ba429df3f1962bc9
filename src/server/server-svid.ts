/**
 * @module server/server-svid
 *
 * The server's own TLS identity on the agent API: an X509-SVID for
 * `spiffe://<td>/spire/server` minted by the CA, renewed at half its life and whenever the
 * CA changes, and the trust bundle's roots for verifying client certificates. Both reach
 * grpc-js through a CertificateProvider, so a new value re-keys the endpoint without a
 * restart.
 */
import { experimental, type ServerCredentials } from '@grpc/grpc-js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import type { SpiffeId } from '../spiffe/id.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import type { ServerApiCa, ServerLogger } from './ports.js';

interface CertificateListener<T> {
  (update: T | null): void;
}

/**
 * A grpc-js CertificateProvider fed by the server: identity = the server SVID, CA = the
 * bundle roots.
 */
class SvidCertificateProvider {
  #ca: { caCertificate: Buffer } | null = null;
  #id: { certificate: Buffer; privateKey: Buffer } | null = null;
  readonly #caListeners = new Set<CertificateListener<{ caCertificate: Buffer }>>();
  readonly #idListeners = new Set<CertificateListener<{ certificate: Buffer; privateKey: Buffer }>>();

  setCa(pem: string): void {
    this.#ca = { caCertificate: Buffer.from(pem) };
    for (const l of this.#caListeners) l(this.#ca);
  }

  setIdentity(certPem: string, keyPem: string): void {
    this.#id = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
    for (const l of this.#idListeners) l(this.#id);
  }

  addCaCertificateListener(l: CertificateListener<{ caCertificate: Buffer }>): void {
    this.#caListeners.add(l);
    // Deferred: grpc-js registers its watcher only after adding the listener, so a
    // synchronous first update would be lost and the endpoint would drop every connection.
    setImmediate(() => {
      if (this.#ca && this.#caListeners.has(l)) l(this.#ca);
    });
  }

  removeCaCertificateListener(l: CertificateListener<{ caCertificate: Buffer }>): void {
    this.#caListeners.delete(l);
  }

  addIdentityCertificateListener(l: CertificateListener<{ certificate: Buffer; privateKey: Buffer }>): void {
    this.#idListeners.add(l);
    setImmediate(() => {
      if (this.#id && this.#idListeners.has(l)) l(this.#id);
    });
  }

  removeIdentityCertificateListener(l: CertificateListener<{ certificate: Buffer; privateKey: Buffer }>): void {
    this.#idListeners.delete(l);
  }
}

export interface ServerSvidConfig {
  ca: ServerApiCa;
  serverId: SpiffeId;
  /** Lifetime of each SVID (seconds). */
  ttlSeconds: number;
  /** The bundle served now (its X.509 authorities are the trusted roots). */
  bundle: () => Bundle;
  /** Told of every chain minted (its intermediates are served with agents' SVIDs). */
  noteChain: (chain: readonly Buffer[]) => void;
  logger: ServerLogger;
}

/** The SVID as PEM: the chain (leaf first) and its key. */
export interface ServerSvidPem {
  readonly certPem: string;
  readonly keyPem: string;
}

export class ServerSvid {
  readonly #cfg: ServerSvidConfig;
  readonly #provider = new SvidCertificateProvider();
  #current: ServerSvidPem | undefined;
  readonly #listeners = new Set<(id: ServerSvidPem) => void>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(cfg: ServerSvidConfig) {
    this.#cfg = cfg;
  }

  /** TLS credentials served from this SVID; a client certificate is asked for, not required (attesting agents have none yet). */
  credentials(): ServerCredentials {
    return experimental.createCertificateProviderServerCredentials(
      // grpc-js 1.14 passes these two straight through in swapped order; the provider serves both roles.
      this.#provider as unknown as experimental.CertificateProvider,
      this.#provider as unknown as experimental.CertificateProvider,
      false,
    );
  }

  /** New trusted roots (the served bundle changed). */
  setRoots(bundle: Bundle): void {
    this.#provider.setCa(pemEncodeCertificates(bundle.x509Authorities));
  }

  /** Mints a new SVID now and schedules the next at half its life. */
  async rotate(): Promise<void> {
    if (this.#stopped) return;
    const { ca, serverId, ttlSeconds } = this.#cfg;
    const key = generateKeyPair('ec-p256');
    const chain = ca.signX509Svid({ spiffeId: serverId, publicKey: key.publicKey, ttlSeconds }).certificates;
    this.#cfg.noteChain(chain);
    const notAfter = parseCertificate(chain[0] as Buffer).notAfter.getTime();
    this.setRoots(this.#cfg.bundle());
    const pem = { certPem: pemEncodeCertificates(chain), keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    this.#provider.setIdentity(pem.certPem, pem.keyPem);
    this.#current = pem;
    for (const l of this.#listeners) l(pem);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const life = notAfter - Date.now();
    this.#timer = setTimeout(() => {
      this.rotate().catch((err: unknown) => this.#cfg.logger.error({ err }, 'server SVID rotation failed'));
    }, Math.max(1000, life / 2));
    this.#timer.unref();
  }

  /** The SVID served now (undefined before the first `rotate`). */
  current(): ServerSvidPem | undefined {
    return this.#current;
  }

  /** Told of every new SVID; returns the unsubscribe. */
  onChange(listener: (id: ServerSvidPem) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
