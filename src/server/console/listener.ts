/**
 * @module server/console/listener
 *
 * The read-only web console's HTTPS listener (server.conf `server.console`, off by default,
 * 127.0.0.1:8443 unless configured). Its certificate is an X509-SVID the server mints for
 * itself (as the delegation endpoint's); it asks for, but does not require, a client
 * certificate, so an admin SVID authenticates by mTLS and a browser without one logs in
 * with the token (server/console/auth). GET pages only, plus POST /login; everything else
 * is 404/405.
 *
 * Threats it stops:
 * - Script injection and framing: every response carries a CSP allowing nothing but the
 *   one inline stylesheet (by hash) and same-origin form posts (no script at all, no
 *   frames, no base URI), X-Frame-Options DENY, nosniff and no referrer; every value on a
 *   page is escaped (server/console/html).
 * - Secrets kept by caches: Cache-Control no-store on every response.
 * - The token leaking into logs: the login body is read (at most 4 KiB) and never logged;
 *   log lines name the outcome and the remote address only.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isMayflyError } from '../../spiffe/errors.js';
import type { Bundle } from '../../spiffe/bundle/bundle.js';
import type { SpiffeId } from '../../spiffe/id.js';
import type { ServerApiCa } from '../ports.js';
import { startEndpointSvid } from '../publishers.js';
import { ConsoleAuth, type ConsoleAdmins } from './auth.js';
import type { ConsoleSettings } from './config.js';
import { html, type SafeHtml } from './html.js';
import { agentsPage, auditPage, BadRequest, entriesPage, inventoryPage, layout, overviewPage, revocationsPage, STYLESHEET } from './pages.js';
import type { ConsoleSource } from './source.js';

export const CONSOLE_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLESHEET).digest('base64')}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const MAX_LOGIN_BODY = 4096;

export interface ConsoleServiceConfig {
  settings: ConsoleSettings;
  source: ConsoleSource;
  admins: ConsoleAdmins;
  /** The served trust bundle: client SVIDs are verified against it. */
  trustBundle: { bundle(): Bundle };
  /** Mints the listener's own X509-SVID. */
  ca: ServerApiCa;
  serverId: SpiffeId;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  now?: () => Date;
}

export interface ConsoleService {
  readonly port: number;
  stop(): Promise<void>;
}

type Page = (q: URLSearchParams) => Promise<SafeHtml>;

function send(res: ServerResponse, status: number, body: SafeHtml | string, extra: Record<string, string> = {}): void {
  const text = body.toString();
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), ...extra });
  res.end(text);
}

function loginForm(message: string): SafeHtml {
  return layout(
    'Log in',
    html`<p class="bad" id="reason">${message}</p><form method="post" action="/login"><label>Console token <input type="password" name="token" autocomplete="current-password"></label> <button type="submit">Log in</button></form>
<p>Or present an admin X509-SVID as a client certificate.</p>`,
  );
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > MAX_LOGIN_BODY) {
        // Answered at once (connection: close); the rest is read and dropped, bounded by requestTimeout.
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/** The request handler (exported for tests that drive it without TLS). */
export function consoleHandler(cfg: Pick<ConsoleServiceConfig, 'source' | 'logger'>, auth: ConsoleAuth): (req: IncomingMessage, res: ServerResponse) => void {
  const { source: src, logger } = cfg;
  const pages: ReadonlyMap<string, Page> = new Map<string, Page>([
    ['/', () => overviewPage(src)],
    ['/entries', (q) => entriesPage(src, q)],
    ['/inventory', (q) => inventoryPage(src, q)],
    ['/agents', (q) => agentsPage(src, q)],
    ['/revocations', (q) => revocationsPage(src, q)],
    ['/audit', () => auditPage(src)],
  ]);
  const remote = (req: IncomingMessage): string => req.socket.remoteAddress ?? '?';
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://console.invalid');
    if (url.pathname === '/login') {
      if (req.method === 'GET') return send(res, 200, loginForm('Log in with the console token.'));
      if (req.method !== 'POST') return send(res, 405, loginForm('GET or POST /login'), { allow: 'GET, POST' });
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/x-www-form-urlencoded') return send(res, 415, loginForm('the login form posts application/x-www-form-urlencoded'));
      const body = await readBody(req);
      if (body === undefined) return send(res, 413, loginForm('login request too large'), { connection: 'close' });
      const token = new URLSearchParams(body).get('token') ?? '';
      if (!auth.checkToken(token)) {
        logger.warn({ remote: remote(req), outcome: 'refused' }, 'console login refused: wrong token');
        return send(res, 401, loginForm('wrong token'));
      }
      logger.info({ remote: remote(req), outcome: 'ok' }, 'console login');
      return send(res, 303, html`<p><a href="/">continue</a></p>`, { location: '/', 'set-cookie': auth.sessionCookie(auth.openSession()) });
    }
    const page = pages.get(url.pathname);
    if (page === undefined) return send(res, 404, layout('Not found', html`<p>No such page.</p>`));
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, layout('Method not allowed', html`<p>The console is read-only.</p>`), { allow: 'GET, HEAD' });
    const who = await auth.authenticate(req);
    if (!who.ok) {
      if (who.status === 401) return send(res, 401, loginForm(who.reason), { 'www-authenticate': 'Bearer realm="mayfly-console"' });
      logger.warn({ remote: remote(req), reason: who.reason }, 'console access denied');
      return send(res, 403, layout('Forbidden', html`<p class="bad" id="reason">${who.reason}</p>`));
    }
    let out: SafeHtml;
    try {
      out = await page(url.searchParams);
    } catch (err) {
      if (err instanceof BadRequest || (isMayflyError(err) && /INVALID|PAGE_TOKEN/.test(err.code))) {
        return send(res, 400, layout('Bad request', html`<p class="bad" id="reason">${(err as Error).message}</p>`));
      }
      throw err;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' }).end();
      return;
    }
    send(res, 200, out);
  };
  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err, path: (req.url ?? '').split('?')[0] }, 'console page failed');
      if (!res.headersSent) send(res, 500, layout('Error', html`<p>The page failed; see the server log.</p>`));
      else res.destroy();
    });
  };
}

/** Starts the console listener; on failure stops what it started and throws. */
export async function startConsole(cfg: ConsoleServiceConfig): Promise<ConsoleService> {
  const { settings, logger } = cfg;
  const now = cfg.now ?? (() => new Date());
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const auth = new ConsoleAuth({
      bundle: () => cfg.trustBundle.bundle(),
      admins: cfg.admins,
      ...(settings.tokenSha256 !== undefined ? { tokenSha256: settings.tokenSha256 } : {}),
      sessionTtlSeconds: settings.sessionTtlSeconds,
      now,
    });
    const svid = await startEndpointSvid({ ca: cfg.ca, serverId: cfg.serverId, bundle: () => cfg.trustBundle.bundle(), logger: logger as Logger, what: 'web console', stops });
    const first = svid.current();
    if (first === undefined) throw new Error('the web console has no SVID');
    const server: Server = createServer(
      { cert: first.certPem, key: first.keyPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 },
      consoleHandler(cfg, auth),
    );
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 64;
    server.on('tlsClientError', () => undefined);
    stops.push(svid.onChange((id) => server.setSecureContext({ cert: id.certPem, key: id.keyPem })));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(settings.bindPort, settings.bindAddress, () => {
        server.off('error', reject);
        resolve();
      });
    });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const addr = server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : settings.bindPort;
    logger.info({ address: settings.bindAddress, port, token: settings.tokenSource ?? 'none (admin mTLS only)' }, 'web console listening');
    if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(settings.bindAddress)) {
      logger.warn({ address: settings.bindAddress }, 'the web console listens beyond this host: it shows every entry to whoever holds the token or an admin SVID');
    }
    return { port, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
