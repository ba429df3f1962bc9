/**
 * @module federation/fetch
 *
 * One HTTPS GET of a peer's bundle endpoint (SPIFFE Trust Domain and Bundle, section 5),
 * authenticated per profile, returning the body text, or a `BundleRefusal` saying why not.
 *
 * Threats it stops:
 * - A man in the middle serving its own bundle: `https_spiffe` trusts only the X.509
 *   authorities of the bundle already stored for the endpoint SPIFFE ID's trust domain
 *   (never the system roots), and the certificate must be an X509-SVID (verified by
 *   spiffe/x509/verify, on top of OpenSSL's path check) whose SPIFFE ID is exactly the
 *   configured one. `https_web` trusts the system roots (plus roots an operator or a test
 *   adds explicitly) and checks the URL's host name.
 * - Being sent elsewhere: redirects are never followed (a 3xx is a refusal).
 * - Memory exhaustion by a hostile peer: the body is capped (default 1 MiB, the largest
 *   bundle spiffe/bundle/parse accepts) by Content-Length and while streaming.
 * - A peer that never answers holding a fetch (and its poll slot) forever: a connect
 *   timeout (default 10 s) and a total timeout (default 30 s).
 */
import { request } from 'node:https';
import { isIP } from 'node:net';
import { rootCertificates, type PeerCertificate } from 'node:tls';
import type { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { BundleRefusal } from './refusal.js';

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_TOTAL_TIMEOUT_MS = 30_000;

export type FetchAuth =
  | { readonly profile: 'https_web'; readonly extraRoots?: readonly Uint8Array[] }
  | {
      readonly profile: 'https_spiffe';
      readonly endpointSpiffeId: SpiffeId;
      /** The stored X.509 authorities of `endpointSpiffeId`'s trust domain. */
      readonly x509Authorities: readonly Uint8Array[];
    };

export interface FetchConfig {
  /** Whose bundle this is (for messages). */
  readonly trustDomain: TrustDomain;
  readonly url: URL;
  readonly auth: FetchAuth;
  readonly now: () => Date;
  readonly maxBodyBytes?: number;
  readonly connectTimeoutMs?: number;
  readonly totalTimeoutMs?: number;
}

export interface FetchedBundle {
  readonly body: string;
  /** https_spiffe: the endpoint's verified chain, leaf first (to check a new bundle against). */
  readonly endpointChain?: readonly Buffer[];
}

function chainOf(cert: PeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: PeerCertificate | undefined = cert;
  const seen = new Set<PeerCertificate>();
  while (c !== undefined && c.raw !== undefined && !seen.has(c) && out.length < 10) {
    seen.add(c);
    out.push(c.raw);
    const next: PeerCertificate | undefined = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
    if (next === undefined || next === c || next.raw === undefined || next.raw.equals(c.raw)) break;
    c = next;
  }
  return out;
}

const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'UNSUPPORTED_CERTIFICATE_PURPOSE',
]);

function classify(err: unknown, where: string): BundleRefusal {
  if (err instanceof BundleRefusal) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const msg = (err as Error).message;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new BundleRefusal('tls_wrong_host', `${where}: its certificate is not for this host name (${msg})`, { cause: err });
  if (TLS_UNTRUSTED.has(code)) return new BundleRefusal('tls_untrusted', `${where}: its certificate is not trusted (${code})`, { cause: err });
  return new BundleRefusal('connect_failed', `${where}: cannot connect (${code || msg})`, { cause: err });
}

/** GETs the bundle endpoint once (see the module comment). */
export function fetchBundleDocument(cfg: FetchConfig): Promise<FetchedBundle> {
  const where = `bundle endpoint ${cfg.url.href} of ${cfg.trustDomain.name}`;
  const maxBody = cfg.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const host = cfg.url.hostname.replace(/^\[(.*)\]$/, '$1');
  const auth = cfg.auth;
  let endpointChain: Buffer[] | undefined;

  if (auth.profile === 'https_spiffe' && auth.x509Authorities.length === 0) {
    const td = auth.endpointSpiffeId.trustDomain.name;
    return Promise.reject(
      new BundleRefusal('no_trust_bundle', `${where}: no bundle of ${td} is stored to authenticate ${auth.endpointSpiffeId.toString()} with; bootstrap one (federation create -trustDomainBundlePath, or bundle set)`),
    );
  }
  const ca =
    auth.profile === 'https_spiffe'
      ? pemEncodeCertificates(auth.x509Authorities)
      : auth.extraRoots !== undefined && auth.extraRoots.length > 0
        ? [...rootCertificates, pemEncodeCertificates(auth.extraRoots)]
        : undefined;

  const checkServerIdentity =
    auth.profile === 'https_spiffe'
      ? (_host: string, cert: PeerCertificate): Error | undefined => {
          const chain = chainOf(cert);
          let id: SpiffeId;
          try {
            id = verifyX509Svid(chain, { trustDomain: auth.endpointSpiffeId.trustDomain, x509Authorities: auth.x509Authorities }, { now: cfg.now() }).spiffeId;
          } catch (err) {
            return new BundleRefusal('tls_untrusted', `${where}: its certificate is not an X509-SVID of ${auth.endpointSpiffeId.trustDomain.name} that chains to the stored bundle: ${(err as Error).message}`);
          }
          if (!id.equals(auth.endpointSpiffeId)) {
            return new BundleRefusal('tls_wrong_spiffe_id', `${where}: it presented ${id.toString()}, not the configured ${auth.endpointSpiffeId.toString()}`);
          }
          endpointChain = chain;
          return undefined;
        }
      : undefined;

  return new Promise<FetchedBundle>((resolve, reject) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err: BundleRefusal | undefined, body?: string): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (err !== undefined) {
        req.destroy();
        reject(err);
      } else {
        resolve(endpointChain === undefined ? { body: body ?? '' } : { body: body ?? '', endpointChain });
      }
    };
    const req = request({
      host,
      port: cfg.url.port === '' ? 443 : Number(cfg.url.port),
      path: cfg.url.pathname,
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': 'mayfly-federation' },
      agent: false,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ...(ca !== undefined ? { ca } : {}),
      ...(checkServerIdentity !== undefined ? { checkServerIdentity } : {}),
      ...(isIP(host) === 0 ? { servername: host } : {}),
    });
    const connectMs = cfg.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const totalMs = cfg.totalTimeoutMs ?? DEFAULT_TOTAL_TIMEOUT_MS;
    const connectTimer = setTimeout(() => finish(new BundleRefusal('timeout', `${where}: no TLS connection within ${connectMs} ms`)), connectMs);
    timers.push(connectTimer, setTimeout(() => finish(new BundleRefusal('timeout', `${where}: no complete answer within ${totalMs} ms`)), totalMs));
    req.on('socket', (socket) => {
      socket.once('secureConnect', () => clearTimeout(connectTimer));
    });
    req.on('error', (err) => finish(classify(err, where)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        finish(new BundleRefusal('redirect', `${where}: it answered ${status} (redirect to ${JSON.stringify(String(res.headers.location ?? '').slice(0, 200))}); redirects are not followed: fix the bundle endpoint URL`));
        return;
      }
      if (status !== 200) {
        finish(new BundleRefusal('http_status', `${where}: it answered HTTP ${status}`));
        return;
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > maxBody) {
        finish(new BundleRefusal('body_too_large', `${where}: its body of ${declared} bytes is over the ${maxBody}-byte limit`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          finish(new BundleRefusal('body_too_large', `${where}: its body is over the ${maxBody}-byte limit`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) => finish(classify(err, where)));
      res.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
    });
    req.end();
  });
}
