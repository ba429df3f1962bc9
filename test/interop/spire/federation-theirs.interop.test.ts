/**
 * Mayfly fetches a real SPIRE server's bundle endpoint with `https_spiffe`: spire-server
 * v1.13.3 serves its bundle (`federation { bundle_endpoint { ... } }`, a 1 s refresh hint);
 * a real `mayfly-server` is bootstrapped exactly as a SPIRE operator would bootstrap SPIRE
 * (`federation create ... -trustDomainBundlePath <spire-server bundle show -format spiffe>`);
 * the bundle Mayfly stores must equal what SPIRE's endpoint serves, and after SPIRE rotates
 * its X.509 CA (`localauthority x509 prepare`, then `activate`) Mayfly's copy follows by
 * itself (its poll: SPIRE's hint, raised to the 10 s minimum), authenticating SPIRE's
 * endpoint with the bundle it stored before.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spireBinary } from './bin.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAYFLY = join(ROOT, 'bin', 'mayfly-server.js');
const SPIRE_TD = 'spire.test';
const MAYFLY_TD = 'mayfly.test';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end('');
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A bundle document's content, comparable: X.509 authorities (x5c), JWT key IDs, sequence. */
function content(json: string): { x509: string[]; jwt: string[]; sequence: unknown } {
  const doc = JSON.parse(json) as { keys: { use: string; x5c?: string[]; kid?: string }[]; spiffe_sequence?: number };
  return {
    x509: doc.keys.filter((k) => k.use === 'x509-svid').map((k) => k.x5c![0]!).sort(),
    jwt: doc.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid!).sort(),
    sequence: doc.spiffe_sequence,
  };
}

const logs: string[] = [];
let dir: string;
let spireSock: string;
let mayflySock: string;
let endpointPort: number;
let metricsPort = 0;
let spire: ChildProcess;
let mayfly: ChildProcess;

const spireCli = (args: string[]): Promise<Result> => exec(spireBinary('spire-server'), [...args, '-socketPath', spireSock]);
const mayflyCli = (args: string[]): Promise<Result> => exec(process.execPath, [MAYFLY, ...args, '-socketPath', mayflySock]);

/** What SPIRE's bundle endpoint serves right now (read without authentication: the test is the judge). */
function spireServes(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: endpointPort, path: '/', rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end();
  });
}

async function mayflyStores(): Promise<string | undefined> {
  const r = await mayflyCli(['bundle', 'list', '-id', `spiffe://${SPIRE_TD}`, '-format', 'spiffe']);
  return r.code === 0 ? r.stdout : undefined;
}

async function waitFor(what: string, ok: () => Promise<boolean>, tries = 600): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${tries / 10} s; logs:\n${logs.slice(-40).join('\n')}`);
}

/** Waits until Mayfly's stored copy has the content SPIRE's endpoint serves; returns it. */
async function converged(what: string): Promise<ReturnType<typeof content>> {
  let last = '';
  await waitFor(
    what,
    async () => {
      const [served, stored] = await Promise.all([spireServes(), mayflyStores()]);
      last = `SPIRE serves ${served}\nMayfly stores ${stored}`;
      return stored !== undefined && JSON.stringify(content(served)) === JSON.stringify(content(stored));
    },
    450,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${last}`);
  });
  return content(await spireServes());
}

beforeAll(async () => {
  spireBinary('spire-server');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-fed-'));
  spireSock = join(dir, 'spire', 'api.sock');
  mayflySock = join(dir, 'mayfly', 'private', 'api.sock');
  endpointPort = await freePort();
  writeFileSync(
    join(dir, 'spire.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${spireSock}"
  trust_domain = "${SPIRE_TD}"
  data_dir = "${join(dir, 'spire', 'data')}"
  log_level = "INFO"
  federation {
    bundle_endpoint {
      address = "127.0.0.1"
      port = ${endpointPort}
      refresh_hint = "1s"
    }
  }
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "${join(dir, 'spire', 'data', 'datastore.sqlite3')}" } }
  KeyManager "disk" { plugin_data { keys_path = "${join(dir, 'spire', 'data', 'keys.json')}" } }
  NodeAttestor "join_token" { plugin_data {} }
}
`,
  );
  writeFileSync(
    join(dir, 'mayfly.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${mayflySock}"
  trust_domain = "${MAYFLY_TD}"
  data_dir = "${join(dir, 'mayfly', 'data')}"
  log_level = "INFO"
}
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`,
  );
  spire = spawn(spireBinary('spire-server'), ['run', '-config', join(dir, 'spire.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  mayfly = spawn(process.execPath, [MAYFLY, 'run', '-config', join(dir, 'mayfly.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  createInterface({ input: spire.stderr as NodeJS.ReadableStream }).on('line', (l) => logs.push(`spire: ${l}`));
  createInterface({ input: mayfly.stderr as NodeJS.ReadableStream }).on('line', (l) => {
    logs.push(`mayfly: ${l}`);
    try {
      const j = JSON.parse(l) as { msg?: string; metricsPort?: number };
      if (j.msg === 'mayfly server started' && j.metricsPort !== undefined) metricsPort = j.metricsPort;
    } catch {
      // not JSON
    }
  });
  await waitFor('spire-server', async () => (await spireCli(['healthcheck'])).code === 0);
  await waitFor("spire-server's bundle endpoint", async () => (await spireServes().catch(() => '')).includes('"keys"'));
  await waitFor('mayfly-server', async () => (await mayflyCli(['healthcheck'])).code === 0);
}, 120_000);

afterAll(async () => {
  for (const c of [spire, mayfly]) {
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await gone;
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("Mayfly fetches spire-server v1.13.3's bundle endpoint (https_spiffe)", () => {
  it('stores what SPIRE serves, then follows its CA rotation', async () => {
    const shown = await spireCli(['bundle', 'show', '-format', 'spiffe']);
    expect(shown.code, shown.stderr).toBe(0);
    const bootstrap = join(dir, 'spire-bundle.json');
    writeFileSync(bootstrap, shown.stdout);
    const created = await mayflyCli([
      'federation', 'create', '-trustDomain', SPIRE_TD, '-bundleEndpointURL', `https://127.0.0.1:${endpointPort}`, '-bundleEndpointProfile', 'https_spiffe',
      '-endpointSpiffeID', `spiffe://${SPIRE_TD}/spire/server`, '-trustDomainBundlePath', bootstrap, '-trustDomainBundleFormat', 'spiffe',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('Bundle endpoint profile   : https_spiffe');

    const first = await converged('the first fetch');
    expect(first.x509).toHaveLength(1);
    // A forced fetch authenticates SPIRE's endpoint with the stored bundle.
    expect(await mayflyCli(['federation', 'refresh', '-id', SPIRE_TD])).toMatchObject({ code: 0, stdout: 'Bundle refreshed\n' });

    // SPIRE prepares its next X.509 CA: it joins the served bundle, and Mayfly's copy, by poll.
    const prepared = await spireCli(['localauthority', 'x509', 'prepare', '-output', 'json']);
    expect(prepared.code, prepared.stderr).toBe(0);
    const next = (JSON.parse(prepared.stdout) as { prepared_authority: { authority_id: string } }).prepared_authority.authority_id;
    const both = await converged('the prepared CA');
    expect(both.x509).toHaveLength(2);
    expect(both.x509).toEqual(expect.arrayContaining(first.x509));

    // SPIRE activates it: Mayfly still authenticates SPIRE's endpoint and keeps following.
    const activated = await spireCli(['localauthority', 'x509', 'activate', '-authorityID', next]);
    expect(activated.code, activated.stderr).toBe(0);
    const after = await converged('after activation');
    expect(after.x509).toEqual(both.x509);
    expect(await mayflyCli(['federation', 'refresh', '-id', SPIRE_TD])).toMatchObject({ code: 0 });

    const refusals = logs.filter((l) => l.startsWith('mayfly:') && l.includes('federated bundle refused'));
    expect(refusals).toEqual([]);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`mayfly_federation_bundle_last_refresh_timestamp_seconds\\{trust_domain="${SPIRE_TD.replace('.', '\\.')}"\\} \\d+`));
  }, 120_000);
});
