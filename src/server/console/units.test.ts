/**
 * The console's pieces alone: the one escaping function and the template helper, the
 * `server.console` block (token file rules, hash form, defaults), and the authenticator's
 * token, session and certificate decisions with an injected clock.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../config/hcl.js';
import { Problems } from '../../config/problems.js';
import { resolveServerConfig } from '../config.js';
import { ConsoleAuth, SESSION_COOKIE } from './auth.js';
import { readConsoleBlock, sha256 } from './config.js';
import { escapeHtml, html } from './html.js';
import { Bundle } from '../../spiffe/bundle/bundle.js';
import { TrustDomain } from '../../spiffe/id.js';

const root = mkdtempSync(join(tmpdir(), 'mayfly-console-units-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('escapeHtml and html', () => {
  it('escapes the five characters, in content and in attributes', () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
    const label = '<script>alert(1)</script>';
    const out = html`<td title="${label}">${label}</td>`.toString();
    expect(out).toBe('<td title="&lt;script&gt;alert(1)&lt;/script&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</td>');
  });

  it('passes its own markup and arrays of it, and escapes strings in arrays', () => {
    const rows = ['<b>', 'ok'].map((v) => html`<li>${v}</li>`);
    expect(html`<ul>${rows}</ul>`.toString()).toBe('<ul><li>&lt;b&gt;</li><li>ok</li></ul>');
    expect(html`${['<i>', 1, undefined, null, false]}`.toString()).toBe('&lt;i&gt;1');
  });

  it('cannot be handed markup as a string: a caller-made object with toString is escaped', () => {
    const fakeSafe = { toString: () => '<script>' } as unknown as string;
    expect(html`${fakeSafe}`.toString()).toBe('&lt;script&gt;');
  });
});

function block(text: string): { settings: ReturnType<typeof readConsoleBlock>; problems: string[] } {
  const p = new Problems();
  const tree = parseConfigText(text);
  const settings = readConsoleBlock((tree.server ?? {}) as never, p);
  return { settings, problems: p.list };
}

describe('server.console', () => {
  const good = join(root, 'good.token');
  writeFileSync(good, 'A'.repeat(40) + '\n', { mode: 0o600 });

  it('is off without the block or with enabled = false, and defaults to 127.0.0.1:8443', () => {
    expect(block('server {}').settings).toBeUndefined();
    expect(block('server { console { enabled = false } }').settings).toBeUndefined();
    const s = block('server { console { } }').settings!;
    expect(s).toMatchObject({ bindAddress: '127.0.0.1', bindPort: 8443, sessionTtlSeconds: 8 * 3600 });
    expect(s.tokenSha256).toBeUndefined();
  });

  it('reads the token from a 0600 file (trailing newline trimmed), keeping only its hash', () => {
    const s = block(`server { console { token_file = "${good}" } }`).settings!;
    expect(s.tokenSha256!.equals(sha256('A'.repeat(40)))).toBe(true);
    expect(JSON.stringify(s)).not.toContain('A'.repeat(40));
  });

  it('refuses a token file others can read, a short token, a token with spaces, both forms, a bad hash and unknown keys', () => {
    const open = join(root, 'open.token');
    writeFileSync(open, 'B'.repeat(40));
    chmodSync(open, 0o644);
    expect(block(`server { console { token_file = "${open}" } }`).problems.join()).toMatch(/readable or writable by group or others/);
    const short = join(root, 'short.token');
    writeFileSync(short, 'tooshort', { mode: 0o600 });
    expect(block(`server { console { token_file = "${short}" } }`).problems.join()).toMatch(/at least 32/);
    const spaced = join(root, 'spaced.token');
    writeFileSync(spaced, 'C'.repeat(20) + ' ' + 'C'.repeat(20), { mode: 0o600 });
    expect(block(`server { console { token_file = "${spaced}" } }`).problems.join()).toMatch(/no spaces/);
    expect(block(`server { console { token_file = "${join(root, 'missing')}" } }`).problems.join()).toMatch(/cannot read/);
    expect(block(`server { console { token_file = "${good}" token_sha256 = "${'a'.repeat(64)}" } }`).problems.join()).toMatch(/not both/);
    expect(block('server { console { token_sha256 = "abc" } }').problems.join()).toMatch(/64 hex/);
    expect(block('server { console { token = "x" } }').problems.join()).toMatch(/token/);
    expect(() => resolveServerConfig(parseConfigText('server { trust_domain = "example.org" console { bind_port = "99999" } }'), { dataDir: join(root, 'd') })).toThrow(/bind_port/);
  });

  it('takes the hash form as given', () => {
    const hex = sha256('the-token').toString('hex');
    expect(block(`server { console { token_sha256 = "${hex}" } }`).settings!.tokenSha256!.toString('hex')).toBe(hex);
  });
});

describe('ConsoleAuth', () => {
  let t = 1_800_000_000_000;
  const token = 'T'.repeat(40);
  const auth = new ConsoleAuth({
    bundle: () => new Bundle({ trustDomain: TrustDomain.parse('example.org') }),
    admins: { isAdmin: async () => true, isScoped: () => false },
    tokenSha256: sha256(token),
    sessionTtlSeconds: 60,
    now: () => new Date(t),
  });
  const req = (headers: Record<string, string>): IncomingMessage => ({ headers, socket: {} }) as unknown as IncomingMessage;

  it('takes the right bearer token only', async () => {
    expect(auth.checkToken(token)).toBe(true);
    expect(auth.checkToken(token + 'x')).toBe(false);
    expect(auth.checkToken('')).toBe(false);
    expect(await auth.authenticate(req({ authorization: `Bearer ${token}` }))).toEqual({ ok: true, caller: { kind: 'token' } });
    expect(await auth.authenticate(req({ authorization: `Bearer ${token.toLowerCase()}` }))).toMatchObject({ ok: false, status: 401 });
    expect(await auth.authenticate(req({ authorization: `Basic ${token}` }))).toMatchObject({ ok: false, status: 401 });
    expect(await auth.authenticate(req({}))).toMatchObject({ ok: false, status: 401 });
  });

  it('a wrong bearer token is not rescued by a good session cookie', async () => {
    const sid = auth.openSession();
    expect(await auth.authenticate(req({ authorization: 'Bearer nope', cookie: `${SESSION_COOKIE}=${sid}` }))).toMatchObject({ ok: false, status: 401 });
  });

  it('keeps a session until its TTL, then asks to log in again', async () => {
    const sid = auth.openSession();
    expect(auth.sessionCookie(sid)).toMatch(/HttpOnly; Secure; SameSite=Strict$/);
    expect(await auth.authenticate(req({ cookie: `other=1; ${SESSION_COOKIE}=${sid}` }))).toEqual({ ok: true, caller: { kind: 'session' } });
    t += 61_000;
    expect(await auth.authenticate(req({ cookie: `${SESSION_COOKIE}=${sid}` }))).toMatchObject({ ok: false, status: 401, reason: expect.stringMatching(/expired/) });
  });

  it('without a configured token no token works', () => {
    const none = new ConsoleAuth({ bundle: () => new Bundle({ trustDomain: TrustDomain.parse('example.org') }), admins: { isAdmin: async () => true, isScoped: () => false }, sessionTtlSeconds: 60, now: () => new Date() });
    expect(none.checkToken('')).toBe(false);
    expect(none.checkToken(token)).toBe(false);
  });
});
