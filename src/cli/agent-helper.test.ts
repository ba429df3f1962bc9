/**
 * `mayfly-agent helper` against a fake Workload API on a real socket, with real files and
 * real reload commands: what it writes, and how it behaves when things go wrong (no
 * socket yet, the agent restarting, a cert_dir it may not use, a reload command that
 * fails, a write that fails half way).
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHcl } from '../config/hcl.js';
import { parseX509Context } from '../sdk/model.js';
import { FakeWorkloadApi, jwtBundlesResponse, makeFakeTrustDomain, x509Response, type FakeTrustDomain } from '../sdk/testing.js';
import { tempDirs } from '../securefs/testing.js';
import { addAgentHelperCommand } from './agent-helper.js';
import { createProgram, runProgram } from './flags.js';
import { HEALTH_KEYS, HELPER_KEYS, resolveHelperConfig, splitArgs, type HelperConfig } from './helper-config.js';
import { atomicFileWriter, helperFiles, type FileWriter } from './helper-files.js';
import { SpiffeHelper } from './helper-run.js';

const dirs = tempDirs('mayfly-helper-');
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  dirs.cleanup();
});

const FAST = { initialMs: 50, maxMs: 200 };

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function config(hcl: string, base: string): HelperConfig {
  return resolveHelperConfig(parseHcl(hcl), base);
}

interface Setup {
  base: string;
  certDir: string;
  socket: string;
  td: FakeTrustDomain;
  logs: string[];
  log: (level: string, m: string) => void;
}

function setup(): Setup {
  const base = dirs.make();
  const certDir = join(base, 'certs');
  mkdirSync(certDir, { mode: 0o755 });
  const logs: string[] = [];
  return { base, certDir, socket: join(base, 'api.sock'), td: makeFakeTrustDomain('example.org', { intermediate: true }), logs, log: (level, m) => void logs.push(`${level} ${m}`) };
}

const FILES = 'svid_file_name = "svid.pem"\nsvid_key_file_name = "svid_key.pem"\nsvid_bundle_file_name = "bundle.pem"\n';

function serial(path: string): string {
  return new X509Certificate(readFileSync(path)).serialNumber;
}

function helper(s: Setup, cfg: HelperConfig, writer?: FileWriter): SpiffeHelper {
  const h = new SpiffeHelper({ config: cfg, log: s.log, backoff: FAST, ...(writer ? { writer } : {}) });
  stops.push(() => h.stop());
  return h;
}

async function fake(s: Setup, td = s.td, federated: FakeTrustDomain[] = []): Promise<FakeWorkloadApi> {
  const api = await FakeWorkloadApi.start({ socketPath: s.socket, x509: x509Response(td, [td.svid('/web')], federated), jwtBundles: jwtBundlesResponse([td]) });
  stops.push(() => api.stop({ abrupt: true }));
  return api;
}

describe('helper.conf', () => {
  it('reads spiffe-helper keys with their defaults', () => {
    const c = config(`agent_address = "/run/a.sock"\ncert_dir = "certs"\n${FILES}cmd = "nginx"\ncmd_args = "-p '/a b' -g \\"daemon off;\\""\nrenew_signal = "SIGHUP"\njwt_svids = [{jwt_audience="db", jwt_svid_file_name="db.jwt"}]\n`, '/base');
    expect(c).toMatchObject({ agentAddress: '/run/a.sock', certDir: '/base/certs', daemonMode: true, keyFileMode: 0o600, certFileMode: 0o644, renewSignal: 'SIGHUP', cmdArgs: ['-p', '/a b', '-g', 'daemon off;'] });
    expect(c.jwtSvids).toEqual([{ audience: ['db'], fileName: 'db.jwt' }]);
    expect(c.health).toEqual({ enabled: false, bindAddress: '0.0.0.0', port: 8081, livenessPath: '/live', readinessPath: '/ready' });
    expect(config(`cert_dir = "/c"\n${FILES}key_file_mode = 0644\ncert_file_mode = "0600"`, '/').keyFileMode).toBe(0o644);
  });

  it('docs/helper.md has one row per key the loader knows, and no other', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'helper.md'), 'utf8');
    const section = (from: string, to: string): string[] => {
      const text = doc.slice(doc.indexOf(from), to === '' ? undefined : doc.indexOf(to));
      return [...text.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1] as string);
    };
    expect(section('## Keys', '### `health_checks`').sort()).toEqual([...HELPER_KEYS].sort());
    expect(section('### `health_checks`', '## `mayfly-agent api watch').sort()).toEqual([...HEALTH_KEYS].sort());
  });

  it('refuses unknown keys, paths as file names, bad modes and signals, all at once', () => {
    let message = '';
    try {
      config('cert_dir = "/c"\nsvid_file_name = "../x"\nsvid_key_file_name = "k"\nkey_file_mode = 0666\nrenew_signal = "SIGFOO"\nkeyfile = 1', '/');
    } catch (e) {
      message = (e as Error).message;
    }
    for (const part of ['unknown key keyfile', 'svid_file_name must be a plain file name', 'key_file_mode must be 0600 or 0644', 'renew_signal "SIGFOO" is not a signal']) expect(message).toContain(part);
    expect(() => config(FILES, '/')).toThrow(/cert_dir is required/);
    expect(splitArgs('a "b')).toBeUndefined();
  });
});

describe('helper file set', () => {
  it('moves intermediates into the bundle, leaves federated roots out unless asked, and writes CRLs as PEM', () => {
    const s = setup();
    const other = makeFakeTrustDomain('other.org');
    const crl = Buffer.from('3003020100', 'hex');
    const ctx = parseX509Context({ ...x509Response(s.td, [s.td.svid('/web')], [other]), crl: [crl] });
    const state = { x509: ctx, svid: ctx.svids[0], jwtSvids: new Map() };
    const plain = new Map(helperFiles(config(`cert_dir = "/c"\n${FILES}crl_file_name = "crl.pem"`, '/'), state).map(([n, d]) => [n, d]));
    expect(plain.get('svid.pem')?.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(plain.get('bundle.pem')?.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(plain.get('crl.pem')).toBe(`-----BEGIN X509 CRL-----\n${crl.toString('base64')}\n-----END X509 CRL-----\n`);
    const moved = new Map(helperFiles(config(`cert_dir = "/c"\n${FILES}add_intermediates_to_bundle = true`, '/'), state).map(([n, d]) => [n, d]));
    expect(moved.get('svid.pem')?.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(moved.get('bundle.pem')?.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(moved.has('crl.pem')).toBe(false);
  });
});

describe('mayfly-agent helper', () => {
  it('writes cert (leaf + intermediates), key 0600, bundle (own + federated), JWT bundle, and rewrites on rotation', async () => {
    const s = setup();
    const other = makeFakeTrustDomain('other.org');
    const api = await fake(s, s.td, [other]);
    const marker = join(s.base, 'reloads');
    const cfg = config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}include_federated_domains = true\njwt_bundle_file_name = "jwt_bundle.json"\ncmd = "/bin/sh"\ncmd_args = "-c 'echo reload >> ${marker}'"\n`, s.base);
    const h = helper(s, cfg);
    await h.start();
    await until('the first reload', () => h.reloader.succeeded >= 1);
    const cert = readFileSync(join(s.certDir, 'svid.pem'), 'utf8');
    expect(cert.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(readFileSync(join(s.certDir, 'bundle.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(statSync(join(s.certDir, 'svid_key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(s.certDir, 'svid.pem')).mode & 0o777).toBe(0o644);
    expect(new X509Certificate(cert).checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(readFileSync(join(s.certDir, 'svid_key.pem')))))).toBe(true);
    expect(Object.keys(JSON.parse(readFileSync(join(s.certDir, 'jwt_bundle.json'), 'utf8')) as object)).toEqual(['example.org']);

    const before = serial(join(s.certDir, 'svid.pem'));
    api.setX509(x509Response(s.td, [s.td.svid('/web')], [other]));
    await until('a second reload', () => h.reloader.succeeded >= 2);
    expect(serial(join(s.certDir, 'svid.pem'))).not.toBe(before);
    expect(readFileSync(marker, 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(2);
    // Nothing but the files configured: no temporary file left behind.
    expect(readdirSync(s.certDir).sort()).toEqual(['bundle.pem', 'jwt_bundle.json', 'svid.pem', 'svid_key.pem']);
  });

  it('waits for a socket that is not there yet, then writes; and recovers after the agent restarts', async () => {
    const s = setup();
    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}`, s.base));
    await h.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(h.writes).toBe(0);
    const api = await fake(s);
    await until('the first write', () => h.writes >= 1);
    const first = serial(join(s.certDir, 'svid.pem'));
    await api.stop();
    const again = await FakeWorkloadApi.start({ socketPath: s.socket, x509: x509Response(s.td, [s.td.svid('/web')]) });
    stops.push(() => again.stop({ abrupt: true }));
    await until('a write after the restart', () => h.writes >= 2);
    expect(serial(join(s.certDir, 'svid.pem'))).not.toBe(first);
    expect(s.logs.some((l) => /X\.509 watch: .*retrying/.test(l))).toBe(true);
  });

  it('keeps the good files and retries with backoff when the reload command fails', async () => {
    const s = setup();
    await fake(s);
    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}cmd = "/bin/sh"\ncmd_args = "-c 'exit 3'"\n`, s.base));
    await h.start();
    await until('three failed reloads', () => h.reloader.failed >= 3);
    expect(h.reloader.succeeded).toBe(0);
    expect(s.logs.filter((l) => /^error reload failed \(attempt \d\): \/bin\/sh exited with code 3; the files stay in place/.test(l)).length).toBeGreaterThanOrEqual(3);
    expect(existsSync(join(s.certDir, 'svid.pem')) && existsSync(join(s.certDir, 'svid_key.pem'))).toBe(true);
  });

  it('retries a cmd that cannot be started, and starts a long-running cmd again after it exited', async () => {
    const s = setup();
    const api = await fake(s);
    const missing = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}cmd = "${join(s.base, 'no-such-program')}"\nrenew_signal = "SIGHUP"\n`, s.base));
    await missing.start();
    await until('two failed starts', () => missing.reloader.failed >= 2);
    expect(s.logs.some((l) => /reload failed \(attempt 2\): cannot start .*no-such-program: ENOENT/.test(l))).toBe(true);
    await missing.stop();

    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}cmd = "/bin/sh"\ncmd_args = "-c 'exit 0'"\nrenew_signal = "SIGHUP"\n`, s.base));
    await h.start();
    await until('the first start', () => s.logs.filter((l) => /started \/bin\/sh/.test(l)).length === 1);
    await until('the child exiting', () => s.logs.some((l) => /\/bin\/sh \(pid \d+\) exited with code 0; it is started again after the next update/.test(l)));
    api.setX509(x509Response(s.td, [s.td.svid('/web')]));
    await until('a second start', () => s.logs.filter((l) => /started \/bin\/sh/.test(l)).length === 2);
  });

  it('leaves the old file whole when a write fails (disk full), logs it, and writes again later', async () => {
    const s = setup();
    const api = await fake(s);
    let full = false;
    const writer: FileWriter = (path, data, mode) => {
      if (full && path.endsWith('svid.pem')) {
        // What writeFileAtomic does on ENOSPC: the temp file is removed, the target untouched.
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      atomicFileWriter(path, data, mode);
    };
    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}`, s.base), writer);
    await h.start();
    await until('the first write', () => h.writes === 1);
    const good = readFileSync(join(s.certDir, 'svid.pem'));
    const goodKey = readFileSync(join(s.certDir, 'svid_key.pem'));
    full = true;
    api.setX509(x509Response(s.td, [s.td.svid('/web')]));
    await until('a failed write', () => s.logs.some((l) => /cannot write .*svid\.pem: ENOSPC; the previous file \(if any\) is left as it was.*; retrying/.test(l)));
    expect(readFileSync(join(s.certDir, 'svid.pem')).equals(good)).toBe(true);
    // The key was written before the certificate failed: it was put back, so the pair still matches.
    expect(s.logs.some((l) => /svid_key\.pem put back to the previous set/.test(l))).toBe(true);
    expect(readFileSync(join(s.certDir, 'svid_key.pem')).equals(goodKey)).toBe(true);
    expect(h.lastWriteError).toBeDefined();
    full = false;
    await until('a write after space came back', () => h.writes === 2);
    expect(readFileSync(join(s.certDir, 'svid.pem')).equals(good)).toBe(false);
  });

  it('keeps the good files when securefs writes fail for real (cert_dir turned into a foreign-writable dir)', async () => {
    const s = setup();
    const api = await fake(s);
    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}`, s.base));
    await h.start();
    await until('the first write', () => h.writes === 1);
    const good = readFileSync(join(s.certDir, 'svid_key.pem'));
    chmodSync(s.certDir, 0o777);
    api.setX509(x509Response(s.td, [s.td.svid('/web')]));
    await until('a refused write', () => s.logs.some((l) => /cert_dir .* cannot be written into/.test(l)));
    expect(readFileSync(join(s.certDir, 'svid_key.pem')).equals(good)).toBe(true);
  });
});

describe('mayfly-agent helper: JWT-SVIDs, pid files and health checks', () => {
  it('writes a JWT-SVID per audience (0600) and serves liveness and readiness', async () => {
    const s = setup();
    const api = await fake(s);
    const audiences: string[][] = [];
    api.jwtSvid = (req) => {
      audiences.push([...req.audience]);
      return { svids: [{ spiffe_id: 'spiffe://example.org/web', svid: s.td.signer.mint({ spiffeId: s.td.trustDomain.idWithPath('/web'), audience: req.audience, ttlSeconds: 60 }), hint: '' }] };
    };
    const cfg = config(
      `agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\njwt_svids = [{jwt_audience="db", jwt_extra_audiences=["cache"], jwt_svid_file_name="db.jwt"}]\njwt_bundle_file_name = "jwt.json"\nhealth_checks {\n listener_enabled = true\n bind_address = "127.0.0.1"\n bind_port = 0\n readiness_path = "/readyz"\n}\n`,
      s.base,
    );
    const h = helper(s, cfg);
    await h.start();
    const port = h.healthPort as number;
    const probe = async (path: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    await until('the first write', () => h.writes >= 1);
    expect(audiences[0]).toEqual(['db', 'cache']);
    const token = readFileSync(join(s.certDir, 'db.jwt'), 'utf8');
    expect(JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { aud: string[]; sub: string }).toMatchObject({ aud: ['db', 'cache'], sub: 'spiffe://example.org/web' });
    expect(statSync(join(s.certDir, 'db.jwt')).mode & 0o777).toBe(0o600);
    expect(await probe('/live')).toBe(200);
    expect(await probe('/readyz')).toBe(200);
    expect(await probe('/ready')).toBe(404);
  });

  it('is not ready before the first write', async () => {
    const s = setup();
    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}health_checks {\n listener_enabled = true\n bind_address = "127.0.0.1"\n bind_port = 0\n}\n`, s.base));
    await h.start();
    const res = await fetch(`http://127.0.0.1:${h.healthPort}/ready`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, writes: 0 });
  });

  it('signals the pid in pid_file_name after every write, and retries while the pid file is missing', async () => {
    const s = setup();
    const marker = join(s.base, 'hups');
    const pidFile = join(s.base, 'app.pid');
    const h = helper(s, config(`agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}pid_file_name = "${pidFile}"\nrenew_signal = "SIGUSR1"\n`, s.base));
    const api = await fake(s);
    await h.start();
    await until('a failed signal', () => h.reloader.failed >= 1);
    expect(s.logs.some((l) => /cannot read pid_file_name .*app\.pid: ENOENT/.test(l))).toBe(true);
    const app = spawn('/bin/sh', ['-c', `trap 'echo usr1 >> ${marker}' USR1; echo ready; while :; do sleep 0.05; done`], { stdio: ['ignore', 'pipe', 'ignore'] });
    stops.push(async () => void app.kill('SIGKILL'));
    await new Promise((r) => app.stdout.once('data', r));
    writeFileSync(pidFile, `${app.pid}\n`);
    await until('the retried signal', () => existsSync(marker));
    api.setX509(x509Response(s.td, [s.td.svid('/web')]));
    await until('a second signal', () => readFileSync(marker, 'utf8').trim().split('\n').length >= 2);
  });
});

describe('mayfly-agent helper, one-shot (daemon_mode = false)', () => {
  async function cli(argv: string[]): Promise<{ code: number; err: string }> {
    let err = '';
    const program = createProgram({ name: 'mayfly-agent', io: { out: () => undefined, err: (t) => void (err += t), env: {} } });
    addAgentHelperCommand(program);
    return { code: await runProgram(program, argv), err };
  }

  it('writes once and exits 0', async () => {
    const s = setup();
    await fake(s);
    const conf = join(s.base, 'helper.conf');
    writeFileSync(conf, `agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}daemon_mode = false\n`);
    const r = await cli(['helper', '-config', conf]);
    expect(r.err).toMatch(/INFO helper: wrote /);
    expect(r.code).toBe(0);
    expect(readdirSync(s.certDir).sort()).toEqual(['bundle.pem', 'svid.pem', 'svid_key.pem']);
  });

  it('fails clearly (exit 5) when no socket answers within the timeout, after retrying', async () => {
    const s = setup();
    const conf = join(s.base, 'helper.conf');
    writeFileSync(conf, `agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}timeout = "2s"\n`);
    const r = await cli(['helper', '-config', conf, '-daemon-mode', 'false']);
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/Error: no X509-SVID within 2000 ms: there is no Workload API socket at \/.*api\.sock; is the agent running/);
    expect(r.err).toMatch(/retrying/);
    expect(readdirSync(s.certDir)).toEqual([]);
  });

  it('fails clearly (exit 5) when the agent answers but sends no SVID in time', async () => {
    const s = setup();
    const api = await FakeWorkloadApi.start({ socketPath: s.socket });
    stops.push(() => api.stop({ abrupt: true }));
    const conf = join(s.base, 'helper.conf');
    writeFileSync(conf, `agent_address = "${s.socket}"\ncert_dir = "${s.certDir}"\n${FILES}timeout = "1s"\ndaemon_mode = false\n`);
    const r = await cli(['helper', '-config', conf]);
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/Error: no X509-SVID from the Workload API at unix:\/\/.*api\.sock within 1000 ms: is the agent running, is agent_address right, and is this workload registered\?/);
  });

  it('fails clearly (exit 1) when cert_dir cannot be written into', async () => {
    const s = setup();
    await fake(s);
    const conf = join(s.base, 'helper.conf');
    writeFileSync(conf, `agent_address = "${s.socket}"\ncert_dir = "${join(s.base, 'missing')}"\n${FILES}daemon_mode = false\n`);
    const r = await cli(['helper', '-config', conf]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/Error: cert_dir .*missing cannot be written into: directory .* does not exist; create it first/);
  });
});
