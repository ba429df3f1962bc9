import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { importPkcs8 } from '../spiffe/keys.js';
import { parsePemCertificates } from '../spiffe/x509/pem.js';
import {
  FakeWorkloadApi, jwtBundlesResponse, makeFakeTrustDomain, validateResponse, x509Response, type FakeTrustDomain, type FakeWorkloadApiConfig,
} from '../sdk/testing.js';
import { registerAgentApiCommands } from './agent-api.js';
import { createProgram, runProgram } from './flags.js';

let td: FakeTrustDomain;
let fed: FakeTrustDomain;
const cleanups: Array<() => unknown> = [];
beforeAll(() => {
  td = makeFakeTrustDomain('example.org', { intermediate: true });
  fed = makeFakeTrustDomain('partner.test');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mayfly-cli-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function fake(cfg: Omit<FakeWorkloadApiConfig, 'socketPath'>): Promise<FakeWorkloadApi> {
  const f = await FakeWorkloadApi.start({ socketPath: join(tempDir(), 'api.sock'), ...cfg });
  cleanups.push(() => f.stop({ abrupt: true }));
  return f;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}, signal?: AbortSignal, onOut?: (t: string) => void): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const program = createProgram({
    name: 'mayfly-agent',
    io: { out: (t) => ((out += t), onOut?.(t)), err: (t) => (err += t), env, ...(signal ? { signal } : {}) },
  });
  registerAgentApiCommands(program);
  const code = await runProgram(program, argv);
  return { code, out, err };
}

describe('api fetch x509', () => {
  it('prints the SVID and writes SPIRE-named files', async () => {
    const svid = td.svid('/web');
    const f = await fake({ x509: x509Response(td, [svid], [fed]) });
    const dir = join(tempDir(), 'out');
    const r = await run(['api', 'fetch', 'x509', '-socketPath', f.socketPath, '-write', dir]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Received 1 svid after [\d.]+ms\n/);
    expect(r.out).toContain('SPIFFE ID:\t\tspiffe://example.org/web\n');
    expect(r.out).toMatch(/SVID Valid Until:\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    expect(r.out).toContain('Federated bundle:\tspiffe://partner.test (1 roots)');

    const chain = parsePemCertificates(readFileSync(join(dir, 'svid.0.pem'), 'utf8'));
    expect(chain.map((c) => c.toString('hex'))).toEqual(svid.certificates.map((c) => c.toString('hex')));
    const keyPath = join(dir, 'svid.0.key');
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    const keyPem = readFileSync(keyPath, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPublicKey(importPkcs8(keyPem).privateKey).equals(svid.key.publicKey)).toBe(true);
    expect(parsePemCertificates(readFileSync(join(dir, 'bundle.0.pem'), 'utf8'))[0]!.equals(td.ca.certificate)).toBe(true);
    expect(parsePemCertificates(readFileSync(join(dir, 'federated_bundle.0.0.pem'), 'utf8'))[0]!.equals(fed.ca.certificate)).toBe(true);
    // SPIRE's lines for what -write wrote, after the summary.
    expect(r.out.split('\n').filter((l) => l.startsWith('Writing '))).toEqual([
      `Writing SVID #0 to file ${join(dir, 'svid.0.pem')}.`,
      `Writing key #0 to file ${join(dir, 'svid.0.key')}.`,
      `Writing bundle #0 to file ${join(dir, 'bundle.0.pem')}.`,
      `Writing federated bundle #0 for trust domain spiffe://partner.test to file ${join(dir, 'federated_bundle.0.0.pem')}.`,
    ]);
  });

  it('api fetch alone fetches X.509, as in SPIRE', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/web')]) });
    const r = await run(['api', 'fetch', '-socketPath', f.socketPath]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Received 1 svid after [\d.]+ms\n/);
    const json = await run(['api', 'fetch', '-output', 'json', '-socketPath', f.socketPath]);
    expect(JSON.parse(json.out).svids[0].spiffe_id).toBe('spiffe://example.org/web');
  });

  it('-silent prints nothing; -output json prints one document; the env names the socket', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/a', { hint: 'primary' }), td.svid('/b')]) });
    const silent = await run(['api', 'fetch', 'x509', '--socketPath=' + f.socketPath, '-write', tempDir(), '-silent']);
    expect(silent).toEqual({ code: 0, out: '', err: '' });
    const json = await run(['api', 'fetch', 'x509', '-output', 'json'], { SPIFFE_ENDPOINT_SOCKET: f.address });
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.out) as { svids: Array<{ spiffe_id: string; hint: string; x509_svid: string }> };
    expect(doc.svids.map((s) => [s.spiffe_id, s.hint])).toEqual([['spiffe://example.org/a', 'primary'], ['spiffe://example.org/b', '']]);
    expect(parsePemCertificates(doc.svids[0]!.x509_svid)).toHaveLength(2);
  });

  it('fails with one line when there is no socket or no identity', async () => {
    const none = join(tempDir(), 'none.sock');
    let r = await run(['api', 'fetch', 'x509', '-socketPath', none]);
    expect(r.code).toBe(5); // unreachable
    expect(r.err).toBe(`Error: no Workload API socket at ${none}: is the agent running, and is -socketPath right?\n`);
    const f = await fake({ x509: { code: status.PERMISSION_DENIED, details: 'no identity issued' } });
    r = await run(['api', 'fetch', 'x509', '-socketPath', f.socketPath]);
    expect(r.code).toBe(4); // PERMISSION_DENIED: no identity
    expect(r.err).toMatch(/^Error: no identity issued for this workload: check its registration entry selectors \(FetchX509SVID: no identity issued\)\n$/);
    r = await run(['api', 'fetch', 'x509', '-socketPath', f.socketPath, '-timeout', 'soon']);
    expect(r.err).toBe('Error: invalid -timeout "soon": use a positive Go duration such as 5s or 500ms\n');
    r = await run(['api', 'fetch', 'x509', '-socketpath', f.socketPath]);
    expect(r.err).toBe('Error: flag provided but not defined: -socketpath (did you mean -socketPath?)\n');
  });
});

describe('api fetch jwt / validate jwt', () => {
  it('prints tokens and JWT bundles', async () => {
    const f = await fake({
      jwtBundles: jwtBundlesResponse([td, fed]),
      jwtSvid: (req) => ({
        svids: [{ spiffe_id: 'spiffe://example.org/web', svid: td.signer.mint({ spiffeId: td.trustDomain.idWithPath('/web'), audience: req.audience, ttlSeconds: 300 }), hint: '' }],
      }),
    });
    const r = await run(['api', 'fetch', 'jwt', '-audience', 'db,cache', '-audience', 'queue', '-spiffeID', 'spiffe://example.org/web', '-socketPath', f.socketPath]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^token\(spiffe:\/\/example.org\/web\):\n\t[\w-]+\.[\w-]+\.[\w-]+\n/);
    expect(r.out).toContain('bundle(spiffe://example.org):\n\t{"keys":[');
    expect(r.out).toContain('bundle(spiffe://partner.test):');
    expect(f.calls.find((c) => c.method === 'FetchJWTSVID')!.request).toEqual({ audience: ['db', 'cache', 'queue'], spiffe_id: 'spiffe://example.org/web' });

    const json = await run(['api', 'fetch', 'jwt', '-audience', 'db', '-socketPath', f.socketPath, '-output', 'json']);
    const doc = JSON.parse(json.out) as { svids: Array<{ audience: string[] }>; bundles: Record<string, { keys: Array<{ kid: string }> }> };
    expect(doc.svids[0]!.audience).toEqual(['db']);
    expect(doc.bundles['spiffe://example.org']!.keys[0]!.kid).toBe(td.jwtKid);

    const bundles = await run(['api', 'fetch', 'jwt', 'bundles', '-socketPath', f.socketPath]);
    expect(bundles.err).toBe('');
    expect(bundles.code).toBe(0);
    expect(bundles.out).toMatch(/^bundle\(spiffe:\/\/example.org\):/);

    const missing = await run(['api', 'fetch', 'jwt', '-socketPath', f.socketPath]);
    expect(missing.code).toBe(2); // invalid input (cli/cli-error)
    expect(missing.err).toBe('Error: -audience is required (one or more, comma separated or repeated)\n');
    const badId = await run(['api', 'fetch', 'jwt', '-audience', 'a', '-spiffeID', 'spiffe://Example.org/x', '-socketPath', f.socketPath]);
    expect(badId.err).toMatch(/^Error: invalid -spiffeID: invalid SPIFFE ID/);
  });

  it('validates through the agent', async () => {
    const f = await fake({
      validate: (req) =>
        req.svid === 'good.token.here' && req.audience === 'db'
          ? validateResponse('spiffe://example.org/web', { sub: 'spiffe://example.org/web', aud: ['db'] })
          : { code: status.INVALID_ARGUMENT, details: 'token is invalid: signature' },
    });
    const ok = await run(['api', 'validate', 'jwt', '-audience', 'db', '-svid', 'good.token.here', '-socketPath', f.socketPath]);
    expect(ok).toEqual({ code: 0, out: 'SVID is valid.\nSPIFFE ID : spiffe://example.org/web\nClaims    : {"sub":"spiffe://example.org/web","aud":["db"]}\n', err: '' });
    const bad = await run(['api', 'validate', 'jwt', '-audience', 'db', '-svid', 'forged.token.x', '-socketPath', f.socketPath]);
    expect(bad.code).toBe(2); // INVALID_ARGUMENT
    expect(bad.err).toBe('Error: the agent rejected the request as invalid (ValidateJWTSVID: token is invalid: signature)\n');
  });
});

describe('api watch', () => {
  it('prints each X.509 update until stopped', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/v1')]) });
    const ac = new AbortController();
    let seen = 0;
    const done = run(['api', 'watch', '-socketPath', f.socketPath], {}, ac.signal, (t) => {
      if (!t.startsWith('Received')) return;
      seen++;
      if (seen === 1) f.setX509(x509Response(td, [td.svid('/v2')]));
      else ac.abort();
    });
    const r = await done;
    expect(r.code).toBe(0);
    const ids = [...r.out.matchAll(/SPIFFE ID:\t\t(\S+)/g)].map((m) => m[1]);
    expect(ids).toEqual(['spiffe://example.org/v1', 'spiffe://example.org/v2']);
  });

  it('-write rewrites the SPIRE file set on every update', async () => {
    const f = await fake({ x509: x509Response(td, [td.svid('/v1')]) });
    const dir = join(tempDir(), 'out');
    const ac = new AbortController();
    const serials: string[] = [];
    let seen = 0;
    const r = await run(['api', 'watch', '-socketPath', f.socketPath, '-write', dir], {}, ac.signal, (t) => {
      if (!t.startsWith('Received')) return;
      seen++;
      serials.push(parsePemCertificates(readFileSync(join(dir, 'svid.0.pem'), 'utf8'))[0]?.toString('hex') ?? '');
      if (seen === 1) f.setX509(x509Response(td, [td.svid('/v2')]));
      else ac.abort();
    });
    expect(r.code).toBe(0);
    expect(r.out).toContain(`Writing SVID #0 to file ${join(dir, 'svid.0.pem')}.`);
    expect(serials).toHaveLength(2);
    expect(serials[0]).not.toBe(serials[1]);
    expect(statSync(join(dir, 'svid.0.key')).mode & 0o777).toBe(0o600);
  });

  it('ends with an error line when the agent refuses the request', async () => {
    const f = await fake({ x509: { code: status.INVALID_ARGUMENT, details: 'security header missing' } });
    const r = await run(['api', 'watch', '-socketPath', f.socketPath], {}, new AbortController().signal);
    expect(r.code).toBe(2);
    expect(r.err).toBe('Error: the agent rejected the request as invalid (FetchX509SVID: security header missing)\n');
  });
});
