/**
 * @module server/console/testing
 *
 * Test support for the web console: a real server (ServerRunner from server.conf text) with
 * `server.console` on a free port and a token file, seeded over the admin socket with
 * entries that carry an XSS payload in every free-text field, an admin SVID and a workload
 * (non-admin) SVID for mTLS, one revoked SVID, and `bulk` filler entries for paging.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { parseConfigText } from '../../config/hcl.js';
import { generateKeyPair } from '../../spiffe/keys.js';
import { createCsr } from '../../spiffe/x509/csr.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../../spiffe/x509/pem.js';
import { adminSocketClients, unaryCall } from '../client.js';
import { resolveServerConfig } from '../config.js';
import type { WireX509Svid } from '../messages.js';
import { createServerLogger } from '../observability.js';
import { ServerRunner } from '../runner.js';

export const TD = 'example.org';
export const XSS = {
  owner: '<script>window.__owned=1</script>team-xss',
  label: '<script>alert("label")</script>',
  purpose: '"><img src=x onerror="window.__owned=2">',
  hint: "<iframe srcdoc='<b>x</b>'></iframe>",
  selector: 'path:/bin/<svg onload=alert(3)>',
} as const;

export interface TlsIdentity {
  certPem: string;
  keyPem: string;
}

export interface ConsoleFixture {
  readonly root: string;
  readonly port: number;
  readonly token: string;
  readonly caPem: string;
  readonly admin: TlsIdentity;
  readonly workload: TlsIdentity;
  /** A scoped registrar's admin SVID (server.conf registrars). */
  readonly scoped: TlsIdentity;
  readonly runner: ServerRunner;
  /** Every log line the server wrote (level info and up). */
  readonly logLines: readonly string[];
  stop(): Promise<void>;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request to the console (the server's SVID is pinned to the trust domain's roots; it has no DNS name). */
export function get(f: Pick<ConsoleFixture, 'port' | 'caPem'>, path: string, opts: { token?: string; tls?: TlsIdentity; cookie?: string; method?: string; body?: string; type?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookie !== undefined) headers.cookie = opts.cookie;
  if (opts.type !== undefined) headers['content-type'] = opts.type;
  const o: RequestOptions = {
    host: '127.0.0.1',
    port: f.port,
    path,
    method: opts.method ?? 'GET',
    headers,
    ca: f.caPem,
    checkServerIdentity: () => undefined,
    agent: false,
    ...(opts.tls !== undefined ? { cert: opts.tls.certPem, key: opts.tls.keyPem } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = request(o, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const pemKey = (k: KeyObject): string => k.export({ type: 'pkcs8', format: 'pem' }).toString();

/** Starts the server with the console and seeds it (see module doc). */
export async function startConsoleFixture(opts: { bulk?: number; name?: string } = {}): Promise<ConsoleFixture> {
  const root = mkdtempSync(join(tmpdir(), `mayfly-${opts.name ?? 'console'}-`));
  let runner: ServerRunner | undefined;
  const local = { close: (): void => undefined } as { close(): void };
  try {
    const token = 'tok-' + 'k3'.repeat(20);
    const tokenFile = join(root, 'console.token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const conf = `server {
  trust_domain = "${TD}"
  console {
    bind_address = "127.0.0.1"
    bind_port    = "0"
    token_file   = "${tokenFile}"
  }
  registrars {
    registrar "spiffe://${TD}/ci/scoped" {
      spiffe_id_prefixes = ["spiffe://${TD}/scoped/"]
      parent_ids         = ["spiffe://${TD}/nodes/scoped"]
      owners             = ["team-scoped"]
    }
  }
}`;
    const settings = resolveServerConfig(parseConfigText(conf), { dataDir: join(root, 'server'), socketPath: join(root, 'private', 'api.sock'), bindPort: 0 });
    const logLines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString('utf8'));
        done();
      },
    });
    runner = new ServerRunner({ settings, logger: createServerLogger('info', sink), drainMs: 200 });
    await runner.start();
    const api = adminSocketClients(join(root, 'private', 'api.sock'));
    local.close = () => api.close();
    const node = `spiffe://${TD}/spire/agent/join_token/node-1`;
    const entries: object[] = [
      { spiffe_id: `spiffe://${TD}/ops/admin`, parent_id: node, selectors: [{ type: 'unix', value: 'uid:1000' }], admin: true, owner: 'platform' },
      { spiffe_id: `spiffe://${TD}/ci/scoped`, parent_id: node, selectors: [{ type: 'unix', value: 'uid:1001' }], admin: true, owner: 'platform' },
      {
        spiffe_id: `spiffe://${TD}/ns/x.s-s_/sa/payments`,
        parent_id: node,
        selectors: [{ type: 'unix', value: XSS.selector }],
        owner: XSS.owner,
        labels: { env: XSS.label, 'team/name': 'payments' },
        purpose: XSS.purpose,
        hint: XSS.hint,
      },
      { spiffe_id: `spiffe://${TD}/web/frontend`, parent_id: node, selectors: [{ type: 'unix', value: 'uid:0' }], owner: '', purpose: 'serves the shop' },
      { spiffe_id: `spiffe://${TD}/web/api`, parent_id: node, selectors: [{ type: 'unix', value: 'uid:2000' }, { type: 'unix', value: 'path:/srv/api' }], owner: 'team-web', labels: { env: 'prod' }, purpose: 'the shop API' },
    ];
    for (let i = 0; i < (opts.bulk ?? 0); i++) {
      entries.push({ spiffe_id: `spiffe://${TD}/bulk/svc-${String(i).padStart(5, '0')}`, parent_id: node, selectors: [{ type: 'unix', value: `uid:${10_000 + i}` }], owner: 'team-bulk', labels: { tier: 'bulk' } });
    }
    for (let i = 0; i < entries.length; i += 500) {
      const r = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(api.Entry, 'BatchCreateEntry', { entries: entries.slice(i, i + 500) });
      const bad = r.results.find((x) => x.status.code !== 0);
      if (bad !== undefined) throw new Error(`seeding the console fixture: ${bad.status.message}`);
    }
    const mint = async (spiffeId: string): Promise<TlsIdentity & { serial: string }> => {
      const key = generateKeyPair();
      const m = await unaryCall<{ svid: WireX509Svid }>(api.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: spiffeId, ttl: 600 });
      return { certPem: pemEncodeCertificates(m.svid.cert_chain), keyPem: pemKey(key.privateKey), serial: parseCertificate(m.svid.cert_chain[0]!).serialHex };
    };
    const admin = await mint(`spiffe://${TD}/ops/admin`);
    const workload = await mint(`spiffe://${TD}/web/frontend`);
    const scoped = await mint(`spiffe://${TD}/ci/scoped`);
    const revoked = await mint(`spiffe://${TD}/web/api`);
    await unaryCall(api.SVID, 'RevokeX509SVIDs', { serial_number: revoked.serial, reason: 'keyCompromise' });
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(api.Bundle, 'GetBundle', {});
    const port = runner.consolePort;
    if (port === undefined) throw new Error('the console did not start');
    const r = runner;
    return {
      root,
      port,
      token,
      caPem: pemEncodeCertificates(bundle.x509_authorities),
      admin,
      workload,
      scoped,
      runner: r,
      logLines,
      async stop() {
        local.close();
        await r.stop();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    local.close();
    await runner?.stop().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}
