/**
 * nginx, which knows nothing of SPIFFE, serving mutual TLS with files kept current by
 * `mayfly-agent helper` (the real binary, in its own process, attested by a real agent as
 * any workload). The helper starts nginx as its `cmd` (`daemon off`, its own prefix, pid,
 * error log and temp paths in a temp dir, as the test's user) and sends it `renew_signal =
 * "SIGHUP"` after every rotation (x509SvidTtl 5 s). A client holding an SVID of the same
 * agent gets 200 before and after three rotations, and the serial nginx serves is seen to
 * change three times (facts: distinct serials, each also the one in the written file, not
 * times). A client with an SVID of another trust domain (a second deployment) is refused:
 * nginx's http module fails the client certificate after the handshake and answers 400
 * "The SSL certificate error" without reaching the location, and logs the verify error.
 * Then the agent is stopped and a new one started on the same data directory and socket:
 * the helper reconnects by itself and nginx serves a certificate issued after the restart.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Source } from '../../src/sdk/sources.js';
import { authorizeMemberOf, createClientTlsOptions } from '../../src/sdk/tls.js';
import { x509SvidPem } from '../../src/sdk/model.js';
import { MayflyAgent } from '../../src/agent/agent.js';
import { startMayfly, type MayflyDeployment } from './harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT_CLI = join(ROOT, 'bin', 'mayfly-agent.js');
const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].find((p) => existsSync(p));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Serial numbers as hex without case or leading zeros (node's two APIs print them differently). */
const norm = (x: string): string => x.toUpperCase().replace(/^0+/, '');

interface Answer {
  status: number;
  body: string;
  serial: string;
}

describe('nginx reloaded by mayfly-agent helper across SVID rotations', () => {
  let m: MayflyDeployment;
  let foreign: MayflyDeployment;
  let helper: ChildProcessWithoutNullStreams | undefined;
  let helperLog = '';
  let source: X509Source;
  let foreignSource: X509Source;
  let dir = '';
  let certDir = '';
  let port = 0;
  let restarted: MayflyAgent | undefined;
  /** Every serial nginx served in the tests before the agent restart. */
  const seen = new Set<string>();

  beforeAll(async () => {
    if (NGINX === undefined) throw new Error('nginx is not installed: run `apt-get install -y nginx` (bash .ci/run installs it)');
    if (spawnSync(NGINX, ['-v']).status !== 0) throw new Error(`${NGINX} -v failed`);
    [m, foreign] = await Promise.all([startMayfly({ x509SvidTtl: 5 }), startMayfly({ trustDomain: 'foreign.mayfly.test' })]);
    dir = join(m.workDir, 'nginx');
    certDir = join(m.workDir, 'certs');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    mkdirSync(certDir, { mode: 0o755 });
    port = await freePort();
    const user = process.getuid?.() === 0 ? 'user root;\n' : '';
    const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp/${t};`).join('\n');
    writeFileSync(
      join(dir, 'nginx.conf'),
      `${user}worker_processes 1;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
${temps}
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${certDir}/svid.pem;
    ssl_certificate_key ${certDir}/svid_key.pem;
    ssl_client_certificate ${certDir}/bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_session_tickets off;
    ssl_session_cache off;
    location / { return 200 "hello $ssl_client_verify\\n"; }
  }
}
`,
    );
    const conf = join(dir, 'helper.conf');
    writeFileSync(
      conf,
      `agent_address = "${m.socketPath}"
cert_dir = "${certDir}"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "bundle.pem"
cmd = "${NGINX}"
cmd_args = "-p ${dir} -c ${dir}/nginx.conf -e ${dir}/error.log -g 'daemon off; pid ${dir}/nginx.pid;'"
renew_signal = "SIGHUP"
`,
    );
    helper = spawn(process.execPath, [AGENT_CLI, 'helper', '-config', conf], { env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    helper.stdout.setEncoding('utf8').on('data', (s: string) => (helperLog += s));
    helper.stderr.setEncoding('utf8').on('data', (s: string) => (helperLog += s));
    [source, foreignSource] = await Promise.all([X509Source.create({ socketPath: m.socketPath }), X509Source.create({ socketPath: foreign.socketPath })]);
  });

  afterAll(async () => {
    source?.close();
    foreignSource?.close();
    await restarted?.stop();
    if (helper && helper.exitCode === null) {
      const exited = new Promise((r) => helper?.once('close', r));
      helper.kill('SIGTERM');
      await exited;
    }
    await Promise.all([m?.stop(), foreign?.stop()]);
  });

  /** One GET on a fresh connection with our SVID; verifies nginx's SVID as a SPIFFE peer. */
  function fetchOnce(): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port, path: '/', agent: false, ...createClientTlsOptions(source, { authorize: authorizeMemberOf(m.trustDomain) }) }, (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serial }));
      });
      req.on('error', reject);
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    });
  }

  async function waitFor(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; helper said:\n${helperLog}\nnginx error.log:\n${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
      if (helper?.exitCode !== null) throw new Error(`the helper exited (${helper?.exitCode}):\n${helperLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('serves 200 to a same-trust-domain client before and after three rotations, each one a new serial', async () => {
    await waitFor('nginx started by the helper', () => /started .*nginx \(pid \d+\)/.test(helperLog));
    const served: string[] = [];
    const written = new Set<string>();
    let answers = 0;
    const deadline = Date.now() + 60_000;
    // Fresh connections until nginx has served four distinct certificates: the first and three rotations.
    while (served.length < 4) {
      if (Date.now() > deadline) throw new Error(`nginx served only ${served.length} distinct serials; helper said:\n${helperLog}`);
      if (helper?.exitCode !== null) throw new Error(`the helper exited (${helper?.exitCode}):\n${helperLog}`);
      written.add(new X509Certificate(readFileSync(join(certDir, 'svid.pem'))).serialNumber);
      let a: Answer;
      try {
        a = await fetchOnce();
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // not listening yet
        continue;
      }
      expect(a.status).toBe(200);
      expect(a.body).toBe('hello SUCCESS\n');
      answers++;
      if (served.at(-1) !== a.serial) served.push(a.serial);
      await new Promise((r) => setTimeout(r, 100));
    }
    written.add(new X509Certificate(readFileSync(join(certDir, 'svid.pem'))).serialNumber);
    expect(new Set(served).size).toBe(4);
    for (const x of served) seen.add(x);
    // Every certificate nginx served is one the helper wrote (hex case differs between APIs).
    for (const s of served) expect([...written].map(norm)).toContain(norm(s));
    expect(helperLog.match(/sent SIGHUP to .*nginx/g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(answers).toBeGreaterThanOrEqual(4);
    // nginx was started once: rotations were reloads, not restarts.
    expect(helperLog.match(/started .*nginx/g)).toHaveLength(1);
  }, 90_000);

  it('refuses a client whose SVID is from another trust domain', async () => {
    const svid = foreignSource.getX509Svid();
    const pem = x509SvidPem(svid);
    const answer = await new Promise<{ text: string }>((resolve, reject) => {
      // The foreign client does not trust nginx either; it only wants to see what nginx does with its certificate.
      const sock = connect({ host: '127.0.0.1', port, cert: pem.certificates, key: pem.privateKey, rejectUnauthorized: false, servername: 'localhost' }, () => {
        sock.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      let text = '';
      sock.setEncoding('utf8').on('data', (c: string) => (text += c));
      sock.on('end', () => resolve({ text }));
      sock.on('error', (e) => (text === '' ? reject(e) : resolve({ text })));
      sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
    });
    expect(answer.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer.text).toContain('The SSL certificate error');
    expect(answer.text).not.toContain('hello');
    expect(readFileSync(join(dir, 'error.log'), 'utf8')).toMatch(/client SSL certificate verify error/);
  });

  it('keeps nginx current after the agent restarts (the helper reconnects on its own)', async () => {
    const logBefore = helperLog.length;
    await m.agent.stop();
    // Whatever the old agent issued last is on disk now (nothing can write a newer one while it is down).
    seen.add(new X509Certificate(readFileSync(join(certDir, 'svid.pem'))).serialNumber);
    await waitFor('the helper noticing the agent is gone', () => /X\.509 watch: .*retrying/.test(helperLog.slice(logBefore)));
    restarted = new MayflyAgent({
      serverAddress: `127.0.0.1:${m.server.port}`,
      trustDomain: m.trustDomain,
      dataDir: join(m.workDir, 'agent', 'data'),
      socketPath: m.socketPath,
      trustBundlePath: join(m.workDir, 'trust-bundle.pem'),
    });
    await restarted.start();
    await restarted.whenReady(30_000);
    // Our client's source reconnects too; then nginx must serve a certificate never served before the restart.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`nginx never served a post-restart certificate; helper said:\n${helperLog.slice(logBefore)}`);
      const a = await fetchOnce().catch(() => undefined);
      if (a !== undefined) {
        expect(a.status).toBe(200);
        if (![...seen].map(norm).includes(norm(a.serial))) break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(helperLog.slice(logBefore)).toMatch(/sent SIGHUP to .*nginx/);
    expect(helperLog.match(/started .*nginx/g)).toHaveLength(1);
  }, 90_000);
});
