/**
 * A real SPIRE server (v1.13.3) federates with Mayfly's trust domain through Mayfly's
 * bundle endpoint, `https_spiffe` profile: SPIRE is bootstrapped with our bundle
 * (`bundle set -format spiffe`), authenticates our endpoint's X509-SVID
 * (`spiffe://mayfly.test/spire/server`) against it, and stores what the endpoint serves.
 * Then Mayfly rotates its X.509 CA (prepare, activate) and SPIRE's stored copy follows:
 * fetched again with the previous bundle as trust (the endpoint's SVID is by then signed by
 * the new CA, which that bundle already holds since prepare).
 *
 * Both are real processes: `mayfly-server run` (from dist/, with a server.conf naming the
 * bundle endpoint; rotated with `mayfly-server localauthority x509 prepare|activate` as an
 * operator would) and `spire-server run` with its own data dir. SPIRE polls a federated
 * endpoint no more often than every 15 s (its 1 min minimum refresh hint, 4 polls), so the
 * test asks it to fetch at once with `spire-server federation refresh`, as an operator would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spireBinary } from './bin.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAYFLY = join(ROOT, 'bin', 'mayfly-server.js');

const TD = 'mayfly.test';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** What our endpoint serves now (its TLS is checked by SPIRE; here only the bytes matter). */
function served(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Doc {
  keys: { use: string; kid?: string; x5c?: string[] }[];
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

/** The trusted keys of a bundle document, order-free. */
function keysOf(json: string): string[] {
  const doc = JSON.parse(json) as Doc;
  return doc.keys.map((k) => (k.use === 'x509-svid' ? `x509:${k.x5c?.[0] ?? ''}` : `jwt:${k.kid ?? ''}`)).sort();
}

const logs: string[] = [];
let dir: string;
let spireSock: string;
let mayflySock: string;
let spire: ChildProcess | undefined;
let mayfly: ChildProcess | undefined;
let endpointPort: number;

const spireCli = (args: string[]): Promise<Result> => exec(spireBinary('spire-server'), [...args, '-socketPath', spireSock]);
const mayflyCli = (args: string[]): Promise<Result> => exec(process.execPath, [MAYFLY, ...args, '-socketPath', mayflySock]);

async function mayflyOk(args: string[]): Promise<unknown> {
  const r = await mayflyCli([...args, '-output', 'json']);
  if (r.code !== 0) throw new Error(`mayfly-server ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function spawnLogged(file: string, args: string[]): ChildProcess {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const st of [child.stdout, child.stderr]) st?.on('data', (d: Buffer) => logs.push(...d.toString('utf8').trimEnd().split('\n')));
  return child;
}

async function waitFor(what: string, child: ChildProcess, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; ; i++) {
    if (await ok()) return;
    if (i >= 300 || child.exitCode !== null) throw new Error(`${what} did not come up: ${logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SPIRE's stored copy of our bundle (`bundle list -id … -format spiffe`), or undefined when it has none. */
async function spireCopy(): Promise<string | undefined> {
  const r = await spireCli(['bundle', 'list', '-id', `spiffe://${TD}`, '-format', 'spiffe']);
  if (r.code !== 0) return undefined;
  return r.stdout;
}

/** Asks SPIRE to fetch our endpoint until its copy holds the keys we serve (or gives up with the logs). */
async function untilSpireHolds(what: string): Promise<{ ours: string; theirs: string }> {
  let last = '';
  for (let i = 0; i < 60; i++) {
    const ours = await served(endpointPort);
    const refresh = await spireCli(['federation', 'refresh', '-id', TD]);
    last = `${refresh.stdout}${refresh.stderr}`;
    // A refresh that succeeds fetched the endpoint and authenticated its SVID.
    const theirs = refresh.code === 0 ? await spireCopy() : undefined;
    if (theirs !== undefined && JSON.stringify(keysOf(theirs)) === JSON.stringify(keysOf(ours))) return { ours, theirs };
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: SPIRE's copy never matched our endpoint; last refresh said: ${last}\nSPIRE log:\n${logs.slice(-40).join('\n')}`);
}

beforeAll(async () => {
  spireBinary('spire-server');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-fed-ours-'));

  // Mayfly: the bundle endpoint on a free port, https_spiffe, as server.conf spells it.
  endpointPort = await freePort();
  mayflySock = join(dir, 'mayfly', 'private', 'api.sock');
  writeFileSync(
    join(dir, 'mayfly.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = 0
  socket_path = "${mayflySock}"
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'mayfly', 'data')}"
  log_level = "WARN"
  federation {
    bundle_endpoint {
      address = "127.0.0.1"
      port = ${endpointPort}
      refresh_hint = "1m"
      profile "https_spiffe" {}
    }
  }
}
plugins { KeyManager "memory" { plugin_data {} } }
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`,
  );
  mayfly = spawnLogged(process.execPath, [MAYFLY, 'run', '-config', join(dir, 'mayfly.conf')]);
  await waitFor('mayfly-server', mayfly, async () => (await mayflyCli(['healthcheck'])).code === 0 && (await served(endpointPort).then(() => true, () => false)));

  // SPIRE: federates with mayfly.test through our endpoint.
  spireSock = join(dir, 'spire', 'api.sock');
  const data = join(dir, 'spire', 'data');
  writeFileSync(
    join(dir, 'spire.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${spireSock}"
  trust_domain = "spire.test"
  data_dir = "${data}"
  log_level = "DEBUG"
  federation {
    federates_with "${TD}" {
      bundle_endpoint_url = "https://127.0.0.1:${endpointPort}"
      bundle_endpoint_profile "https_spiffe" {
        endpoint_spiffe_id = "spiffe://${TD}/spire/server"
      }
    }
  }
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "${join(data, 'datastore.sqlite3')}" } }
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "join_token" { plugin_data {} }
}
`,
  );
  spire = spawnLogged(spireBinary('spire-server'), ['run', '-config', join(dir, 'spire.conf')]);
  await waitFor('spire-server', spire, async () => (await spireCli(['healthcheck'])).code === 0);
  // Bootstrap: SPIRE needs our bundle to authenticate the endpoint the first time.
  writeFileSync(join(dir, 'mayfly-bundle.json'), await served(endpointPort));
  const set = await spireCli(['bundle', 'set', '-format', 'spiffe', '-id', `spiffe://${TD}`, '-path', join(dir, 'mayfly-bundle.json')]);
  if (set.code !== 0) throw new Error(`bundle set failed: ${set.stdout}${set.stderr}`);
}, 120_000);

afterAll(async () => {
  for (const c of [spire, mayfly]) {
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('SPIRE v1.13.3 fetches our bundle endpoint (https_spiffe)', () => {
  it('stores exactly what the endpoint serves', async () => {
    const { ours, theirs } = await untilSpireHolds('first fetch');
    expect(keysOf(theirs)).toEqual(keysOf(ours));
    // SPIRE's CLI prints the refresh hint it keeps (not the sequence).
    expect((JSON.parse(theirs) as Doc).spiffe_refresh_hint).toBe(60);
    expect((JSON.parse(ours) as Doc).spiffe_refresh_hint).toBe(60);
    expect(logs.join('\n')).toMatch(/Bundle refreshed.*method=RefreshBundle/);
  }, 120_000);

  it('follows our X.509 CA rotation (prepare, then activate): its copy gains the new roots, fetched over the re-keyed SVID', async () => {
    const before = await untilSpireHolds('before rotation');
    expect(keysOf(before.theirs).filter((k) => k.startsWith('x509:'))).toHaveLength(1);
    const prepared = (await mayflyOk(['localauthority', 'x509', 'prepare'])) as { authority: { authority_id: string } };
    const afterPrepare = await untilSpireHolds('after prepare');
    expect(keysOf(afterPrepare.theirs).filter((k) => k.startsWith('x509:'))).toHaveLength(2);
    await mayflyOk(['localauthority', 'x509', 'activate', '-authorityID', prepared.authority.authority_id]);
    // The endpoint's SVID is now signed by the new CA; a further change still reaches SPIRE,
    // so SPIRE authenticated the re-keyed endpoint against the copy it got at prepare.
    await mayflyOk(['localauthority', 'x509', 'prepare']);
    const again = await untilSpireHolds('after activate and another prepare');
    expect(keysOf(again.theirs).filter((k) => k.startsWith('x509:'))).toHaveLength(3);
    expect(keysOf(again.theirs)).toEqual(keysOf(await served(endpointPort)));
  }, 180_000);
});
