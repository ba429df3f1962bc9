/**
 * The web console in a real browser (issue 11 item 7): headless Chromium (Debian's
 * `chromium`, installed by .ci/run when missing) driven over the DevTools protocol on a pipe
 * (test/console/cdp.ts) loads every page of a running server's console, the test reads the
 * rendered DOM, and each page is screenshotted into the test's artefact directory (a
 * `mayfly-console-browser-*` temp dir, removed at the end; set MAYFLY_CONSOLE_SCREENSHOTS to
 * a directory to keep copies, which is how docs/console.png was made).
 *
 * Why CDP and not `--dump-dom`: the bearer token travels in a header, which no command-line
 * flag sets, and the console never takes the token from a URL; CDP sets the header, and it
 * also lets the test log in through the form like a person (POST /login, cookie).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsoleFixture, TD, XSS, type ConsoleFixture } from '../../src/server/console/testing.js';
import { Cdp, chromiumBinary } from './cdp.js';

const binary = chromiumBinary();
if (binary === undefined) throw new Error('chromium is not installed: apt-get install -y chromium (.ci/run installs it)');

const artefacts = mkdtempSync(join(tmpdir(), 'mayfly-console-browser-'));
let f: ConsoleFixture;
let cdp: Cdp;
const shots: string[] = [];

beforeAll(async () => {
  f = await startConsoleFixture({ bulk: 120, name: 'console-browser' });
  cdp = Cdp.launch(binary, join(artefacts, 'profile'));
}, 120_000);

afterAll(async () => {
  await cdp?.close();
  await f?.stop();
  const keep = process.env.MAYFLY_CONSOLE_SCREENSHOTS;
  if (keep !== undefined && keep !== '') {
    mkdirSync(keep, { recursive: true });
    for (const s of shots) copyFileSync(join(artefacts, s), join(keep, s));
  }
  rmSync(artefacts, { recursive: true, force: true });
});

const url = (path: string): string => `https://127.0.0.1:${f.port}${path}`;

async function shoot(page: { screenshot(): Promise<Buffer> }, name: string): Promise<void> {
  const png = await page.screenshot();
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  writeFileSync(join(artefacts, name), png);
  shots.push(name);
}

/** Elements the payloads would have injected, and whether any of their scripts ran. */
const INJECTED = `({ elements: document.querySelectorAll('script, img, iframe, svg, object, embed').length, owned: typeof window.__owned })`;

describe('the console in headless Chromium', () => {
  it('shows the login form, not data, to a browser without credentials', async () => {
    const page = await cdp.newPage();
    expect(await page.goto(url('/entries'))).toBe(401);
    const dom = await page.dom();
    expect(dom).toContain('action="/login"');
    expect(dom).not.toContain('team-web');
    const wrong = await cdp.newPage({ Authorization: 'Bearer not-the-token-at-all-not-the-token' });
    expect(await wrong.goto(url('/'))).toBe(401);
  });

  it('renders every page with the token; the overview names the trust domain and the active authorities', async () => {
    const page = await cdp.newPage({ Authorization: `Bearer ${f.token}` });
    for (const [path, name, marker] of [
      ['/', 'overview.png', 'CA authorities'],
      ['/entries?page_size=12', 'entries.png', 'SPIFFE ID'],
      ['/inventory?page_size=25', 'inventory.png', 'Suggested action'],
      ['/agents', 'agents.png', 'Node selectors'],
      ['/revocations', 'revocations.png', 'keyCompromise'],
      ['/audit', 'audit.png', 'Latest records'],
    ] as const) {
      expect(await page.goto(url(path)), path).toBe(200);
      expect(await page.evaluate<string>('document.body.innerText'), path).toContain(marker);
      await shoot(page, name);
    }
    await page.goto(url('/'));
    expect(await page.evaluate<string>(`document.getElementById('trust-domain').textContent`)).toBe(TD);
    const states = await page.evaluate<string[]>(`[...document.querySelectorAll('#authorities tr')].slice(1).map((r) => r.cells[0].textContent + ' ' + r.cells[2].textContent)`);
    expect(states).toEqual(expect.arrayContaining(['X.509 active', 'JWT active']));
  });

  it('shows XSS payloads as text: no injected element, no script ran', async () => {
    const page = await cdp.newPage({ Authorization: `Bearer ${f.token}` });
    expect(await page.goto(url(`/entries?owner=${encodeURIComponent(XSS.owner)}`))).toBe(200);
    await shoot(page, 'entries-xss.png');
    const cells = await page.evaluate<Record<string, string>>(
      `(() => { const r = document.querySelector('#entries tr.entry'); return { owner: r.querySelector('.owner').textContent, labels: r.querySelector('.labels').textContent, purpose: r.querySelector('.purpose').textContent, hint: r.querySelector('.hint').textContent, selectors: r.querySelector('.selectors').textContent, id: r.querySelector('.spiffe-id').textContent }; })()`,
    );
    expect(cells).toEqual({
      owner: XSS.owner,
      labels: `env=${XSS.label}team/name=payments`,
      purpose: XSS.purpose,
      hint: XSS.hint,
      selectors: `unix:${XSS.selector}`,
      id: `spiffe://${TD}/ns/x.s-s_/sa/payments`,
    });
    expect(await page.evaluate(INJECTED)).toEqual({ elements: 0, owned: 'undefined' });
    // The filter value echoed into the form is an attribute value, not markup.
    expect(await page.evaluate<string>(`document.querySelector('input[name=owner]').value`)).toBe(XSS.owner);
    expect(await page.goto(url(`/inventory?owner=${encodeURIComponent(XSS.owner)}`))).toBe(200);
    expect(await page.evaluate<string[]>(`[...document.querySelectorAll('#findings tr.finding .owner')].map((c) => c.textContent)`)).toContain(XSS.owner);
    expect(await page.evaluate(INJECTED)).toEqual({ elements: 0, owned: 'undefined' });
  });

  it('pages through the entries by following "next page" links', async () => {
    const page = await cdp.newPage({ Authorization: `Bearer ${f.token}` });
    await page.goto(url('/entries?label=tier%3Dbulk&page_size=50'));
    const seen = new Set<string>();
    for (;;) {
      const ids = await page.evaluate<string[]>(`[...document.querySelectorAll('#entries tr.entry .spiffe-id')].map((c) => c.textContent)`);
      expect(ids.length).toBeLessThanOrEqual(50);
      for (const id of ids) seen.add(id);
      const hasNext = await page.evaluate<boolean>(`document.querySelector('a[rel=next]') !== null`);
      if (!hasNext) break;
      const loaded = page.nextLoad();
      await page.evaluate(`document.querySelector('a[rel=next]').click()`);
      await loaded;
    }
    expect(seen.size).toBe(120);
  });

  it('logs in through the form: POST /login sets the cookie and the pages follow', async () => {
    const page = await cdp.newPage();
    expect(await page.goto(url('/login'))).toBe(200);
    const loaded = page.nextLoad();
    await page.evaluate(`(() => { document.querySelector('input[name=token]').value = ${JSON.stringify(f.token)}; document.querySelector('form').submit(); })()`);
    await loaded;
    expect(await page.evaluate<string>('location.pathname')).toBe('/');
    expect(await page.evaluate<string>(`document.getElementById('trust-domain').textContent`)).toBe(TD);
    // HttpOnly: the page's script cannot read the session cookie.
    expect(await page.evaluate<string>('document.cookie')).toBe('');
    expect(await page.goto(url('/entries?owner=team-web'))).toBe(200);
    expect(await page.evaluate<string>('document.body.innerText')).toContain('the shop API');
  });
});
