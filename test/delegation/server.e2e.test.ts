/**
 * The token exchange served by a real `mayfly-server run` (dist/, server.conf with a
 * `delegation` block): a test RS256 issuer's public key as the static JWKS file, an agent
 * X509-SVID from `mayfly-server x509 mint`, a token exchange POSTed over mTLS. An allowed
 * agent gets a token the SDK's validateDelegatedToken accepts (bound to its certificate);
 * an agent the policy does not name gets 400 unauthorized_client; each decision is one log
 * line naming agent and user. A bad policy stops the server from starting, naming the key.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateDelegatedToken } from '../../src/sdk/delegated-token.js';
import { parseBundle } from '../../src/spiffe/bundle/parse.js';
import { TrustDomain } from '../../src/spiffe/id.js';

const MAYFLY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mayfly-server.js');
const TD = 'mayfly.test';
const UPSTREAM = 'https://idp.test';
const MCP = 'https://mcp.test';
const GOOD_AGENT = `spiffe://${TD}/agent/assistant`;

let dir: string;
let sock: string;
let port: number;
let mayfly: ChildProcess | undefined;
const logs: string[] = [];
const idp = generateKeyPairSync('rsa', { modulusLength: 2048 });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(p));
    });
  });
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAYFLY, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function cli(args: string[]): Promise<string> {
  const r = await run([...args, '-socketPath', sock]);
  if (r.code !== 0) throw new Error(`mayfly-server ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function conf(d: string, rules: string, p: number): string {
  return `server {
  trust_domain = "${TD}"
  bind_address = "127.0.0.1"
  bind_port = 0
  socket_path = "${join(d, 'mayfly', 'private', 'api.sock')}"
  data_dir = "${join(d, 'mayfly', 'data')}"
  log_level = "INFO"
  delegation {
    port = ${p}
    max_ttl = "2m"
    upstream {
      issuer = "${UPSTREAM}"
      audience = "mayfly"
      algorithms = ["RS256"]
      jwks_file = "${join(d, 'idp.jwks.json')}"
    }
    rules = [${rules}]
  }
}
plugins { KeyManager "memory" { plugin_data {} } }
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`;
}

const userToken = (sub: string): Promise<string> =>
  new SignJWT({ scope: 'tools.read tools.write' })
    .setProtectedHeader({ alg: 'RS256', kid: 'idp-1' })
    .setIssuer(UPSTREAM)
    .setAudience('mayfly')
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(idp.privateKey);

interface Minted {
  svid_pem: string;
  private_key_pem: string;
  bundle_pem: string;
}

const mintSvid = async (id: string): Promise<Minted> => JSON.parse(await cli(['x509', 'mint', '-spiffeID', id, '-output', 'json'])) as Minted;

function exchange(agent: Minted, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = new URLSearchParams(form).toString();
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
        // The endpoint's SVID names a SPIFFE ID, not a host name: check that instead.
        checkServerIdentity: (_h, cert) => (cert.subjectaltname?.includes(`URI:spiffe://${TD}/spire/server`) ? undefined : new Error(`unexpected server ${cert.subjectaltname}`)),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const form = async (sub: string): Promise<Record<string, string>> => ({
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: await userToken(sub),
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  resource: MCP,
  scope: 'tools.read',
});

const RULES = `{ agents = ["${GOOD_AGENT}"], users = ["alice"], audiences = ["${MCP}"], scopes = ["tools.read"] }`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-delegation-e2e-'));
  sock = join(dir, 'mayfly', 'private', 'api.sock');
  writeFileSync(join(dir, 'idp.jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' }] }));
  port = await freePort();
  writeFileSync(join(dir, 'mayfly.conf'), conf(dir, RULES, port));
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
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The first log line matching `test`: pino may write it just after the response went out, so wait for it (bounded). */
async function logLine(test: (line: string) => boolean): Promise<string | undefined> {
  for (let i = 0; i < 100; i++) {
    const line = logs.join('').split('\n').find(test);
    if (line !== undefined) return line;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

describe('mayfly-server with server.delegation', () => {
  it('exchanges a user token for an allowed agent over mTLS: the SDK accepts the delegated token, bound to the agent certificate', async () => {
    const agent = await mintSvid(GOOD_AGENT);
    const res = await exchange(agent, await form('alice'));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', scope: 'tools.read' });
    const bundle = parseBundle(await cli(['bundle', 'show', '-format', 'spiffe']), TrustDomain.parse(TD));
    const peer = new X509Certificate(agent.svid_pem).raw;
    const v = await validateDelegatedToken(res.body.access_token as string, {
      audience: MCP,
      issuer: `spiffe://${TD}`,
      trustDomain: TD,
      bundleSource: { getBundleForTrustDomain: () => bundle },
      peerCertificate: peer,
    });
    expect(v.user).toBe('alice');
    expect(v.actorChain).toEqual([GOOD_AGENT]);
    expect(v.scope).toEqual(['tools.read']);
    const issued = await logLine((l) => l.includes(`"actor":"${GOOD_AGENT}"`) && l.includes('"user":"alice"'));
    expect(issued).toBeDefined();
  });

  it('refuses an agent the policy does not name with 400 unauthorized_client, logged with both identities', async () => {
    const other = `spiffe://${TD}/agent/stranger`;
    const res = await exchange(await mintSvid(other), await form('alice'));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unauthorized_client');
    const line = await logLine((l) => l.includes(`"actor":"${other}"`));
    expect(line).toBeDefined();
    expect(line).toContain('alice');
    expect(line).toContain('"outcome":"refused"');
  });

  it('a bad delegation policy: the server exits non-zero naming where', async () => {
    const d = mkdtempSync(join(tmpdir(), 'mayfly-delegation-bad-'));
    try {
      writeFileSync(join(d, 'idp.jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1' }] }));
      writeFileSync(join(d, 'mayfly.conf'), conf(d, `{ agents = ["not-a-spiffe-id"], users = ["alice"], audiences = ["${MCP}"], scopes = ["tools.read"] }`, await freePort()));
      const r = await run(['run', '-config', join(d, 'mayfly.conf')]);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain('server.delegation.rules[0].agents[0]');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});
