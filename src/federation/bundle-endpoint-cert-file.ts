/**
 * @module federation/bundle-endpoint-cert-file
 *
 * The `https_web` profile's TLS identity: a certificate chain and key read from disk
 * (`serving_cert_file`), checked again every `file_sync_interval` and served anew when
 * either file changed (a renewed Web PKI certificate needs no restart).
 *
 * Threats it stops: a key file another user can read or replace, or a symlink planted in
 * place of either file (both read through src/securefs: no symlink, the key 0600 and
 * ours); a half-written or mismatched pair taking the endpoint down (a pair that does not
 * load as a TLS context is refused and the previous one kept, with a log line).
 */
import { createSecureContext } from 'node:tls';
import { readPrivateFile, readRegularFile } from '../securefs/index.js';
import { FederationError } from './federation-error.js';
import type { TlsIdentity, TlsIdentityProvider } from './bundle-endpoint-http.js';

export interface CertFileIdentityConfig {
  certFile: string;
  keyFile: string;
  /** How often the files are checked (seconds). */
  syncIntervalSeconds: number;
  onError?: (err: unknown, what: string) => void;
}

function load(certFile: string, keyFile: string): TlsIdentity {
  const cert = readRegularFile(certFile);
  if (cert === undefined) throw new FederationError('ERR_FEDERATION_INVALID', `bundle endpoint certificate ${certFile} does not exist; set serving_cert_file.cert_file_path to a PEM chain`);
  const key = readPrivateFile(keyFile);
  if (key === undefined) throw new FederationError('ERR_FEDERATION_INVALID', `bundle endpoint key ${keyFile} does not exist; set serving_cert_file.key_file_path to a PEM key (mode 600)`);
  const id = { certPem: cert.toString('utf8'), keyPem: key.toString('utf8') };
  try {
    createSecureContext({ cert: id.certPem, key: id.keyPem });
  } catch (err) {
    throw new FederationError('ERR_FEDERATION_INVALID', `bundle endpoint certificate ${certFile} and key ${keyFile} do not load as a TLS pair (${(err as Error).message}); check both are PEM and match`, { cause: err });
  }
  return id;
}

export class CertFileIdentity implements TlsIdentityProvider {
  readonly #cfg: CertFileIdentityConfig;
  #current: TlsIdentity | undefined;
  readonly #listeners = new Set<(id: TlsIdentity) => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(cfg: CertFileIdentityConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.certFile !== 'string' || typeof cfg.keyFile !== 'string') {
      throw new TypeError('CertFileIdentity needs { certFile, keyFile, syncIntervalSeconds }');
    }
    if (!(cfg.syncIntervalSeconds > 0)) throw new TypeError('syncIntervalSeconds must be positive');
    this.#cfg = cfg;
  }

  /** Loads the pair (a problem is thrown: the server must not start without it) and starts checking. */
  start(): void {
    this.#current = load(this.#cfg.certFile, this.#cfg.keyFile);
    this.#timer = setInterval(() => this.check(), this.#cfg.syncIntervalSeconds * 1000);
    this.#timer.unref();
  }

  /** Reads the files again; serves them if they changed and load (else keeps the previous pair). */
  check(): void {
    let next: TlsIdentity;
    try {
      next = load(this.#cfg.certFile, this.#cfg.keyFile);
    } catch (err) {
      this.#cfg.onError?.(err, 'reloading the bundle endpoint certificate failed; still serving the previous one');
      return;
    }
    const cur = this.#current;
    if (cur !== undefined && cur.certPem === next.certPem && cur.keyPem === next.keyPem) return;
    this.#current = next;
    for (const l of this.#listeners) l(next);
  }

  current(): TlsIdentity | undefined {
    return this.#current;
  }

  onChange(listener: (id: TlsIdentity) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
