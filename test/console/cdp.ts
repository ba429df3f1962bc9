/**
 * A small Chrome DevTools Protocol client over `--remote-debugging-pipe` (the browser reads
 * NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4), enough to
 * drive headless Chromium through the web console: isolated browser contexts, extra request
 * headers (the bearer token: a header cannot be set by command-line flags), navigation,
 * evaluation in the page and screenshots. No port is opened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

/** The Chromium binary (Debian's `chromium` package), or undefined. */
export function chromiumBinary(): string | undefined {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // next
    }
  }
  return undefined;
}

interface Pending {
  resolve(v: Record<string, unknown>): void;
  reject(e: Error): void;
  method: string;
}

type Listener = (params: Record<string, unknown>, sessionId: string | undefined) => void;

export class Cdp {
  readonly #proc: ChildProcess;
  readonly #out: Writable;
  #buf = '';
  #id = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Map<string, Set<Listener>>();
  #exited: Error | undefined;

  private constructor(proc: ChildProcess) {
    this.#proc = proc;
    const stdio = proc.stdio as unknown as [unknown, unknown, Readable, Writable, Readable];
    this.#out = stdio[3];
    stdio[4].setEncoding('utf8');
    stdio[4].on('data', (d: string) => this.#onData(d));
    let stderr = '';
    stdio[2].setEncoding('utf8');
    stdio[2].on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    proc.on('exit', (code, signal) => {
      this.#exited = new Error(`chromium exited (${code ?? signal}): ${stderr.slice(-2000)}`);
      for (const p of this.#pending.values()) p.reject(this.#exited);
      this.#pending.clear();
    });
  }

  /** Starts headless Chromium with its profile in `userDataDir`. */
  static launch(binary: string, userDataDir: string, windowSize = '1280,900'): Cdp {
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--disable-background-networking',
      '--disable-sync',
      '--metrics-recording-only',
      '--hide-scrollbars',
      // The console's certificate is the server's X509-SVID: no DNS name, a root the browser does not know.
      '--ignore-certificate-errors',
      '--remote-debugging-pipe',
      `--user-data-dir=${userDataDir}`,
      `--window-size=${windowSize}`,
      'about:blank',
    ];
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    return new Cdp(proc);
  }

  #onData(d: string): void {
    this.#buf += d;
    let nul: number;
    while ((nul = this.#buf.indexOf('\0')) >= 0) {
      const text = this.#buf.slice(0, nul);
      this.#buf = this.#buf.slice(nul + 1);
      const msg = JSON.parse(text) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: Record<string, unknown>; sessionId?: string };
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (p === undefined) continue;
        if (msg.error !== undefined) p.reject(new Error(`${p.method}: ${msg.error.message}`));
        else p.resolve(msg.result ?? {});
      } else if (msg.method !== undefined) {
        for (const l of this.#listeners.get(msg.method) ?? []) l(msg.params ?? {}, msg.sessionId);
      }
    }
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<T> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: Record<string, unknown>) => void, reject, method });
      this.#out.write(JSON.stringify({ id, method, params, ...(sessionId !== undefined ? { sessionId } : {}) }) + '\0');
    });
  }

  /** Resolves with the first `method` event of `sessionId` after this call. */
  once(method: string, sessionId: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const set = this.#listeners.get(method) ?? new Set<Listener>();
      this.#listeners.set(method, set);
      const timer = setTimeout(() => {
        set.delete(l);
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const l: Listener = (params, sid) => {
        if (sid !== sessionId) return;
        set.delete(l);
        clearTimeout(timer);
        resolve(params);
      };
      set.add(l);
    });
  }

  /** A page in a fresh browser context (its own cookies), with `headers` on every request. */
  async newPage(headers: Record<string, string> = {}): Promise<CdpPage> {
    const { browserContextId } = await this.send<{ browserContextId: string }>('Target.createBrowserContext', { disposeOnDetach: true });
    const { targetId } = await this.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank', browserContextId });
    const { sessionId } = await this.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    await this.send('Page.enable', {}, sessionId);
    await this.send('Network.enable', {}, sessionId);
    if (Object.keys(headers).length > 0) await this.send('Network.setExtraHTTPHeaders', { headers }, sessionId);
    return new CdpPage(this, sessionId);
  }

  async close(): Promise<void> {
    if (this.#exited !== undefined) return;
    const exited = new Promise<void>((resolve) => this.#proc.once('exit', () => resolve()));
    this.send('Browser.close').catch(() => undefined);
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export class CdpPage {
  constructor(
    readonly cdp: Cdp,
    readonly sessionId: string,
  ) {}

  /** Navigates and waits for the load event; returns the main document's HTTP status. */
  async goto(url: string): Promise<number> {
    let status = 0;
    const response = this.cdp.once('Network.responseReceived', this.sessionId).then((p) => {
      status = (p.response as { status: number }).status;
    });
    const loaded = this.cdp.once('Page.loadEventFired', this.sessionId);
    const nav = await this.cdp.send<{ errorText?: string }>('Page.navigate', { url }, this.sessionId);
    if (nav.errorText !== undefined) throw new Error(`navigating to ${url}: ${nav.errorText}`);
    await loaded;
    await response;
    return status;
  }

  /** Waits for the next load (after a form submission or a click). */
  nextLoad(): Promise<Record<string, unknown>> {
    return this.cdp.once('Page.loadEventFired', this.sessionId);
  }

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.cdp.send<{ result: { value?: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression, returnByValue: true }, this.sessionId);
    if (r.exceptionDetails !== undefined) throw new Error(`evaluating ${expression}: ${r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** The rendered DOM, serialised. */
  dom(): Promise<string> {
    return this.evaluate<string>('document.documentElement.outerHTML');
  }

  async screenshot(): Promise<Buffer> {
    const { data } = await this.cdp.send<{ data: string }>('Page.captureScreenshot', { format: 'png', captureBeyondViewport: false }, this.sessionId);
    return Buffer.from(data, 'base64');
  }
}
