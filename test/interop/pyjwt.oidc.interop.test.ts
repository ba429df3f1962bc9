/**
 * OIDC discovery judged by a stock relying party: Python PyJWT's `PyJWKClient` (the
 * py-spiffe venv pins PyJWT) is given only the issuer URL, reads our discovery document over
 * HTTPS, fetches the `jwks_uri` it names and verifies a JWT-SVID Mayfly minted, with issuer
 * and audience checks (test/interop/py-spiffe/oidc_verify.py). Then the JWT key rotates
 * (prepare, activate, taint, revoke) and the JWKS follows: a token of the new key verifies,
 * one of the revoked key no longer does.
 *
 * Mayfly is a real `mayfly-server run` process (from dist/, server.conf with `jwt_issuer`
 * and `oidc_discovery`); tokens come from `mayfly-server jwt mint`, keys rotate with
 * `mayfly-server localauthority jwt …`. The HTTPS certificate is a test CA's for
 * `localhost`, which Python trusts through SSL_CERT_FILE.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportPkcs8Pem } from '../../src/spiffe/keys.js';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';
import { makeTestCa, makeTestSvid } from '../../src/spiffe/x509/testing.js';
import { ensurePySpiffe, PY_SPIFFE_DIR } from './py-spiffe/venv.js';

const SCRIPT = join(PY_SPIFFE_DIR, 'oidc_verify.py');
const MAYFLY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mayfly-server.js');

let dir: string;
let python: string;
let mayfly: ChildProcess | undefined;
let sock: string;
const logs: string[] = [];
let issuer: string;
let caFile: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

interface Verdict {
  code: number;
  out: { claims: Record<string, unknown>; kid: string; jwks_uri: string } | undefined;
  err: string;
}

function verify(token: string, audience: string, iss = issuer): Promise<Verdict> {
  return new Promise((resolve) => {
    const child = execFile(python, [SCRIPT, iss, audience], { timeout: 30_000, env: { ...process.env, SSL_CERT_FILE: caFile } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: code === 0 ? (JSON.parse(stdout) as Verdict['out']) : undefined, err: stderr });
    });
    child.stdin?.end(token);
  });
}

/** `mayfly-server <args> -output json` over the admin socket. */
function cli(args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [MAYFLY, ...args, '-socketPath', sock, '-output', 'json'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`mayfly-server ${args.join(' ')}: ${stdout}${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

const mint = async (audience: string[]): Promise<string> =>
  ((await cli(['jwt', 'mint', '-spiffeID', 'spiffe://mayfly.test/workload/api', ...audience.flatMap((a) => ['-audience', a])])) as { token: string }).token;

const activeJwt = async (): Promise<string> => ((await cli(['localauthority', 'jwt', 'show'])) as { active: { authority_id: string } }).active.authority_id;

beforeAll(async () => {
  python = await ensurePySpiffe();
  dir = mkdtempSync(join(tmpdir(), 'mayfly-oidc-pyjwt-'));
  const webCa = makeTestCa({ trustDomain: 'web.test' });
  const leaf = makeTestSvid(webCa, '/oidc', { dnsNames: ['localhost'] });
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, pemEncodeCertificates([webCa.certificate]));
  writeFileSync(join(dir, 'oidc.crt'), pemEncodeCertificates([leaf.certificate]));
  writeFileSync(join(dir, 'oidc.key'), exportPkcs8Pem(leaf.key.privateKey), { mode: 0o600 });
  const port = await freePort();
  issuer = `https://localhost:${port}`;
  sock = join(dir, 'mayfly', 'private', 'api.sock');
  writeFileSync(
    join(dir, 'mayfly.conf'),
    `server {
  trust_domain = "mayfly.test"
  bind_address = "127.0.0.1"
  bind_port = 0
  socket_path = "${sock}"
  data_dir = "${join(dir, 'mayfly', 'data')}"
  log_level = "WARN"
  jwt_issuer = "${issuer}"
  oidc_discovery {
    address = "127.0.0.1"
    port = ${port}
    serving_cert_file {
      cert_file_path = "${join(dir, 'oidc.crt')}"
      key_file_path = "${join(dir, 'oidc.key')}"
    }
  }
}
plugins { KeyManager "memory" { plugin_data {} } }
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`,
  );
  mayfly = spawn(process.execPath, [MAYFLY, 'run', '-config', join(dir, 'mayfly.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const st of [mayfly.stdout, mayfly.stderr]) st?.on('data', (d: Buffer) => logs.push(d.toString('utf8')));
  for (let i = 0; ; i++) {
    // The admin socket answers first; the OIDC listener is bound just after.
    const listening = await new Promise<boolean>((r) => {
      const c = connect({ host: '127.0.0.1', port }, () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    const up = listening && (await cli(['localauthority', 'jwt', 'show']).then(() => true, () => false));
    if (up) break;
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

describe('PyJWT PyJWKClient verifies Mayfly JWT-SVIDs from the issuer URL alone', () => {
  it('verifies signature, iss and aud of a minted JWT-SVID', async () => {
    const token = await mint(['vault', 'aws']);
    const v = await verify(token, 'vault');
    expect(v.err).toBe('');
    expect(v.code).toBe(0);
    expect(v.out?.claims.sub).toBe('spiffe://mayfly.test/workload/api');
    expect(v.out?.claims.iss).toBe(issuer);
    expect(v.out?.jwks_uri).toBe(`${issuer}/keys`);
    expect(v.out?.kid).toBe(await activeJwt());
  });

  it('refuses a wrong audience and a wrong issuer (the checks can fail)', async () => {
    const token = await mint(['vault']);
    const aud = await verify(token, 'someone-else');
    expect(aud.code).toBe(1);
    expect(aud.err).toMatch(/InvalidAudienceError/);
    // Another issuer URL on the same listener: the document's issuer does not match it.
    const iss = await verify(token, 'vault', `${issuer}/elsewhere`);
    expect(iss.code).toBe(1);
  });

  it('follows a JWT key rotation: a new key\'s token verifies; a revoked key\'s no longer does', async () => {
    const oldKid = await activeJwt();
    const oldToken = await mint(['vault']);
    const next = ((await cli(['localauthority', 'jwt', 'prepare'])) as { authority: { authority_id: string } }).authority.authority_id;
    await cli(['localauthority', 'jwt', 'activate', '-authorityID', next]);
    const newToken = await mint(['vault']);
    const v = await verify(newToken, 'vault');
    expect(v.code).toBe(0);
    expect(v.out?.kid).toBe(next);
    expect((await verify(oldToken, 'vault')).code).toBe(0); // still published until revoked
    await cli(['localauthority', 'jwt', 'taint', '-authorityID', oldKid]);
    await cli(['localauthority', 'jwt', 'revoke', '-authorityID', oldKid]);
    const gone = await verify(oldToken, 'vault');
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/Unable to find a signing key/);
    expect((await verify(newToken, 'vault')).code).toBe(0);
  });
});
