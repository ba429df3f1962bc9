/**
 * OIDC discovery judged by a stock relying party: Python PyJWT's `PyJWKClient` (the
 * py-spiffe venv pins PyJWT) is given only the issuer URL, reads our discovery document over
 * HTTPS, fetches the `jwks_uri` it names and verifies a JWT-SVID Mayfly minted, with issuer
 * and audience checks (test/interop/py-spiffe/oidc_verify.py). Then the JWT key rotates
 * (prepare, activate, taint, revoke) and the JWKS follows: a token of the new key verifies,
 * one of the revoked key no longer does.
 *
 * Mayfly runs in this process as `mayfly-server run` assembles it (ServerRunner from a
 * server.conf with `oidc_discovery`); tokens come from its CA's mint path (the one the SVID
 * API's MintJWTSVID and `jwt mint` use). The HTTPS certificate is a test CA's for
 * `localhost`, which Python trusts through SSL_CERT_FILE.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHcl } from '../../src/config/hcl.js';
import { resolveServerConfig } from '../../src/server/config.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { exportPkcs8Pem } from '../../src/spiffe/keys.js';
import { pemEncodeCertificates } from '../../src/spiffe/x509/pem.js';
import { makeTestCa, makeTestSvid } from '../../src/spiffe/x509/testing.js';
import { ensurePySpiffe, PY_SPIFFE_DIR } from './py-spiffe/venv.js';

const SCRIPT = join(PY_SPIFFE_DIR, 'oidc_verify.py');

let dir: string;
let python: string;
let runner: ServerRunner | undefined;
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

const mint = (audience: string[]): string => {
  const ca = runner?.ca;
  if (ca === undefined) throw new Error('runner not started');
  return ca.signJwtSvid({ spiffeId: 'spiffe://mayfly.test/workload/api', audience }).token;
};

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
  const conf = parseHcl(`server {
    trust_domain = "mayfly.test"
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
  plugins { KeyManager "memory" { plugin_data {} } }`);
  const settings = resolveServerConfig(conf, { dataDir: join(dir, 'mayfly'), socketPath: join(dir, 'admin', 'api.sock'), bindPort: 0 });
  settings.metrics.enabled = false;
  runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200 });
  await runner.start();
}, 120_000);

afterAll(async () => {
  await runner?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('PyJWT PyJWKClient verifies Mayfly JWT-SVIDs from the issuer URL alone', () => {
  it('verifies signature, iss and aud of a minted JWT-SVID', async () => {
    const token = mint(['vault', 'aws']);
    const v = await verify(token, 'vault');
    expect(v.err).toBe('');
    expect(v.code).toBe(0);
    expect(v.out?.claims.sub).toBe('spiffe://mayfly.test/workload/api');
    expect(v.out?.claims.iss).toBe(issuer);
    expect(v.out?.jwks_uri).toBe(`${issuer}/keys`);
    expect(v.out?.kid).toBe(runner?.ca?.authorityState('jwt').active?.id);
  });

  it('refuses a wrong audience and a wrong issuer (the checks can fail)', async () => {
    const token = mint(['vault']);
    const aud = await verify(token, 'someone-else');
    expect(aud.code).toBe(1);
    expect(aud.err).toMatch(/InvalidAudienceError/);
    // Another issuer URL on the same listener: the document's issuer does not match it.
    const iss = await verify(token, 'vault', `${issuer}/elsewhere`);
    expect(iss.code).toBe(1);
  });

  it('follows a JWT key rotation: a new key\'s token verifies; a revoked key\'s no longer does', async () => {
    const ca = runner?.ca;
    if (ca === undefined) throw new Error('runner not started');
    const oldKid = ca.authorityState('jwt').active?.id as string;
    const oldToken = mint(['vault']);
    const next = await ca.prepareAuthority('jwt');
    await ca.activateAuthority('jwt');
    const newToken = mint(['vault']);
    const v = await verify(newToken, 'vault');
    expect(v.code).toBe(0);
    expect(v.out?.kid).toBe(next.id);
    expect((await verify(oldToken, 'vault')).code).toBe(0); // still published until revoked
    await ca.taintAuthority('jwt', oldKid);
    await ca.revokeAuthority('jwt', oldKid);
    await runner?.server?.trustBundle?.settled();
    const gone = await verify(oldToken, 'vault');
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/Unable to find a signing key/);
    expect((await verify(newToken, 'vault')).code).toBe(0);
  });
});
