/**
 * @module delegation/https-get
 *
 * One bounded HTTPS GET of a JSON document from the upstream user-token issuer (its OIDC
 * discovery document or JWKS), used by delegation/upstream-jwks.
 *
 * Threats: keys fetched over a channel an attacker can rewrite (only `https:` URLs, the
 * certificate verified against the system roots or the operator's `ca_file`, host name
 * checked, TLS ≥ 1.2); being sent elsewhere (redirects are refused, not followed); memory
 * exhaustion by a hostile or broken issuer (the body is capped by Content-Length and while
 * streaming); a hung issuer holding a refresh forever (one total timeout).
 */
import { request } from 'node:https';
import { isIP } from 'node:net';

export const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

/** Why a fetch failed (the message is for the operator's log). */
export class FetchRefusal extends Error {}

export interface HttpsGetOptions {
  /** PEM roots trusted instead of the system roots (a private CA). */
  readonly ca?: string;
  readonly maxBytes?: number;
  readonly timeoutMs?: number;
  /** Aborts the fetch (the owner stopping). */
  readonly signal?: AbortSignal;
}

/** GETs `url` and parses the body as a JSON object; throws FetchRefusal. */
export function httpsGetJson(url: URL, o: HttpsGetOptions = {}): Promise<Record<string, unknown>> {
  const where = url.href;
  if (url.protocol !== 'https:') return Promise.reject(new FetchRefusal(`${where}: only https URLs are fetched`));
  if (url.username !== '' || url.password !== '') return Promise.reject(new FetchRefusal(`${where}: a URL with userinfo is not fetched`));
  const maxBytes = o.maxBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const timeoutMs = o.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, body?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err !== undefined) {
        req.destroy();
        reject(err instanceof FetchRefusal ? err : new FetchRefusal(`${where}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err }));
        return;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(body ?? '');
      } catch {
        reject(new FetchRefusal(`${where}: the answer is not JSON`));
        return;
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) reject(new FetchRefusal(`${where}: the answer is not a JSON object`));
      else resolve(doc as Record<string, unknown>);
    };
    const req = request({
      host,
      port: url.port === '' ? 443 : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': 'mayfly-delegation' },
      agent: false,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
      ...(isIP(host) === 0 ? { servername: host } : {}),
    });
    const timer = setTimeout(() => finish(new FetchRefusal(`${where}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => finish(err));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) return finish(new FetchRefusal(`${where}: it answered ${status} (a redirect); redirects are not followed`));
      if (status !== 200) return finish(new FetchRefusal(`${where}: it answered HTTP ${status}`));
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > maxBytes) return finish(new FetchRefusal(`${where}: its body of ${declared} bytes is over the ${maxBytes}-byte limit`));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return finish(new FetchRefusal(`${where}: its body is over the ${maxBytes}-byte limit`));
        chunks.push(c);
      });
      res.on('error', (err) => finish(err));
      res.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
    });
    req.end();
  });
}
