/**
 * OpenSSL as the TLS stack of two workloads. `mayfly-agent api fetch x509 -write DIR` (the
 * real CLI, in its own process, attested by the agent like any workload) writes
 * svid.0.pem / svid.0.key / bundle.0.pem for each of two identities: the server's as our
 * uid, the client's as uid 65534 (so the two file sets come from two attested callers, not
 * from one caller's list). Then OpenSSL, which knows nothing of SPIFFE, must accept them:
 * `openssl verify -x509_strict` against the bundle, and `s_server -Verify 1
 * -verify_return_error` with `s_client -verify_return_error` completing mutual TLS and
 * exchanging a line each way. A client certificate from outside the trust domain must be
 * refused, so the handshake is proven to verify something.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, startMayfly, type MayflyDeployment } from './harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT_CLI = join(ROOT, 'bin', 'mayfly-agent.js');
const NOBODY = 65534;

/** A long-running openssl process whose output is watched as it arrives. */
class Watched {
  out = '';
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;

  constructor(args: string[], cwd: string) {
    this.child = spawn('openssl', args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin.on('error', () => {});
    this.child.stdout.setEncoding('utf8').on('data', (s: string) => (this.out += s));
    this.child.stderr.setEncoding('utf8').on('data', (s: string) => (this.out += s));
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code) => {
        clearTimeout(killer);
        resolve(code);
      }),
    );
  }

  async waitFor(re: RegExp, what: string, timeoutMs = 15_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`openssl exited (${this.child.exitCode}) before ${what}:\n${this.out}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('openssl with SVIDs written by mayfly-agent api fetch x509 -write', () => {
  let m: MayflyDeployment;
  let serverDir = '';
  let clientDir = '';
  let clientId = '';

  const fetchX509 = async (dir: string, uid?: number): Promise<void> => {
    const r = await runProcess(process.execPath, [AGENT_CLI, 'api', 'fetch', 'x509', '-write', dir, '-timeout', '20s'], {
      env: { SPIFFE_ENDPOINT_SOCKET: m.endpoint },
      ...(uid !== undefined ? { uid, gid: uid } : {}),
    });
    expect(r.code, `mayfly-agent api fetch x509 failed: ${r.stderr}`).toBe(0);
  };

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test fetches the client identity as uid 65534 and needs root (CI runs as root)');
    m = await startMayfly({ defaultEntryPath: '/openssl/server' });
    clientId = `spiffe://${m.trustDomain}/openssl/client`;
    await m.createEntry(clientId, [`unix:uid:${NOBODY}`]);
    serverDir = join(m.workDir, 'server-svid');
    clientDir = join(m.workDir, 'client-svid');
    mkdirSync(serverDir, { mode: 0o700 });
    mkdirSync(clientDir, { mode: 0o700 });
    chownSync(clientDir, NOBODY, NOBODY);
    await fetchX509(serverDir);
    await fetchX509(clientDir, NOBODY);
  }, 120_000);

  afterAll(async () => {
    await m?.stop();
  });

  it('the CLI wrote one SVID per caller, with a private key file', () => {
    for (const dir of [serverDir, clientDir]) {
      expect(readFileSync(join(dir, 'svid.0.pem'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
      expect(readFileSync(join(dir, 'bundle.0.pem'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
      expect(readFileSync(join(dir, 'svid.0.key'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(statSync(join(dir, 'svid.0.key')).mode & 0o077).toBe(0);
    }
    expect(statSync(join(clientDir, 'svid.0.pem')).uid).toBe(NOBODY);
  });

  it('openssl x509 shows each SPIFFE ID as the only URI SAN', async () => {
    for (const [dir, id] of [
      [serverDir, m.defaultSpiffeId],
      [clientDir, clientId],
    ] as const) {
      const r = await runProcess('openssl', ['x509', '-in', join(dir, 'svid.0.pem'), '-noout', '-ext', 'subjectAltName']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`URI:${id}`);
      expect(r.stdout.match(/URI:/g)).toHaveLength(1);
    }
  });

  it('openssl verify -x509_strict accepts both SVIDs against the bundle', async () => {
    for (const dir of [serverDir, clientDir]) {
      const r = await runProcess('openssl', ['verify', '-x509_strict', '-CAfile', 'bundle.0.pem', '-untrusted', 'svid.0.pem', 'svid.0.pem'], { cwd: dir });
      expect(r.code, `${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout.trim()).toBe('svid.0.pem: OK');
    }
    // The server's SVID also verifies against the bundle the other caller received.
    const cross = await runProcess('openssl', ['verify', '-x509_strict', '-CAfile', join(clientDir, 'bundle.0.pem'), join(serverDir, 'svid.0.pem')]);
    expect(cross.code, `${cross.stdout}${cross.stderr}`).toBe(0);
  });

  it('s_server -Verify 1 and s_client complete mutual TLS and exchange a line each way', async () => {
    const server = new Watched(
      ['s_server', '-accept', '127.0.0.1:0', '-naccept', '1', '-cert', 'svid.0.pem', '-key', 'svid.0.key', '-CAfile', 'bundle.0.pem', '-Verify', '1', '-verify_return_error'],
      serverDir,
    );
    try {
      const port = (await server.waitFor(/ACCEPT 127\.0\.0\.1:(\d+)/, 's_server to listen'))[1] as string;
      const client = new Watched(
        ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', 'svid.0.pem', '-key', 'svid.0.key', '-CAfile', 'bundle.0.pem', '-verify_return_error'],
        clientDir,
      );
      try {
        await client.waitFor(/Verify return code: 0 \(ok\)/, 's_client to verify the server');
        client.child.stdin.write('hello from the openssl client\n');
        await server.waitFor(/hello from the openssl client/, 's_server to receive the client line');
        server.child.stdin.write('hello from the openssl server\n');
        await client.waitFor(/hello from the openssl server/, 's_client to receive the server line');
        // s_server verified the client's certificate chain (depth 0 = the client SVID).
        expect(server.out).toMatch(/verify return:1/);
        expect(server.out).not.toMatch(/verify error/);
        expect(client.out).not.toMatch(/verify error/);
      } finally {
        client.child.stdin.end();
        expect(await client.exited).toBe(0);
      }
    } finally {
      server.child.stdin.end();
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('s_server refuses a client certificate from outside the trust domain', async () => {
    const rogue = join(m.workDir, 'rogue');
    mkdirSync(rogue);
    const gen = await runProcess(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=rogue', '-days', '1', '-addext', `subjectAltName=URI:${clientId}`],
      { cwd: rogue },
    );
    expect(gen.code, gen.stderr).toBe(0);
    const server = new Watched(
      ['s_server', '-accept', '127.0.0.1:0', '-naccept', '1', '-cert', 'svid.0.pem', '-key', 'svid.0.key', '-CAfile', 'bundle.0.pem', '-Verify', '1', '-verify_return_error'],
      serverDir,
    );
    try {
      const port = (await server.waitFor(/ACCEPT 127\.0\.0\.1:(\d+)/, 's_server to listen'))[1] as string;
      const client = new Watched(
        ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', 'cert.pem', '-key', 'key.pem', '-CAfile', join(clientDir, 'bundle.0.pem'), '-verify_return_error'],
        rogue,
      );
      client.child.stdin.write('let me in\n');
      // TLS 1.3: the client learns of the refusal from the server's alert after its Finished.
      await server.waitFor(/verify error|certificate verify failed|unable to get local issuer|self-signed/i, 's_server to refuse the rogue certificate');
      client.child.stdin.end();
      await client.exited;
      expect(server.out).not.toMatch(/let me in/);
    } finally {
      server.child.stdin.end();
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
