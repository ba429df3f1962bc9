/**
 * A real `mayfly-server run` (dist/) whose delegation upstream is found by OIDC discovery
 * (`discovery_url` + `ca_file`) at a real HTTPS test issuer on loopback (src/delegation/
 * testing: node:https, a test CA and RS256 keys made here). The issuer is down when the
 * server starts: the server starts anyway and exchanges answer 503 temporarily_unavailable
 * with Retry-After; once the issuer is up, the retry fetches the keys and the same exchange
 * succeeds; a key rotated in at the issuer is picked up on its unknown kid. An `http://`
 * discovery URL refuses the start, naming the key.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLocalhostPort, makeIdpKey, TestIdp, type IdpKey } from '../../src/delegation/testing.js';

const MAYFLY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mayfly-server.js');
const TD = 'mayfly.test';
const MCP = 'https://mcp.test';
const AGENT = `spiffe://${TD}/agent/assistant`;

let dir: string;
let sock: string;
let port: number;
let idp: TestIdp;
let k1: IdpKey;
let k2: IdpKey;
let mayfly: ChildProcess | undefined;
const logs: string[] = [];

function run(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAYFLY, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, out: stdout + stderr });
    });
  });
}

function conf(d: string, p: number, discoveryUrl: string): string {
  return `server {
  trust_domain = "${TD}"
  bind_address = "127.0.0.1"
  bind_port = 0
  socket_path = "${join(d, 'mayfly', 'private', 'api.sock')}"
  data_dir = "${join(d, 'mayfly', 'data')}"
  log_level = "INFO"
  delegation {
    port = ${p}
    upstream {
      issuer = "${idp.issuer}"
      audience = "mayfly"
      algorithms = ["RS256"]
      discovery_url = "${discoveryUrl}"
      ca_file = "${join(d, 'idp-ca.pem')}"
      refresh_interval = "10s"
    }
    rules = [{ agents = ["${AGENT}"], users = ["alice"], audiences = ["${MCP}"], scopes = ["tools.read"] }]
  }
}
plugins { KeyManager "memory" { plugin_data {} } }
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`;
}

interface Minted {
  svid_pem: string;
  private_key_pem: string;
  bundle_pem: string;
}

async function mint(): Promise<Minted> {
  const r = await run(['x509', 'mint', '-spiffeID', AGENT, '-output', 'json', '-socketPath', sock]);
  if (r.code !== 0) throw new Error(r.out);
  return JSON.parse(r.out) as Minted;
}

async function exchange(agent: Minted, key: IdpKey): Promise<{ status: number; retryAfter: string | undefined; body: Record<string, unknown> }> {
  const body = new URLSearchParams({
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: await idp.token(key, 'alice'),
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    resource: MCP,
  }).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/token',
        method: 'POST',
        cert: agent.svid_pem,
        key: agent.private_key_pem,
        ca: agent.bundle_pem,
        agent: false,
        checkServerIdentity: (_h, cert) => (cert.subjectaltname?.includes(`URI:spiffe://${TD}/spire/server`) ? undefined : new Error(`unexpected server ${cert.subjectaltname}`)),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `f` until `ok` (bounded; 4 a second, under the default per-actor rate limit); returns the last answer. */
async function until<T>(f: () => Promise<T>, ok: (t: T) => boolean, tries = 120): Promise<T> {
  let last = await f();
  for (let i = 0; i < tries && !ok(last); i++) {
    await new Promise((r) => setTimeout(r, 250));
    last = await f();
  }
  return last;
}

beforeAll(async () => {
  [k1, k2] = await Promise.all([makeIdpKey('idp-1'), makeIdpKey('idp-2')]);
  idp = new TestIdp(await freeLocalhostPort()); // not started: the issuer is down when the server starts
  idp.keys = [k1];
  dir = mkdtempSync(join(tmpdir(), 'mayfly-delegation-discovery-'));
  sock = join(dir, 'mayfly', 'private', 'api.sock');
  writeFileSync(join(dir, 'idp-ca.pem'), idp.caPem);
  port = await freeLocalhostPort();
  writeFileSync(join(dir, 'mayfly.conf'), conf(dir, port, idp.discoveryUrl));
  mayfly = spawn(process.execPath, [MAYFLY, 'run', '-config', join(dir, 'mayfly.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const st of [mayfly.stdout, mayfly.stderr]) st?.on('data', (d: Buffer) => logs.push(d.toString('utf8')));
  for (let i = 0; ; i++) {
    const listening = await new Promise<boolean>((r) => {
      const c = connect({ host: '127.0.0.1', port }, () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (listening) break;
    if (i >= 300 || mayfly.exitCode !== null) throw new Error(`mayfly-server did not come up: ${logs.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  const m = mayfly;
  if (m !== undefined && m.exitCode === null && m.signalCode === null) {
    const exited = new Promise((r) => m.once('exit', r));
    m.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (m.exitCode === null && m.signalCode === null) m.kill('SIGKILL');
  }
  await idp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('mayfly-server with an upstream issuer by OIDC discovery', () => {
  it('starts with the issuer down (503 + Retry-After), then serves once the issuer is up, and follows a key rotation', async () => {
    expect(logs.join('')).toMatch(/cannot fetch the keys of https:\/\/localhost:\d+/);
    const agent = await mint();
    const down = await exchange(agent, k1);
    expect(down.status).toBe(503);
    expect(down.body.error).toBe('temporarily_unavailable');
    expect(down.retryAfter).toBe('5');

    await idp.start();
    const up = await until(
      () => exchange(agent, k1),
      (r) => r.status !== 503,
    );
    expect(up.status, JSON.stringify(up.body)).toBe(200);
    expect(up.body.scope).toBe('tools.read');
    expect(idp.hits.discovery).toBeGreaterThanOrEqual(1);

    idp.keys = [k2]; // rotation at the issuer
    const rotated = await until(
      () => exchange(agent, k2),
      (r) => r.status === 200,
    );
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    expect(logs.join('')).toMatch(/new JWKS of https:\/\/localhost/);
  }, 60_000);

  it('an http discovery_url refuses the start, naming the key', async () => {
    const d = mkdtempSync(join(tmpdir(), 'mayfly-delegation-discovery-bad-'));
    try {
      writeFileSync(join(d, 'idp-ca.pem'), idp.caPem);
      writeFileSync(join(d, 'mayfly.conf'), conf(d, await freeLocalhostPort(), idp.discoveryUrl.replace('https:', 'http:')));
      const r = await run(['run', '-config', join(d, 'mayfly.conf')]);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain('server.delegation.upstream.discovery_url must be an https URL');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});
