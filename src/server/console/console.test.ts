/**
 * The web console over HTTPS on a real server (ServerRunner from server.conf): who gets in
 * (no credentials, wrong token, right token, login cookie, admin mTLS, non-admin and scoped
 * SVIDs), the security headers, every page, XSS payloads in every free-text field rendered
 * as text, filters, and paging through a large entry list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, startConsoleFixture, TD, XSS, type ConsoleFixture } from './testing.js';
import { escapeHtml } from './html.js';

const BULK = 1234;
let f: ConsoleFixture;

beforeAll(async () => {
  f = await startConsoleFixture({ bulk: BULK, name: 'console-http' });
}, 120_000);

afterAll(async () => {
  await f?.stop();
});

const PAGES = ['/', '/entries', '/inventory', '/agents', '/revocations', '/audit'];

describe('console authentication', () => {
  it('refuses every page without credentials (401 with the login form, no data)', async () => {
    for (const p of PAGES) {
      const r = await get(f, p);
      expect(r.status, p).toBe(401);
      expect(r.headers['www-authenticate']).toContain('Bearer');
      expect(r.body).toContain('action="/login"');
      expect(r.body).not.toContain('team-web');
    }
  });

  it('refuses a wrong token, a malformed header and an empty one with 401', async () => {
    expect((await get(f, '/entries', { token: f.token.slice(0, -1) + 'X' })).status).toBe(401);
    expect((await get(f, '/entries', { token: 'short' })).status).toBe(401);
    const r = await get(f, '/entries', { token: '' });
    expect(r.status).toBe(401);
  });

  it('serves every page with the right token, with the strict headers', async () => {
    for (const p of PAGES) {
      const r = await get(f, p, { token: f.token });
      expect(r.status, p).toBe(200);
      expect(r.headers['content-security-policy']).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; /);
      expect(r.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(r.headers['content-security-policy']).not.toContain('script-src');
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.body).not.toMatch(/<script/i);
    }
  });

  it('does not take the token from the query string', async () => {
    expect((await get(f, `/entries?token=${f.token}`)).status).toBe(401);
    expect((await get(f, `/login?token=${f.token}`)).headers['set-cookie']).toBeUndefined();
  });

  it('logs in by POST only: a wrong token is 401, the right one sets an HttpOnly SameSite=Strict cookie', async () => {
    const form = 'application/x-www-form-urlencoded';
    const bad = await get(f, '/login', { method: 'POST', body: 'token=nope', type: form });
    expect(bad.status).toBe(401);
    expect(bad.headers['set-cookie']).toBeUndefined();
    expect((await get(f, '/login', { method: 'POST', body: `token=${f.token}`, type: 'text/plain' })).status).toBe(415);
    expect((await get(f, '/login', { method: 'POST', body: `token=${'a'.repeat(5000)}`, type: form })).status).toBe(413);
    const ok = await get(f, '/login', { method: 'POST', body: `token=${encodeURIComponent(f.token)}`, type: form });
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/');
    const cookie = String(ok.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).not.toContain(f.token);
    const session = cookie.split(';')[0]!;
    expect((await get(f, '/entries', { cookie: session })).status).toBe(200);
    expect((await get(f, '/entries', { cookie: session.slice(0, -2) + 'zz' })).status).toBe(401);
    // The log names the logins' outcomes, never the token nor the session.
    const log = f.logLines.join('');
    expect(log).toContain('console login refused: wrong token');
    expect(log).toMatch(/"outcome":"ok"/);
    expect(log).not.toContain(f.token);
    expect(log).not.toContain(session.split('=')[1]!);
  });

  it('lets an admin SVID in over mTLS, and refuses a workload SVID and a scoped registrar with 403', async () => {
    const admin = await get(f, '/', { tls: f.admin });
    expect(admin.status).toBe(200);
    expect(admin.body).toContain(`<td id="trust-domain">${TD}</td>`);
    const wl = await get(f, '/', { tls: f.workload });
    expect(wl.status).toBe(403);
    expect(wl.body).toContain('is not an admin');
    expect(wl.body).not.toContain('team-web');
    const scoped = await get(f, '/entries', { tls: f.scoped });
    expect(scoped.status).toBe(403);
    expect(scoped.body).toContain('scoped registrar');
  });

  it('refuses writes: the console is read-only', async () => {
    expect((await get(f, '/entries', { method: 'POST', token: f.token, body: '' })).status).toBe(405);
    expect((await get(f, '/entries', { method: 'DELETE', token: f.token })).status).toBe(405);
  });
});

describe('console pages', () => {
  it('shows the trust domain, the CA authorities with state and expiry, and the ledger head', async () => {
    const r = await get(f, '/', { token: f.token });
    expect(r.body).toMatch(/<table id="authorities">.*<td>X\.509<\/td><td><code>[0-9a-f]+<\/code><\/td><td>active<\/td>/s);
    expect(r.body).toMatch(/<td>JWT<\/td><td><code>[^<]+<\/code><\/td><td>active<\/td>/);
    expect(r.body).toMatch(/seq \d+, <code>[0-9a-f]{64}<\/code>/);
    const audit = await get(f, '/audit', { token: f.token });
    expect(audit.body).toMatch(/<td id="ledger-head">seq \d+, hash <code>[0-9a-f]{64}<\/code><\/td>/);
    expect(audit.body).toMatch(/<tr class="record"><td>\d+<\/td><td>[a-z0-9.-]+<\/td><td>\d{4}-/);
  });

  it('renders an XSS payload in every free-text field as text', async () => {
    const r = await get(f, `/entries?owner=${encodeURIComponent(XSS.owner)}`, { token: f.token });
    expect(r.status).toBe(200);
    for (const v of [XSS.owner, XSS.label, XSS.purpose, XSS.hint, `unix:${XSS.selector}`]) {
      expect(r.body).toContain(escapeHtml(v));
      expect(r.body).not.toContain(v);
    }
    // The SPIFFE ID path characters the standard allows pass as they are.
    expect(r.body).toContain(`spiffe://${TD}/ns/x.s-s_/sa/payments`);
    expect(r.body).not.toMatch(/<(script|img|iframe|svg)\b/i);
    // The filter echoed back into the form is escaped too.
    expect(r.body).toContain(`name="owner" value="${escapeHtml(XSS.owner)}"`);
    const inv = await get(f, `/inventory?owner=${encodeURIComponent(XSS.owner)}`, { token: f.token });
    expect(inv.body).toContain(`<td class="owner">${escapeHtml(XSS.owner)}</td>`);
    expect(inv.body).not.toContain(XSS.owner);
    expect(inv.body).not.toMatch(/<(script|img|iframe|svg)\b/i);
  });

  it('filters entries by owner, label and selector', async () => {
    const byOwner = await get(f, '/entries?owner=team-web', { token: f.token });
    expect(byOwner.body.match(/<tr class="entry">/g)).toHaveLength(1);
    expect(byOwner.body).toContain('the shop API');
    const byLabel = await get(f, '/entries?label=env%3Dprod', { token: f.token });
    expect(byLabel.body.match(/<tr class="entry">/g)).toHaveLength(1);
    const bySel = await get(f, '/entries?selector=unix%3Auid%3A0', { token: f.token });
    expect(bySel.body).toContain('serves the shop');
    expect(bySel.body.match(/<tr class="entry">/g)).toHaveLength(1);
    const bad = await get(f, '/entries?label=novalue', { token: f.token });
    expect(bad.status).toBe(400);
    expect((await get(f, '/entries?page_size=100000', { token: f.token })).status).toBe(400);
    expect((await get(f, `/entries?owner=${encodeURIComponent('<b>')}&page_token=${encodeURIComponent('"><script>')}`, { token: f.token })).status).toBe(400);
  });

  it('pages through a large entry list: every entry once, no page larger than asked', async () => {
    const seen = new Set<string>();
    let path: string | undefined = '/entries?label=tier%3Dbulk&page_size=200';
    let pages = 0;
    while (path !== undefined) {
      const r = await get(f, path, { token: f.token });
      expect(r.status).toBe(200);
      const ids = [...r.body.matchAll(/spiffe:\/\/example\.org\/bulk\/(svc-\d+)/g)].map((m) => m[1]!);
      expect(ids.length).toBeLessThanOrEqual(200);
      for (const id of ids) {
        expect(seen.has(id)).toBe(false);
        seen.add(id);
      }
      pages++;
      const next = /<a href="([^"]+)" rel="next">/.exec(r.body);
      path = next === null ? undefined : next[1]!.replace(/&amp;/g, '&');
    }
    expect(seen.size).toBe(BULK);
    expect(pages).toBe(Math.ceil(BULK / 200));
  });

  it('pages the inventory findings and lists agents, revocations and findings by kind', async () => {
    const inv = await get(f, '/inventory?page_size=100', { token: f.token });
    expect(inv.body.match(/<tr class="finding">/g)).toHaveLength(100);
    expect(inv.body).toMatch(/rel="next"/);
    expect(inv.body).toMatch(/id="count-no_owner">[1-9]/);
    expect(inv.body).toMatch(/id="count-over_broad">[1-9]/);
    const noOwner = await get(f, '/inventory?kind=no_owner', { token: f.token });
    const rows = noOwner.body.match(/<tr class="finding">.*?<\/tr>/g) ?? [];
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.startsWith('<tr class="finding"><td>no_owner</td>'))).toBe(true);
    expect(rows.some((r) => r.includes('spiffe://example.org/web/frontend'))).toBe(true);
    const rev = await get(f, '/revocations', { token: f.token });
    expect(rev.body).toMatch(/<tr class="revocation"><td><code>[0-9a-f]+<\/code><\/td><td><code>spiffe:\/\/example\.org\/web\/api<\/code><\/td><td><code><\/code><\/td><td>keyCompromise<\/td>/);
    const agents = await get(f, '/agents', { token: f.token });
    expect(agents.body).toContain('<table id="agents">');
  });
});
