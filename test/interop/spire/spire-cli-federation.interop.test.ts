/**
 * SPIRE v1.13.3's `spire-server federation create|show|list|update|refresh|delete`,
 * unchanged, against a real `mayfly-server run` (from dist/, so its peer bundle fetcher
 * runs): every relationship SPIRE's CLI creates is what Mayfly's CLI shows, and `federation
 * refresh` has Mayfly fetch a real HTTPS bundle endpoint (https_spiffe, authenticated with
 * the bootstrap bundle SPIRE's CLI uploaded) at once. Refusals carry SPIRE's codes and
 * messages (pkg/server/api/trustdomain/v1 at v1.13.3). The same server keeps Mayfly's
 * audit ledger (on by default): every change and issuance SPIRE's CLI makes is recorded
 * there once, as Mayfly's own CLI's would be, and the chain verifies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBundleEndpoint } from '../../../src/federation/testing.js';
import { Bundle } from '../../../src/spiffe/bundle/bundle.js';
import { TrustDomain } from '../../../src/spiffe/id.js';
import { parsePemCertificates, pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';
import { makeTestCa, makeTestSvid } from '../../../src/spiffe/x509/testing.js';
import { runProcess } from '../harness.js';
import { spireBinary } from './bin.js';
import { spireServerCli, waitFor } from './peers.js';
import { rawSpireClient, type RawSpireClient } from './spire-raw-client.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAYFLY = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'mayfly.test';
const NOT_FOUND = 5;

let dir: string;
let sock: string;
let server: ChildProcess | undefined;
const logs: string[] = [];
let endpoint: TestBundleEndpoint | undefined;
let raw: RawSpireClient;

const spire = (args: string[], input?: string) => spireServerCli(sock, args, input);
const mayfly = (args: string[]) => runProcess(process.execPath, [MAYFLY, ...args, '-socketPath', sock]);
async function ok(p: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}
async function fails(p: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  expect(r.code, r.stdout).not.toBe(0);
  return r.stderr;
}

// The peer: fed.test's CA, its bundle endpoint's SVID, and the bundle it serves (a second CA added).
const fedCa = makeTestCa({ trustDomain: 'fed.test' });
const fedNext = makeTestCa({ trustDomain: 'fed.test' });
const endpointSvid = makeTestSvid(fedCa, '/spire/server');
const served = new Bundle({ trustDomain: TrustDomain.parse('fed.test'), x509Authorities: [fedCa.certificate, fedNext.certificate], sequence: 2 });

const line = (url: string, spiffe?: string): string =>
  `Trust domain              : fed.test\nBundle endpoint URL       : ${url}\n` +
  (spiffe === undefined ? 'Bundle endpoint profile   : https_web\n' : `Bundle endpoint profile   : https_spiffe\nEndpoint SPIFFE ID        : ${spiffe}\n`);

beforeAll(async () => {
  spireBinary('spire-server');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-cli-federation-'));
  sock = join(dir, 'mayfly', 'private', 'api.sock');
  writeFileSync(
    join(dir, 'mayfly.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = 0
  socket_path = "${sock}"
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'mayfly', 'data')}"
  log_level = "WARN"
}
plugins { KeyManager "memory" { plugin_data {} } }
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`,
  );
  const child = spawn(process.execPath, [MAYFLY, 'run', '-config', join(dir, 'mayfly.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  server = child;
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s }).on('line', (l) => logs.push(l));
  await waitFor('mayfly-server run', async () => (await mayfly(['healthcheck'])).code === 0, logs);
  endpoint = await TestBundleEndpoint.start([endpointSvid.certificate], endpointSvid.key.privateKey, () => undefined);
  endpoint.serve(served.toJson());
  raw = rawSpireClient(sock);
});

afterAll(async () => {
  raw?.close();
  await endpoint?.close();
  const child = server;
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('spire-server federation against mayfly-server run', () => {
  it('create, show, list, refresh, update and delete through SPIRE, as mayfly-server shows them', async () => {
    const url = endpoint!.url('/bundle');
    const pemPath = join(dir, 'fed.pem');
    writeFileSync(pemPath, pemEncodeCertificates([fedCa.certificate]));
    const created = await ok(
      spire(['federation', 'create', '-trustDomain', 'fed.test', '-bundleEndpointURL', url, '-bundleEndpointProfile', 'https_spiffe', '-endpointSpiffeID', 'spiffe://fed.test/spire/server', '-trustDomainBundlePath', pemPath]),
    );
    expect(created).toBe(`\n${line(url, 'spiffe://fed.test/spire/server')}`);
    const shown = await ok(spire(['federation', 'show', '-trustDomain', 'fed.test']));
    expect(shown).toBe(`Found a federation relationship with trust domain fed.test:\n\n${line(url, 'spiffe://fed.test/spire/server')}`);
    expect(await ok(mayfly(['federation', 'show', '-trustDomain', 'fed.test']))).toBe(shown);
    const listed = await ok(spire(['federation', 'list']));
    expect(listed).toBe(`Found 1 federation relationship\n\n${line(url, 'spiffe://fed.test/spire/server')}`);
    expect(await ok(mayfly(['federation', 'list']))).toBe(listed);

    // Refresh: Mayfly fetches the endpoint now (authenticated with the bootstrap bundle) and stores what it serves.
    const before = endpoint!.requests;
    expect(await ok(spire(['federation', 'refresh', '-id', 'fed.test']))).toBe('Bundle refreshed\n');
    expect(endpoint!.requests).toBeGreaterThan(before);
    const stored = await ok(mayfly(['bundle', 'list', '-id', 'spiffe://fed.test']));
    expect(parsePemCertificates(stored).map((c) => c.toString('base64')).sort()).toEqual([fedCa.certificate, fedNext.certificate].map((c) => c.toString('base64')).sort());
    expect(await ok(spire(['bundle', 'list', '-id', 'spiffe://fed.test']))).toBe(stored);
    expect(await fails(spire(['federation', 'refresh', '-id', 'nope.test']))).toContain('there is no federation relationship with trust domain "nope.test"');

    // https_web: the endpoint's certificate is no web PKI certificate, so a refresh now fails, as SPIRE words it.
    expect(await ok(spire(['federation', 'update', '-trustDomain', 'fed.test', '-bundleEndpointURL', url, '-bundleEndpointProfile', 'https_web']))).toBe(`\n${line(url)}`);
    expect(await ok(mayfly(['federation', 'show', '-trustDomain', 'fed.test']))).toContain(line(url));
    expect(await fails(spire(['federation', 'refresh', '-id', 'fed.test']))).toContain('failed to refresh bundle: rpc error: code = Internal desc = failed to refresh bundle: ');

    expect(await ok(spire(['federation', 'delete', '-id', 'fed.test']))).toBe('federation relationship deleted.\n');
    expect(await ok(mayfly(['federation', 'list']))).toBe('Found 0 federation relationships\n');
    expect(await fails(spire(['federation', 'delete', '-id', 'fed.test']))).toContain('failed to delete federation relationship "fed.test": federation relationship not found');
    expect(await raw.fail('TrustDomain', 'GetFederationRelationship', { trust_domain: 'fed.test' })).toEqual({ code: NOT_FOUND, details: 'federation relationship does not exist' });
  });

  it("refuses a malformed or non-https bundle endpoint URL and our own trust domain with SPIRE's words", async () => {
    const create = (td: string, url: string) => spire(['federation', 'create', '-trustDomain', td, '-bundleEndpointURL', url, '-bundleEndpointProfile', 'https_web']);
    expect(await fails(create('bad.test', 'https://exa mple.org/'))).toContain(
      'Failed to create the following federation relationship (code: InvalidArgument, msg: "failed to convert federation relationship: failed to parse bundle endpoint URL: parse',
    );
    expect(await fails(create('bad.test', 'http://bad.test/'))).toContain('msg: "failed to convert federation relationship: bundle endpoint URL must use the https scheme"');
    expect(await fails(create(TD, 'https://mayfly.test/'))).toContain('(code: InvalidArgument, msg: "unable to create federation relationship for server trust domain")');
    expect(await ok(mayfly(['federation', 'list']))).toBe('Found 0 federation relationships\n');
  });

  it("records every change and issuance SPIRE's CLI makes in Mayfly's audit ledger, once each", async () => {
    const seen = async (): Promise<{ kind: string; method?: string; spiffeId?: string; details?: Record<string, unknown> }[]> =>
      (JSON.parse(await ok(mayfly(['audit', 'show', '-output', 'json']))) as { records: { record: { kind: string; method?: string; spiffeId?: string; details?: Record<string, unknown> } }[] }).records.map(
        (r) => r.record,
      );
    const start = (await seen()).length;
    await ok(spire(['x509', 'mint', '-spiffeID', `spiffe://${TD}/audited`]));
    await ok(spire(['jwt', 'mint', '-spiffeID', `spiffe://${TD}/audited`, '-audience', 'a']));
    await ok(spire(['bundle', 'set', '-id', 'spiffe://audit.test'], pemEncodeCertificates([fedNext.certificate])));
    await ok(spire(['bundle', 'delete', '-id', 'spiffe://audit.test']));
    await ok(spire(['localauthority', 'jwt', 'prepare']));
    const added = (await seen()).slice(start);
    const summary = added.map((r) => (r.kind === 'admin' ? `admin ${r.method ?? ''}` : r.kind));
    expect(summary.filter((k) => k === 'x509-svid.issued')).toHaveLength(1);
    expect(summary.filter((k) => k === 'jwt-svid.issued')).toHaveLength(1);
    expect(summary.filter((k) => k === 'admin BatchSetFederatedBundle')).toHaveLength(1);
    expect(summary.filter((k) => k === 'admin BatchDeleteFederatedBundle')).toHaveLength(1);
    expect(summary.filter((k) => k === 'admin PrepareJWTAuthority')).toHaveLength(1);
    expect(added.filter((r) => r.kind.endsWith('.issued')).map((r) => r.spiffeId)).toEqual([`spiffe://${TD}/audited`, `spiffe://${TD}/audited`]);
    // The relationship lifecycle above: one create, one update, one successful refresh, one delete.
    const all = (await seen()).map((r) => (r.kind === 'admin' ? r.method : r.kind));
    for (const m of ['BatchCreateFederationRelationship', 'BatchUpdateFederationRelationship', 'RefreshBundle', 'BatchDeleteFederationRelationship']) expect(all.filter((k) => k === m), m).toHaveLength(1);
    await ok(mayfly(['audit', 'verify']));
  });
});
